/**
 * Alerts by webhook: the payload shapes (generic JSON, Teams Adaptive Card, Slack), and that each
 * condition is sent once while it lasts and at most MAX_PER_HOUR an hour, against a real receiver on
 * loopback and a test clock.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertsConfig } from '../../electron/config/types.ts';
import { parseConfig } from '../../electron/config/validate.ts';
import { createAlerts, MAX_PER_HOUR, type Alert } from '../../electron/relay/alerts.ts';
import { sendWebhook, webhookPayload } from '../../electron/relay/alerts-webhook.ts';
import { diagnose } from '../../electron/relay/diagnosis.ts';
import { registerSecret } from '../../electron/relay/redact.ts';
import type { QueueItem } from '../../electron/relay/views.ts';
import { replyFailure } from '../fixtures/upstream-failures.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../fixtures/webhook-receiver.ts';
import { heldOnSignIn, recordingLogger } from '../fixtures/alerts-rig.ts';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (let close = closers.pop(); close; close = closers.pop()) await close();
});

const signInRefused = diagnose(
  replyFailure('auth', '535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.'),
);

const ALERT: Alert = {
  kind: 'held',
  title: 'Mail is held',
  text: 'Sign-in refused.',
  time: Date.UTC(2026, 0, 5, 8),
};

async function receiver(): Promise<WebhookReceiver> {
  const started = await startWebhookReceiver();
  closers.push(() => started.close());
  return started;
}

function setup(hook: WebhookReceiver, config: Partial<AlertsConfig> = {}) {
  const clock = { now: Date.UTC(2026, 0, 5, 8) };
  const events = new EventEmitter();
  const logger = recordingLogger();
  let queue: QueueItem[] = [];
  const alerts = createAlerts({
    config: { ...parseConfig({}).config.alerts, webhookUrl: hook.url, ...config },
    events,
    listQueue: () => queue,
    logger,
    host: 'office-pc',
    now: () => clock.now,
  });
  closers.push(async () => alerts.stop());
  const hold = () => heldOnSignIn(clock.now, signInRefused);
  return { clock, events, logger, alerts, hold, setQueue: (items: QueueItem[]) => void (queue = items) };
}

function queued(id: string, receivedAt: number): QueueItem {
  return {
    id,
    status: 'deferred',
    receivedAt,
    client: '10.0.0.5',
    mailFrom: 'scanner@contoso.com',
    rcptTo: ['alice@contoso.com'],
    size: 1000,
    attempts: 3,
    nextAttemptAt: receivedAt + 60_000,
    lastError: '451 4.4.1 temporary',
    lastDiagnosis: 'upstream-unreachable',
  };
}

const kinds = (hook: WebhookReceiver) => hook.received.map((r) => (r.body as { kind: string }).kind);

describe('config', () => {
  it('defaults to off, json, 30 minutes, no admin mail, sender notices on, no digest', () => {
    expect(parseConfig({}).config.alerts).toEqual({
      webhookUrl: null,
      webhookFormat: 'json',
      queueAgeMinutes: 30,
      email: null,
      senderNotices: true,
      digest: 'off',
      digestHour: 8,
    });
  });

  it('reports each bad alerts key by path, with what to write instead', () => {
    const problems = (alerts: unknown) =>
      parseConfig({ alerts }).problems.filter((p) => p.path.startsWith('alerts'));
    expect(problems({ webhookUrl: 'http://hooks.example.com/x' })).toEqual([
      {
        path: 'alerts.webhookUrl',
        message:
          'must be an https:// URL (http:// is accepted only for a receiver on this computer, 127.0.0.1 or ::1)',
      },
    ]);
    expect(problems({ webhookUrl: 'teams' })[0]!.message).toMatch(/^must be a URL such as https:/);
    expect(problems({ webhookFormat: 'Teams' })[0]!.message).toContain("(did you mean 'teams'?)");
    expect(problems({ queueAgeMinutes: 0 })[0]).toMatchObject({ path: 'alerts.queueAgeMinutes' });
    expect(problems({ webhookUrl: 'http://127.0.0.1:8080/hook', webhookFormat: 'slack' })).toEqual([]);
    expect(
      parseConfig({ alerts: { webhookUrl: 'https://x.webhook.office.com/a' } }).config.alerts.webhookUrl,
    ).toBe('https://x.webhook.office.com/a');
  });
});

describe('webhook payloads', () => {
  it('generic JSON carries kind, title, text, time and host', () => {
    expect(webhookPayload(ALERT, 'json', 'office-pc')).toEqual({
      kind: 'held',
      title: 'Mail is held',
      text: 'Sign-in refused.',
      time: '2026-01-05T08:00:00.000Z',
      host: 'office-pc',
    });
  });

  it('Slack gets {text}', () => {
    expect(webhookPayload(ALERT, 'slack', 'office-pc')).toEqual({
      text: '*RelayDesk on office-pc: Mail is held*\nSign-in refused.',
    });
  });

  it('Teams gets an Adaptive Card in a message envelope', () => {
    const payload = webhookPayload(ALERT, 'teams', 'office-pc') as {
      type: string;
      attachments: {
        contentType: string;
        content: { type: string; version: string; body: { text: string }[] };
      }[];
    };
    expect(payload.type).toBe('message');
    expect(payload.attachments).toHaveLength(1);
    const [card] = payload.attachments;
    expect(card!.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(card!.content).toMatchObject({ type: 'AdaptiveCard', version: '1.2' });
    expect(card!.content.body.map((block) => block.text)).toEqual([
      'RelayDesk on office-pc: Mail is held',
      'Sign-in refused.',
    ]);
  });

  it('cuts registered secrets out of every shape', () => {
    registerSecret('Hunter2-Alerts-Secret');
    const leaky: Alert = { ...ALERT, text: 'upstream echoed Hunter2-Alerts-Secret back' };
    for (const format of ['json', 'slack', 'teams'] as const) {
      const body = JSON.stringify(webhookPayload(leaky, format, 'office-pc'));
      expect(body).not.toContain('Hunter2-Alerts-Secret');
      expect(body).toContain('[secret]');
    }
  });
});

describe('sending', () => {
  it('POSTs JSON and reports the status; a refusing or absent receiver is an outcome, not a throw', async () => {
    const hook = await receiver();
    expect(await sendWebhook(ALERT, { url: hook.url, format: 'json' })).toEqual({ ok: true, status: 200 });
    expect(hook.received[0]).toMatchObject({ path: '/hook/abc123', contentType: 'application/json' });

    hook.answerWith(403);
    expect(await sendWebhook(ALERT, { url: hook.url, format: 'json' })).toMatchObject({
      ok: false,
      status: 403,
    });

    const gone = await startWebhookReceiver();
    await gone.close();
    expect(await sendWebhook(ALERT, { url: gone.url, format: 'json' })).toMatchObject({
      ok: false,
      status: null,
    });
  });

  it('logs alert-failed without the webhook path (it holds the key)', async () => {
    const hook = await receiver();
    hook.answerWith(500);
    const { events, logger, alerts, hold } = setup(hook);
    events.emit('held', hold());
    await alerts.settled();
    const failed = logger.records.find((r) => r.event === 'alert-failed');
    expect(failed).toMatchObject({ kind: 'held', status: 500 });
    expect(JSON.stringify(failed)).not.toContain('abc123');
  });
});

describe('dedupe and rate limit', () => {
  it('sends held once while held, and again only after a release', async () => {
    const hook = await receiver();
    const { events, alerts, hold } = setup(hook);
    events.emit('held', hold());
    events.emit('held', hold());
    await alerts.settled();
    expect(kinds(hook)).toEqual(['held']);
    const text = (hook.received[0]!.body as { text: string; title: string }).text;
    expect(text).toContain(signInRefused.title);
    expect(text).toContain(signInRefused.fix);

    events.emit('released');
    events.emit('held', hold());
    await alerts.settled();
    expect(kinds(hook)).toEqual(['held', 'held']);
  });

  it('a failed message: queue id, recipient count and diagnosis, no body; once per message', async () => {
    const hook = await receiver();
    const { events, alerts } = setup(hook);
    const failure = {
      message: { envelope: { id: 'Q123', mailFrom: 'scanner@contoso.com', client: { ip: '10.0.0.5' } } },
      recipients: [{ address: 'a@contoso.com' }, { address: 'b@contoso.com' }],
      diagnosis: signInRefused,
    };
    events.emit('failed', failure);
    events.emit('failed', failure);
    await alerts.settled();
    expect(kinds(hook)).toEqual(['failed']);
    const { text } = hook.received[0]!.body as { text: string };
    expect(text).toContain('Q123');
    expect(text).toContain('2 recipients');
    expect(text).toContain(signInRefused.title);
  });

  it('a denied device once per IP per day', async () => {
    const hook = await receiver();
    const { clock, events, alerts } = setup(hook);
    events.emit('denied', { ip: '10.0.0.9', sender: 'x@contoso.com' });
    events.emit('denied', { ip: '10.0.0.9', sender: 'x@contoso.com' });
    events.emit('denied', { ip: '10.0.0.10', sender: 'x@contoso.com' });
    clock.now += 23 * 60 * 60 * 1000;
    events.emit('denied', { ip: '10.0.0.9', sender: 'x@contoso.com' });
    await alerts.settled();
    expect(kinds(hook)).toEqual(['device-denied', 'device-denied']);
    clock.now += 2 * 60 * 60 * 1000;
    events.emit('denied', { ip: '10.0.0.9', sender: 'x@contoso.com' });
    await alerts.settled();
    expect(kinds(hook)).toEqual(['device-denied', 'device-denied', 'device-denied']);
    expect((hook.received[2]!.body as { title: string }).title).toContain('10.0.0.9');
  });

  it('queue-age when the oldest waiting message passes the line, once until the queue is young again', async () => {
    const hook = await receiver();
    const { clock, alerts, setQueue } = setup(hook, { queueAgeMinutes: 30 });
    setQueue([queued('OLD', clock.now - 29 * 60_000), queued('NEW', clock.now - 60_000)]);
    alerts.checkQueueAge();
    await alerts.settled();
    expect(kinds(hook)).toEqual([]);

    clock.now += 2 * 60_000;
    alerts.checkQueueAge();
    alerts.checkQueueAge();
    await alerts.settled();
    expect(kinds(hook)).toEqual(['queue-age']);
    expect((hook.received[0]!.body as { text: string }).text).toContain('OLD');

    setQueue([]);
    alerts.checkQueueAge();
    setQueue([queued('LATER', clock.now - 31 * 60_000)]);
    alerts.checkQueueAge();
    await alerts.settled();
    expect(kinds(hook)).toEqual(['queue-age', 'queue-age']);
  });

  it(`at most ${MAX_PER_HOUR} an hour, then one "more alerts suppressed", then alerts again the next hour`, async () => {
    const hook = await receiver();
    const { clock, events, alerts } = setup(hook);
    for (let i = 0; i < MAX_PER_HOUR + 5; i += 1) {
      events.emit('denied', { ip: `10.0.1.${i}`, sender: '' });
      clock.now += 60_000;
    }
    await alerts.settled();
    expect(kinds(hook)).toEqual([...Array<string>(MAX_PER_HOUR).fill('device-denied'), 'suppressed']);

    clock.now += 60 * 60_000;
    events.emit('denied', { ip: '10.0.2.1', sender: '' });
    await alerts.settled();
    expect(kinds(hook).at(-1)).toBe('device-denied');
    expect(hook.received).toHaveLength(MAX_PER_HOUR + 2);
  });

  it('listens to nothing when no webhook is configured', () => {
    const events = new EventEmitter();
    const alerts = createAlerts({
      config: parseConfig({}).config.alerts,
      events,
      listQueue: () => [],
      logger: recordingLogger(),
    });
    closers.push(async () => alerts.stop());
    expect(events.listenerCount('denied')).toBe(0);
    expect(events.listenerCount('held')).toBe(0);
  });
});
