/**
 * Alerts by mail and their digest: alert mail to `alerts.email` and notices to a failed message's
 * sender, sent through a real SMTP upstream (the Exchange emulator on loopback), not attempted while
 * the upstream is what failed; sign-in expiring; the daily digest, driven by a test clock.
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertsConfig } from '../../electron/config/types.ts';
import { parseConfig } from '../../electron/config/validate.ts';
import {
  createAlerts,
  NOTICES_PER_SENDER,
  SIGNIN_INACTIVE_DAYS,
  type FailedEvent,
} from '../../electron/relay/alerts.ts';
import { openConfigMailer } from '../../electron/relay/alerts-mail.ts';
import { diagnose } from '../../electron/relay/diagnosis.ts';
import { initialState } from '../../electron/relay/spool.ts';
import type { SignedInAccount } from '../../electron/relay/oauth/signed-in.ts';
import { createMemoryStore } from '../../electron/secrets/index.ts';
import { startExchangeEmulator, type Emulator } from '../fixtures/exchange-emulator.ts';
import { testCa } from '../fixtures/tls.ts';
import { replyFailure } from '../fixtures/upstream-failures.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../fixtures/webhook-receiver.ts';
import { testConfig, UPSTREAM_PASSWORD } from '../integration/harness.ts';
import { heldOnSignIn, recordingLogger } from '../fixtures/alerts-rig.ts';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (let close = closers.pop(); close; close = closers.pop()) await close();
});

const DAY_MS = 24 * 60 * 60 * 1000;
const ADMIN = 'admin@contoso.com';

const signInRefused = diagnose(replyFailure('auth', '535 5.7.139 Authentication unsuccessful'));
const recipientUnknown = diagnose(
  replyFailure(
    'rcpt',
    '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup',
  ),
);

const ORIGINAL_HEADERS =
  'From: Scanner <scanner@contoso.com>\r\nTo: nobody@contoso.com\r\nSubject: Scan 0042\r\n' +
  'Message-ID: <scan-0042@mfp.contoso.com>\r\n\r\npage 1 of the scan\r\n';

function failure(id: string, mailFrom = 'scanner@contoso.com'): FailedEvent {
  return {
    message: {
      envelope: {
        id,
        receivedAt: Date.UTC(2026, 0, 5, 8),
        client: {
          ip: '10.0.0.5',
          port: 40000,
          helo: 'mfp',
          listener: '0.0.0.0:25',
          tls: false,
          authUser: null,
        },
        mailFrom,
        rcptTo: ['nobody@contoso.com'],
        eightBit: false,
        smtpUtf8: false,
      },
      state: initialState(['nobody@contoso.com']),
      size: ORIGINAL_HEADERS.length,
      bodyOffset: 0,
    },
    recipients: [{ address: 'nobody@contoso.com', response: '550 5.1.10 RESOLVER.ADR.RecipientNotFound' }],
    diagnosis: recipientUnknown,
  };
}

interface SetupOptions {
  config?: Partial<AlertsConfig>;
  hook?: WebhookReceiver | null;
  headers?: string;
  signedIn?: SignedInAccount | null;
  /** Local time the test clock starts at. */
  start?: Date;
  digestFile?: string;
}

async function setup(options: SetupOptions = {}) {
  const emulator: Emulator = await startExchangeEmulator();
  closers.push(() => emulator.close());
  const relayConfig = parseConfig(testConfig(2525, emulator.port, testCa.file)).config;
  const mail = openConfigMailer(relayConfig, {
    secrets: createMemoryStore(),
    env: { RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD },
  });
  closers.push(() => mail.close());
  const clock = { now: (options.start ?? new Date(2026, 0, 5, 9, 0)).getTime() };
  const events = new EventEmitter();
  const logger = recordingLogger();
  const state = { held: false, signedIn: options.signedIn ?? null };
  const alerts = createAlerts({
    config: {
      ...relayConfig.alerts,
      webhookUrl: options.hook?.url ?? null,
      email: ADMIN,
      ...options.config,
    },
    events,
    listQueue: () => [],
    logger,
    host: 'office-pc',
    now: () => clock.now,
    mailer: mail.mailer,
    upstreamHeld: () => state.held,
    readHeaders: async () => Buffer.from(options.headers ?? ORIGINAL_HEADERS, 'latin1'),
    signedIn: () => state.signedIn,
    digestFile: options.digestFile,
  });
  closers.push(async () => alerts.stop());
  const hold = () => heldOnSignIn(clock.now, signInRefused);
  return { emulator, clock, events, logger, alerts, state, hold };
}

