/**
 * Bad days: an upstream that refuses, resets, stalls or speaks the wrong TLS; a full disk; a damaged
 * spool file. Acknowledged mail stays queued with the reason shown, is delivered once the fault is
 * gone, and is not sent twice; a full disk gets 452 4.3.1, never a 250 that cannot be kept.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Emulator, type EmulatorOptions } from '../fixtures/exchange-emulator.ts';
import { testCa } from '../fixtures/tls.ts';
import { writeLegacyMessage } from '../fixtures/legacy-spool.ts';
import {
  createTeardown,
  eventually,
  freePort,
  queueFiles,
  type Relay,
  sendMail,
  SmtpDevice,
  startEmulator,
  startRelay,
  startRelayWithEmulator,
  startRelayWithUpstreamDown,
  tempDir,
  testConfig,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE =
  'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: fault\r\nMessage-ID: <fault@scanner>\r\n\r\nScan attached.\r\n';

const setup = (config: Record<string, unknown> = {}, emulator: EmulatorOptions = {}) =>
  startRelayWithEmulator(teardown, {
    // Retries are driven by `queue flush` below, so nothing is retried behind the test's back.
    config: { queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 }, ...config },
    emulator,
  });

async function send(relay: Relay, to = 'alice@contoso.com') {
  const sent = await sendMail(relay.port, { from: 'john@contoso.com', to: [to], data: MESSAGE });
  expect(sent.final).toMatch(/^250 2\.0\.0 Ok: queued as /);
  return sent.queueId!;
}

async function statusOf(relay: Relay) {
  return JSON.parse((await relay.cli(['status', '--json'])).stdout);
}

/**
 * After the fault: the message is still queued and `status` and `queue list` say why; once the fault
 * is gone and the admin flushes, it arrives exactly once and leaves the spool.
 */
async function expectQueuedThenDeliveredOnce(
  relay: Relay,
  emulator: Emulator,
  queueId: string,
  expected: { state: 'error' | 'held'; diagnosis: string; reason: RegExp },
  fix: () => void,
) {
  const status = await eventually(async () => {
    const report = await statusOf(relay);
    return report.upstream.lastError?.diagnosis.id === expected.diagnosis ? report : null;
  });
  expect(status.upstream.state).toBe(expected.state);
  expect(status.upstream.lastError.reply).toMatch(expected.reason);
  expect(status.queue[expected.state === 'held' ? 'held' : 'deferred']).toBe(1);
  const text = (await relay.cli(['status'])).stdout;
  expect(text).toContain(status.upstream.lastError.reply);
  expect(text).toContain(status.upstream.lastError.diagnosis.explanation);
  const [entry] = JSON.parse((await relay.cli(['queue', 'list', '--json'])).stdout);
  expect(entry).toMatchObject({ id: queueId, attempts: 1 });
  expect(entry.lastError).toMatch(expected.reason);
  expect(await queueFiles(relay.dataDir)).toEqual([queueId]);
  const before = emulator.messages.length;

  fix();
  expect((await relay.cli(['queue', 'flush'])).stdout).toContain('Retrying 1 message(s) now.');
  await emulator.waitForMessages(before + 1);
  await relay.waitForLog((r) => r.event === 'delivered' && r.queueId === queueId);
  await eventually(async () => (await queueFiles(relay.dataDir)).length === 0);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const copies = emulator.messages.filter((m) => m.data.toString('latin1').includes(`id ${queueId};`));
  expect(copies).toHaveLength(1);
}

/** An upstream fault: how it is staged, what `status` must say about it, and how it goes away. */
interface UpstreamFault {
  name: string;
  config?: Record<string, unknown>;
  emulator?: EmulatorOptions;
  stage?: (emulator: Emulator) => void;
  expected: { state: 'error' | 'held'; diagnosis: string; reason: RegExp };
  fix: (emulator: Emulator) => void;
  /** What else must hold once the message went out; `elapsedMs` from the send to its delivery. */
  afterwards?: (emulator: Emulator, elapsedMs: number) => void;
}

const clearScript = (emulator: Emulator) => emulator.clearScript();

