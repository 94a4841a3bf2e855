import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRelayService, type Notice, type RelayService } from '../../electron/app/service.ts';
import { createLogger } from '../../electron/relay/log.ts';
import { sendControlRequest } from '../../electron/relay/control.ts';
import { createMemoryStore, type SecretStore } from '../../electron/secrets/index.ts';
import type { AppStatus } from '../../electron/shared/ipc.ts';
import { sendFromDevice } from '../fixtures/device-send.ts';
import { startExchangeEmulator, type Emulator } from '../fixtures/exchange-emulator.ts';
import { freePort } from '../fixtures/free-port.ts';
import { until } from '../fixtures/until.ts';
import { UPSTREAM_PASSWORD } from './harness.ts';

const MAILBOX = 'john@contoso.com';

let dir: string;
let emulator: Emulator;
let secrets: SecretStore;
let service: RelayService;
let notices: Notice[];
let listenPort: number;

function draft(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: listenPort, tls: 'none' },
    allowedClients: ['127.0.0.1'],
    upstream: {
      preset: 'custom',
      host: '127.0.0.1',
      port: emulator.port,
      security: 'starttls',
      auth: 'password',
      user: MAILBOX,
      caFile: emulator.caFile,
    },
    queue: { retryForHours: 1, minRetrySeconds: 1, maxRetrySeconds: 2 },
    ...overrides,
  };
}

function lanPort(): number {
  const port = service.status().listeners[0]?.port;
  if (!port) throw new Error('the relay is not listening');
  return port;
}

async function configured(): Promise<void> {
  expect(await service.storeSecret('password', UPSTREAM_PASSWORD, draft())).toMatchObject({ ok: true });
  expect(await service.applyConfig(draft())).toEqual({ ok: true, problems: [] });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relaydesk-service-'));
  emulator = await startExchangeEmulator({ mailbox: MAILBOX, password: UPSTREAM_PASSWORD });
  secrets = createMemoryStore();
  notices = [];
  listenPort = await freePort();
  service = createRelayService({
    dataDir: dir,
    configPath: join(dir, 'config.json'),
    secrets,
    logger: createLogger({ dir: null, console: false }),
    env: {},
    stopTimeoutMs: 2000,
  });
  service.events.on('notice', (n) => notices.push(n));
  await service.start();
});