async function webhook(): Promise<WebhookReceiver> {
  const hook = await startWebhookReceiver();
  closers.push(() => hook.close());
  return hook;
}

/** The mail as a reader sees it: quoted-printable soft breaks and escapes undone. */
const text = (data: Buffer) =>
  Buffer.from(
    data
      .toString('latin1')
      .replace(/=\r\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'latin1',
  ).toString('utf8');
const to = (emulator: Emulator, address: string) =>
  emulator.messages.filter((m) => m.rcptTo.includes(address));

describe('config', () => {
  it('reports bad email, digest and digestHour values by path', () => {
    const problems = (alerts: unknown) =>
      parseConfig({ alerts }).problems.filter((p) => p.path.startsWith('alerts'));
    expect(problems({ email: 'the admin' })).toEqual([
      { path: 'alerts.email', message: 'must be a mail address such as john@contoso.com' },
    ]);
    expect(problems({ digest: 'weekly' })[0]).toEqual({
      path: 'alerts.digest',
      message: "must be one of 'off', 'daily'",
    });
    expect(problems({ digestHour: 24 })[0]!.message).toBe(
      'must be an integer from 0 to 23 (the hour of the local day, 8 for 08:00)',
    );
    expect(problems({ senderNotices: 'yes' })[0]).toMatchObject({ path: 'alerts.senderNotices' });
    expect(problems({ emial: ADMIN })[0]!.message).toContain('did you mean');
    expect(problems({ email: ADMIN, digest: 'daily', digestHour: 0, senderNotices: false })).toEqual([]);
  });
});

describe('alert mail to alerts.email', () => {
  it('goes through the upstream, from its mailbox, marked as automatic', async () => {
    const { emulator, events, alerts } = await setup();
    events.emit('denied', { ip: '10.0.0.9', sender: 'x@contoso.com' });
    await alerts.settled();
    const [mail] = to(emulator, ADMIN);
    expect(mail).toBeDefined();
    expect(mail!.mailFrom).toBe('john@contoso.com');
    expect(mail!.authUser).toBe('john@contoso.com');
    const body = text(mail!.data);
    expect(body).toMatch(/^From: "RelayDesk on office-pc" <john@contoso\.com>$/m);
    expect(body).toMatch(/^Subject: RelayDesk on office-pc: A device was refused: 10\.0\.0\.9$/m);
    expect(body).toMatch(/^Auto-Submitted: auto-replied$/m);
    expect(body).toContain('add its address to "allowedClients"');
  });

  it('is not attempted while the upstream is held: the webhook says so, and the mail follows once it flows again', async () => {
    const hook = await webhook();
    const { emulator, events, alerts, state, hold, logger } = await setup({ hook });
    state.held = true;
    events.emit('held', hold());
    events.emit('denied', { ip: '10.0.0.9', sender: '' });
    await alerts.settled();
    expect(emulator.messages).toHaveLength(0);
    expect(emulator.stats.connections).toBe(0);
    expect(hook.received).toHaveLength(2);
    for (const received of hook.received) {
      expect((received.body as { text: string }).text).toContain(
        `Not emailed to ${ADMIN}: the upstream is what failed`,
      );
    }
    expect(logger.records.filter((r) => r.event === 'alert-email-skipped')).toHaveLength(2);

    state.held = false;
    events.emit('released');
    await alerts.settled();
    const [later] = to(emulator, ADMIN);
    expect(text(later!.data)).toMatch(/^Subject: RelayDesk on office-pc: Mail flows again$/m);
    expect(text(later!.data)).toContain('2 alerts could not be emailed');
    expect(text(later!.data)).toContain('Mail is held: ');
    expect(hook.received).toHaveLength(2);

    // Once mailed, the missed alerts are not mailed again at the next release.
    events.emit('released');
    await alerts.settled();
    expect(to(emulator, ADMIN)).toHaveLength(1);
  });

  it('a refused alert mail is told on the webhook and raises nothing more', async () => {
    const hook = await webhook();
    const { emulator, events, alerts, logger } = await setup({ hook });
    emulator.script('rcpt', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found', {
      match: (address) => address === ADMIN,
    });
    events.emit('denied', { ip: '10.0.0.9', sender: '' });
    await alerts.settled();
    expect(emulator.messages).toHaveLength(0);
    expect(hook.received).toHaveLength(1);
    expect((hook.received[0]!.body as { text: string }).text).toMatch(
      /The email alert to admin@contoso\.com could not be sent: .*550 5\.1\.10/,
    );
    expect(logger.records.find((r) => r.event === 'alert-failed')).toMatchObject({ channel: 'email' });
  });
});