const UPSTREAM_FAULTS: UpstreamFault[] = [
  {
    name: 'keeps the message queued while the upstream refuses it with 451, then delivers it once',
    stage: (emulator) =>
      emulator.script('message', '451 4.3.0 Temporary server error. Please try again later'),
    expected: { state: 'error', diagnosis: 'reply-4xx', reason: /451 4\.3\.0 Temporary server error/ },
    fix: clearScript,
    afterwards: (emulator) => expect(emulator.messages).toHaveLength(1),
  },
  {
    name: 'keeps the message queued while the upstream turns every connection away with 421',
    stage: (emulator) =>
      emulator.script('connect', '421 4.3.2 Service not available, closing transmission channel'),
    expected: { state: 'error', diagnosis: 'reply-421', reason: /421 4\.3\.2 Service not available/ },
    fix: clearScript,
  },
  {
    name: 'keeps the message queued when the connection is reset mid-DATA, then delivers it once',
    stage: (emulator) => emulator.script('message', { resetMidData: true }),
    expected: { state: 'error', diagnosis: 'connection-reset', reason: /ECONNRESET|EPIPE|reset|closed/i },
    fix: clearScript,
    afterwards: (emulator) =>
      expect(emulator.transcript.some((line) => line.includes('reset after'))).toBe(true),
  },
  {
    name: 'gives up on an upstream that stalls after DATA within upstream.timeoutSeconds, keeps the message, delivers it once',
    config: { upstream: { timeoutSeconds: 2 } },
    stage: (emulator) => emulator.script('data', { stall: true }),
    expected: { state: 'error', diagnosis: 'connection-timeout', reason: /ETIMEDOUT/ },
    fix: clearScript,
    afterwards: (_emulator, elapsedMs) => expect(elapsedMs).toBeGreaterThanOrEqual(2000),
  },
  {
    name: 'holds the queue on an untrusted certificate, explains it, and delivers once it is fixed',
    emulator: { certificate: 'untrusted' },
    expected: {
      state: 'held',
      diagnosis: 'tls-untrusted-certificate',
      reason: /self[- ]signed|certificate/i,
    },
    fix: (emulator) => emulator.setOptions({ certificate: 'trusted' }),
  },
  {
    name: 'holds the queue on an upstream that only speaks TLS 1.0, and never downgrades',
    emulator: { tlsVersions: { min: 'TLSv1', max: 'TLSv1' } },
    expected: { state: 'held', diagnosis: 'tls-old-version', reason: /protocol|version/i },
    fix: (emulator) => emulator.setOptions({ tlsVersions: { min: 'TLSv1.2', max: 'TLSv1.3' } }),
    afterwards: (emulator) => expect(emulator.messages[0]!.tlsProtocol).toMatch(/^TLSv1\.[23]$/),
  },
];

describe('upstream faults', () => {
  // `%s` of the name: `$name` would quote and shorten it.
  it.each(UPSTREAM_FAULTS.map((fault) => [fault.name, fault] as const))('%s', async (_name, fault) => {
    const { emulator, relay } = await setup(fault.config, fault.emulator);
    fault.stage?.(emulator);
    const started = Date.now();
    const id = await send(relay);
    await expectQueuedThenDeliveredOnce(relay, emulator, id, fault.expected, () => fault.fix(emulator));
    fault.afterwards?.(emulator, Date.now() - started);
  });
});

/** Mounting a small tmpfs needs root (CAP_SYS_ADMIN); CI and the dev machines run as root. */
function canMount(): boolean {
  try {
    return process.getuid?.() === 0 && execFileSync('which', ['mount']).length > 0;
  } catch {
    return false;
  }
}

/** A data folder whose spool is a tmpfs of `megabytes`: a disk that really fills up. */
async function dataDirWithSmallSpool(megabytes: number): Promise<string> {
  const dataDir = teardown.dir(await tempDir());
  const spool = join(dataDir, 'spool');
  await mkdir(spool);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', spool]);
  teardown.add(() => execFileSync('umount', [spool]));
  return dataDir;
}