afterEach(async () => {
  await service.stop();
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the relay service (real relay, Exchange emulator)', () => {
  it('waits for the wizard on first run, and refuses a bad config by field path without saving it', async () => {
    expect(service.status()).toMatchObject({ state: 'unconfigured', health: 'attention' });
    expect((await service.getConfig()).exists).toBe(false);

    const result = await service.applyConfig(draft({ listen: { host: '127.0.0.1', port: 70000 } }));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => p.path)).toContain('listen.port');
    await expect(stat(join(dir, 'config.json'))).rejects.toThrow();
    expect(service.status().state).toBe('unconfigured');
  });

  it('applies a config, relays a device message and shows it in activity with subject and reply', async () => {
    await configured();
    expect(service.status()).toMatchObject({ state: 'running', health: 'ok' });
    const saved = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(saved.upstream.user).toBe(MAILBOX);
    expect(JSON.stringify(saved)).not.toContain(UPSTREAM_PASSWORD);
    expect((await stat(join(dir, 'config.json'))).mode & 0o777).toBe(0o600);

    const reply = await sendFromDevice({
      port: lanPort(),
      from: MAILBOX,
      to: ['bob@fabrikam.com'],
      subject: '=?utf-8?B?U2NhbiDDvGJlciBkYXM=?=',
    });
    expect(reply.final).toMatch(/^250/);
    await emulator.waitForMessages(1);
    const row = await until('the delivered row', () =>
      service.activity().find((r) => r.result === 'delivered' && r.subject !== null),
    );
    expect(row).toMatchObject({
      device: '127.0.0.1',
      from: MAILBOX,
      to: ['bob@fabrikam.com'],
      subject: 'Scan über das',
    });
    expect(row.reply).toMatch(/^250/);
    expect(service.status().today).toMatchObject({ accepted: 1, delivered: 1 });
  });

  it('explains a failed connection test step by step, and passes once the right password is stored', async () => {
    expect(await service.storeSecret('password', 'wrong password', draft())).toMatchObject({ ok: true });
    const failed = await service.testConnection(draft());
    expect(failed.ok).toBe(false);
    expect(failed.steps.map((s) => s.name)).toEqual(expect.arrayContaining(['connect', 'starttls', 'auth']));
    expect(failed.steps.find((s) => s.name === 'auth')?.ok).toBe(false);
    expect(failed.reason).toContain('535 5.7.3');
    expect(failed.diagnosis).toMatchObject({ id: 'auth-failed', category: 'credentials' });
    expect(JSON.stringify(failed)).not.toContain('wrong password');

    await service.storeSecret('password', UPSTREAM_PASSWORD, draft());
    const passed = await service.testConnection(draft());
    expect(passed.ok).toBe(true);
    expect(passed.steps.every((s) => s.ok)).toBe(true);
    expect(emulator.messages).toHaveLength(0);
  });

  it('reports draft problems instead of testing a half-filled upstream', async () => {
    const result = await service.testConnection(draft({ upstream: { auth: 'password', host: '' } }));
    expect(result.ok).toBe(false);
    expect(result.steps).toEqual([]);
    expect(result.problems.map((p) => p.path)).toContain('upstream.host');
  });

  it('never hands back a stored secret: getConfig only says where it is', async () => {
    await configured();
    const view = await service.getConfig();
    expect(view.secrets).toEqual({ password: 'keychain', clientSecret: null });
    expect(JSON.stringify(view)).not.toContain(UPSTREAM_PASSWORD);
    const noUser = await service.storeSecret('password', 'x', { upstream: { host: 'smtp.office365.com' } });
    expect(noUser.ok).toBe(false);
    expect(noUser.error).toContain('upstream.user');
  });

  it('shows a denied device with a notice, and lets it relay once allowed', async () => {
    await configured();
    const refused = await sendFromDevice({
      port: lanPort(),
      localAddress: '127.0.0.2',
      from: MAILBOX,
      to: ['bob@fabrikam.com'],
      subject: 'From the fax',
    });
    expect(refused.final).toMatch(/^550 5\.7\.1/);
    const device = await until('the denied device', () =>
      service.status().devices.find((d) => d.ip === '127.0.0.2'),
    );
    expect(device.allowed).toBe(false);
    expect(notices).toContainEqual(
      expect.objectContaining({ kind: 'denied', title: expect.stringContaining('127.0.0.2') }),
    );
    expect(service.activity()[0]).toMatchObject({ result: 'denied', device: '127.0.0.2' });

    expect(await service.allowDevice('127.0.0.2')).toEqual({ ok: true, problems: [] });
    expect(service.status().devices.find((d) => d.ip === '127.0.0.2')?.allowed).toBe(true);
    const saved = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(saved.allowedClients).toEqual(['127.0.0.1', '127.0.0.2']);

    const accepted = await sendFromDevice({
      port: lanPort(),
      localAddress: '127.0.0.2',
      from: MAILBOX,
      to: ['bob@fabrikam.com'],
      subject: 'From the fax, again',
    });
    expect(accepted.final).toMatch(/^250/);
    const [message] = await emulator.waitForMessages(1);
    expect(message!.data.toString()).toContain('From the fax, again');
  });

  it('keeps deferred mail across a settings change and shows attention until it goes out', async () => {
    await configured();
    emulator.script('mail', '451 4.7.500 Server busy. Please try again later.');
    await sendFromDevice({ port: lanPort(), from: MAILBOX, to: ['bob@fabrikam.com'], subject: 'Deferred' });
    await until('the deferral', () => service.status().queue.deferred === 1);
    expect(service.status().health).toBe('attention');
    expect(service.status().summary).toContain('deferred');
    expect(service.activity()[0]).toMatchObject({ result: 'deferred' });

    expect(await service.applyConfig(draft({ limits: { maxRecipients: 50 } }))).toMatchObject({ ok: true });
    expect(service.listQueue()).toHaveLength(1);
    emulator.clearScript();
    service.flush();
    await emulator.waitForMessages(1);
    await until(
      'an empty queue',
      () => service.status().queue.deferred + service.status().queue.queued === 0,
    );
    // The upstream's state follows the delivery's outcome a moment after the queue empties.
    await until('health ok', () => service.status().health === 'ok');
  });

  it('holds mail on a wrong password (error, with a notice) and delivers it once the password is fixed', async () => {
    await service.storeSecret('password', 'wrong password', draft());
    await service.applyConfig(draft());
    await sendFromDevice({ port: lanPort(), from: MAILBOX, to: ['bob@fabrikam.com'], subject: 'Held' });
    const held = await until('the hold', () =>
      service.status().health === 'error' ? service.status() : null,
    );
    expect(held.summary).toContain('Delivery on hold');
    expect(held.upstream.hold?.diagnosis.id).toBe('auth-failed');
    expect(notices).toContainEqual(expect.objectContaining({ kind: 'held' }));

    await service.storeSecret('password', UPSTREAM_PASSWORD, draft());
    await emulator.waitForMessages(1);
    await until('health ok', () => service.status().health === 'ok');
  });

  it('pauses (devices cannot connect, tray paused) and resumes on the same settings', async () => {
    await configured();
    const port = lanPort();
    const paused = await service.pause();
    expect(paused).toMatchObject({ state: 'paused', health: 'paused' });
    await expect(sendFromDevice({ port, from: MAILBOX, to: ['a@b.c'], subject: 'x' })).rejects.toThrow(
      /ECONNREFUSED/,
    );
    const live = await sendControlRequest(dir, { op: 'status' });
    expect(live).toMatchObject({ ok: true, status: { running: false } });

    const resumed = await service.resume();
    expect(resumed).toMatchObject({ state: 'running', health: 'ok' });
  });

  it('keeps the running relay when new settings cannot bind their port, and names the field', async () => {
    await configured();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const result = await service.applyConfig(draft({ listen: { host: '127.0.0.1', port: taken } }));
      expect(result.ok).toBe(false);
      expect(result.problems[0]).toMatchObject({
        path: 'listen.port',
        message: expect.stringContaining('already in use'),
      });
      expect(service.status().state).toBe('running');
      const saved = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
      expect(saved.listen.port).toBe(listenPort);
    } finally {
      blocker.close();
    }
  });

  it('sends the one-click test email to the mailbox and lists it in activity', async () => {
    await configured();
    const pushed: AppStatus[] = [];
    service.events.on('status', (s) => pushed.push(s));
    const result = await service.sendTestEmail(null);
    expect(result).toMatchObject({ ok: true, to: MAILBOX });
    expect(result.reply).toMatch(/^250/);
    const [message] = await emulator.waitForMessages(1);
    expect(message!.rcptTo).toEqual([MAILBOX]);
    expect(service.activity()[0]).toMatchObject({ result: 'test-delivered', to: [MAILBOX] });
    await until('a status push', () => pushed.length > 0);
  });
});