describe("notice to a failed message's sender", () => {
  it('is an RFC 3464 report with the original headers, sent to the envelope sender', async () => {
    const { emulator, events, alerts } = await setup({ config: { email: null } });
    events.emit('failed', failure('Q1'));
    await alerts.settled();
    const [notice] = to(emulator, 'scanner@contoso.com');
    expect(notice).toBeDefined();
    expect(notice!.mailFrom).toBe('john@contoso.com');
    const body = text(notice!.data);
    expect(body).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(body).toMatch(/^Subject: Undeliverable: Scan 0042$/m);
    expect(body).toMatch(/^In-Reply-To: <scan-0042@mfp\.contoso\.com>$/m);
    expect(body).toMatch(/^Auto-Submitted: auto-replied$/m);
    expect(body).toMatch(/^Content-Type: message\/delivery-status$/m);
    expect(body).toMatch(/^Final-Recipient: rfc822; nobody@contoso\.com$/m);
    expect(body).toMatch(/^Action: failed$/m);
    expect(body).toMatch(/^Status: 5\.1\.10$/m);
    expect(body).toMatch(/^Reporting-MTA: dns; office-pc$/m);
    expect(body).toMatch(/^Content-Type: text\/rfc822-headers$/m);
    expect(body).toContain('Message-ID: <scan-0042@mfp.contoso.com>');
    expect(body).toContain(recipientUnknown.title);
    // Headers only: the scan itself does not travel back.
    expect(body).not.toContain('page 1 of the scan');
  });

  it('never to the null sender, never for a notice itself, and at most NOTICES_PER_SENDER an hour to one sender', async () => {
    const { emulator, events, alerts, logger, clock } = await setup({ config: { email: null } });
    events.emit('failed', failure('NULL', ''));
    await alerts.settled();
    expect(emulator.messages).toHaveLength(0);
    expect(logger.records.at(-1)).toMatchObject({
      event: 'notice-skipped',
      reason: 'the message has a null sender (<>)',
    });

    for (let i = 0; i < NOTICES_PER_SENDER + 2; i += 1) events.emit('failed', failure(`R${i}`));
    await alerts.settled();
    expect(to(emulator, 'scanner@contoso.com')).toHaveLength(NOTICES_PER_SENDER);
    expect(
      logger.records.filter((r) => r.event === 'notice-skipped' && /rate limit/.test(String(r.reason))),
    ).toHaveLength(2);

    events.emit('failed', failure('OTHER', 'helpdesk@contoso.com'));
    clock.now += 61 * 60_000;
    events.emit('failed', failure('LATER'));
    await alerts.settled();
    expect(to(emulator, 'helpdesk@contoso.com')).toHaveLength(1);
    expect(to(emulator, 'scanner@contoso.com')).toHaveLength(NOTICES_PER_SENDER + 1);
  });

  it('no notice for a message that is itself automatic (Auto-Submitted, multipart/report)', async () => {
    for (const headers of [
      'From: a@contoso.com\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\n',
      'From: a@contoso.com\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n',
    ]) {
      const { emulator, events, alerts, logger } = await setup({ config: { email: null }, headers });
      events.emit('failed', failure('AUTO'));
      await alerts.settled();
      expect(emulator.messages).toHaveLength(0);
      expect(logger.records.at(-1)).toMatchObject({ reason: 'the message is itself an automatic notice' });
    }
  });

  it('off with senderNotices false', async () => {
    const { emulator, events, alerts } = await setup({ config: { email: null, senderNotices: false } });
    events.emit('failed', failure('Q1'));
    await alerts.settled();
    expect(emulator.stats.connections).toBe(0);
  });
});