/** Writes into `file` until the file system says ENOSPC. */
async function fillUp(file: string): Promise<void> {
  const handle = await open(file, 'w');
  const block = Buffer.alloc(1024 * 1024, 0x61);
  try {
    for (;;) await handle.write(block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close();
  }
}

describe.skipIf(!canMount())('a full disk (a real tmpfs mounted over the spool)', () => {
  it('answers MAIL with 452 4.3.1 when the spool disk has no room left, and stores nothing', async () => {
    const emulator = await startEmulator(teardown);
    const dataDir = await dataDirWithSmallSpool(2);
    const port = await freePort();
    const relay = await startRelay({ config: testConfig(port, emulator.port, testCa.file), dataDir });
    // Killed only: the folder with its mount is the test's to undo.
    teardown.add(() => relay.stop('SIGKILL'));
    const sent = await sendMail(port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: MESSAGE });
    expect(sent.final).toBe('452 4.3.1 Insufficient system storage');
    expect(await queueFiles(dataDir)).toEqual([]);
    expect(emulator.messages).toHaveLength(0);
  });

  it('answers 452 4.3.1, not 250, when the disk fills up during DATA, and keeps what it acknowledged', async () => {
    const upstreamPort = await freePort();
    // 88 MB: the two 8 MB segments the spool preallocates (the one being written and the next), then
    // just above the 64 MB the relay keeps free, so MAIL is accepted and the write itself fails.
    const dataDir = await dataDirWithSmallSpool(88);
    const port = await freePort();
    const relay = await startRelay({
      config: testConfig(port, upstreamPort, testCa.file, {
        queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 },
      }),
      dataDir,
    });
    teardown.add(() => relay.stop('SIGKILL'));
    const kept = await send(relay);

    const device = await SmtpDevice.connect(port);
    await device.read();
    await device.command('EHLO scanner');
    expect(await device.command('MAIL FROM:<john@contoso.com>')).toBe('250 2.1.0 Ok');
    expect(await device.command('RCPT TO:<bob@contoso.com>')).toBe('250 2.1.5 Ok');
    const filler = join(dataDir, 'spool', 'filler');
    await fillUp(filler);
    expect(await device.command('DATA')).toMatch(/^354 /);
    // 400 KB: a message with a file of its own, which the full disk refuses (a smaller one would still
    // fit in the segment preallocated before the disk filled, and be safe there).
    device.write(`${MESSAGE}${'x'.repeat(998)}\r\n`.repeat(400));
    expect(await device.command('.')).toBe('452 4.3.1 Insufficient system storage');
    expect(await device.command('MAIL FROM:<john@contoso.com>')).toBe(
      '452 4.3.1 Insufficient system storage',
    );
    device.close();
    const rejected = await relay.waitForLog((r) => r.event === 'rejected');
    expect(String(rejected.reason)).toContain('ENOSPC');
    expect(await readdir(join(dataDir, 'spool', 'incoming'))).toEqual([]);

    // Room again: the acknowledged message was kept and goes out; the refused one never existed.
    await rm(filler);
    const emulator = await startEmulator(teardown, { port: upstreamPort });
    await relay.cli(['queue', 'flush']);
    const [received] = await emulator.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['alice@contoso.com']);
    expect(received!.data.toString('latin1')).toContain(`id ${kept};`);
    await send(relay, 'carol@contoso.com');
    await emulator.waitForMessages(2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(emulator.messages.map((m) => m.rcptTo[0])).toEqual(['alice@contoso.com', 'carol@contoso.com']);
  });
});

describe('a damaged spool', () => {
  it('quarantines damaged spool files with a log line, delivers the rest, and keeps serving', async () => {
    const { relay: first, config, upstreamComesUp } = await startRelayWithUpstreamDown(teardown);
    const dataDir = first.dataDir;
    await send(first);
    await send(first, 'bob@contoso.com');
    await first.stop();

    // Files of their own, as large messages and data folders from before the segment log have them.
    const queueDir = join(dataDir, 'spool', 'queue');
    await writeFile(join(queueDir, 'GARBAGE0001.eml'), Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0a, 0x00]));
    const valid = await readFile(
      await writeLegacyMessage(join(dataDir, 'spool'), {
        id: 'LEGACY0003',
        rcptTo: ['dave@contoso.com'],
        body: MESSAGE,
      }),
      'latin1',
    );
    // Cut inside the envelope line, as a disk error or a careless copy would.
    await writeFile(join(queueDir, 'TRUNCATED0002.eml'), valid.slice(0, 40), 'latin1');
    await writeFile(join(queueDir, 'LEGACY0003.state.json'), '{"nextAttemptAt": 0, "recipi');

    const emulator = await upstreamComesUp();
    const second = teardown.relay(await startRelay({ config, dataDir }));
    await second.cli(['queue', 'flush']);
    const quarantined = second.logs.filter((r) => r.event === 'quarantined');
    expect(quarantined.map((r) => r.file).sort()).toEqual(['GARBAGE0001.eml', 'TRUNCATED0002.eml']);
    expect(quarantined[0]!.level).toBe('error');
    expect(String(quarantined[0]!.reason)).not.toBe('');
    expect((await readdir(join(dataDir, 'spool', 'quarantine'))).sort()).toEqual([
      'GARBAGE0001.eml',
      'TRUNCATED0002.eml',
    ]);

    const received = await emulator.waitForMessages(3);
    expect(received.map((m) => m.rcptTo[0]).sort()).toEqual([
      'alice@contoso.com',
      'bob@contoso.com',
      'dave@contoso.com',
    ]);
    await send(second, 'carol@contoso.com');
    await emulator.waitForMessages(4);
    await eventually(async () => (await queueFiles(dataDir)).length === 0);
    expect(second.process.exitCode).toBeNull();
  });
});