describe('sign-in expiring', () => {
  it(`warns once when the sign-in was not renewed for ${SIGNIN_INACTIVE_DAYS - 14} days, again only after a renewal`, async () => {
    const hook = await webhook();
    const start = new Date(2026, 0, 5, 9, 0);
    const account: SignedInAccount = {
      username: 'john@contoso.com',
      name: 'John',
      method: 'browser',
      signedInAt: start.getTime() - 100 * DAY_MS,
      lastRefreshAt: start.getTime() - 75 * DAY_MS,
      app: 'contoso.com:3f2a',
    };
    const { alerts, clock, state } = await setup({ hook, config: { email: null }, signedIn: account, start });
    alerts.tick();
    await alerts.settled();
    expect(hook.received).toHaveLength(0);

    clock.now += 2 * DAY_MS;
    alerts.tick();
    alerts.tick();
    await alerts.settled();
    expect(hook.received.map((r) => (r.body as { kind: string }).kind)).toEqual(['signin-expiring']);
    const { title, text: body } = hook.received[0]!.body as { title: string; text: string };
    expect(title).toBe('Sign-in expiring: john@contoso.com in 13 days');
    expect(body).toContain('relaydesk signin');

    state.signedIn = { ...account, lastRefreshAt: clock.now };
    alerts.tick();
    state.signedIn = { ...account, lastRefreshAt: clock.now - 80 * DAY_MS };
    alerts.tick();
    await alerts.settled();
    expect(hook.received).toHaveLength(2);
  });
});

describe('daily digest', () => {
  it('keeps what it collected and when it is due across a restart (Windows Update at night)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaydesk-digest-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const digestFile = join(dir, 'alerts-digest.json');
    const hook = await webhook();
    const config = { digest: 'daily' as const, digestHour: 8 };
    const before = await setup({ hook, config, digestFile, start: new Date(2026, 0, 5, 17, 0) });
    before.events.emit('denied', { ip: '10.0.0.1', sender: '' });
    before.events.emit('denied', { ip: '10.0.0.2', sender: '' });
    await before.alerts.settled();
    before.alerts.stop();
    expect(existsSync(digestFile)).toBe(true);

    // Restarted at 03:00, and down again at 08:00: the summary goes at the first minute it runs after that.
    const after = await setup({ hook, config, digestFile, start: new Date(2026, 0, 6, 3, 0) });
    after.events.emit('denied', { ip: '10.0.0.3', sender: '' });
    after.clock.now = new Date(2026, 0, 6, 9, 12).getTime();
    after.alerts.tick();
    await after.alerts.settled();
    expect(hook.received).toHaveLength(1);
    const digest = hook.received[0]!.body as { title: string; text: string };
    expect(digest.title).toBe('Daily summary: 3 alerts');
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) expect(digest.text).toContain(ip);
    const saved = JSON.parse(readFileSync(digestFile, 'utf8')) as { collected: unknown[]; dueAt: number };
    expect(saved).toEqual({ collected: [], dueAt: new Date(2026, 0, 7, 8, 0).getTime() });
  });

  it('collects alerts and sends one summary at digestHour local time, nothing on a quiet day', async () => {
    const hook = await webhook();
    const start = new Date(2026, 0, 5, 9, 30);
    const { emulator, events, alerts, clock } = await setup({
      hook,
      config: { digest: 'daily', digestHour: 8 },
      start,
    });
    for (let i = 0; i < 3; i += 1) events.emit('denied', { ip: `10.0.0.${i}`, sender: '' });
    clock.now = new Date(2026, 0, 6, 7, 59).getTime();
    alerts.tick();
    await alerts.settled();
    expect(hook.received).toHaveLength(0);
    expect(emulator.messages).toHaveLength(0);

    clock.now = new Date(2026, 0, 6, 8, 0).getTime();
    alerts.tick();
    alerts.tick();
    await alerts.settled();
    expect(hook.received).toHaveLength(1);
    const digest = hook.received[0]!.body as { kind: string; title: string; text: string };
    expect(digest.kind).toBe('digest');
    expect(digest.title).toBe('Daily summary: 3 alerts');
    for (let i = 0; i < 3; i += 1) expect(digest.text).toContain(`A device was refused: 10.0.0.${i}`);
    const mails = to(emulator, ADMIN);
    expect(mails).toHaveLength(1);
    expect(text(mails[0]!.data)).toMatch(/^Subject: RelayDesk on office-pc: Daily summary: 3 alerts$/m);

    clock.now = new Date(2026, 0, 7, 8, 1).getTime();
    alerts.tick();
    await alerts.settled();
    expect(hook.received).toHaveLength(1);

    events.emit('denied', { ip: '10.0.0.99', sender: '' });
    clock.now = new Date(2026, 0, 8, 8, 0).getTime();
    alerts.tick();
    await alerts.settled();
    expect(hook.received.map((r) => (r.body as { title: string }).title)).toEqual([
      'Daily summary: 3 alerts',
      'Daily summary: 1 alert',
    ]);
  });
});
