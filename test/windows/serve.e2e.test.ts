/**
 * `relaydesk serve` on Windows (Node.js for Windows in Wine, .ci/windows-lane.sh) with its data in
 * C:\, driven from the Linux side: devices send over loopback, the Exchange Online emulator is the
 * upstream and the sink, `status` and `queue list` (node.exe too) ask the relay over its named pipe.
 * Then what Windows does to a mail relay: a restart with mail queued, and another program (an
 * antivirus, an indexer, a backup agent) holding the spool's files, status.json and the log open
 * without delete sharing while the relay delivers and rotates its log. Every message must arrive
 * exactly once, the relay must not die, and Ctrl+C must drain and exit 0.
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFromDevice } from '../fixtures/device-send.ts';
import { startExchangeEmulator, type Emulator } from '../fixtures/exchange-emulator.ts';
import { freePort, testConfig, UPSTREAM_PASSWORD, type LogRecord } from '../integration/harness.ts';
import {
  buildWindowsProgram,
  laneHome,
  onDriveC,
  relaydeskExe,
  startRelaydeskExe,
  startWine,
  wineMissing,
  windowsPath,
  type WineProcess,
} from './wine.ts';

/** serve's log size limit (electron/relay/log.ts). */
const LOG_ROTATES_AT = 10 * 1024 * 1024;
const env = { RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD };

let emulator: Emulator;
let outputs: string;
let dataDir: string;
let winDataDir: string;
let port: number;
let relay: WineProcess;
let runs = 0;
let sent = 0;

/** The JSON log lines serve printed so far (complete lines only: it may be writing the next). */
function records(run: WineProcess): LogRecord[] {
  return run
    .stdout()
    .split('\n')
    .slice(0, -1)
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogRecord);
}

/** Polls `check` every 100 ms until it returns a value; fails with `describe()` after `timeoutMs`. */
async function until<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startServe(): Promise<WineProcess> {
  runs += 1;
  const run = startRelaydeskExe(
    ['serve', '--config', `${winDataDir}\\config.json`, '--data-dir', winDataDir],
    join(outputs, `serve-${runs}`),
    env,
  );
  let exit: number | null | undefined;
  void run.exited.then((code) => (exit = code));
  await until(
    () => {
      if (exit !== undefined)
        throw new Error(`serve exited with ${exit} before it started:\n${run.stderr()}`);
      return records(run).find((r) => r.event === 'started');
    },
    120_000,
    () => `serve never logged "started":\n${run.stdout()}\n${run.stderr()}`,
  );
  return run;
}

/**
 * Ctrl+C as a console delivers it: Wine's ntdll answers the SIGINT its process gets (what a terminal
 * sends on Ctrl+C) by running the console's CTRL_C_EVENT handlers, and libuv's handler reports that
 * to Node.js as SIGINT, exactly as on Windows.
 */
async function pressCtrlC(run: WineProcess): Promise<number | null> {
  run.child.kill('SIGINT');
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref());
  const code = await Promise.race([run.exited, timeout]);
  if (code === 'timeout') {
    run.child.kill('SIGKILL');
    throw new Error(`serve did not stop within 60 s of Ctrl+C:\n${run.stderr()}`);
  }
  return code;
}

async function cli(...args: string[]) {
  const result = await relaydeskExe(
    [...args, '--data-dir', winDataDir],
    join(outputs, `cli-${args.join('-')}`),
    env,
  );
  expect(result.code, `relaydesk ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

const queueList = async () => JSON.parse(await cli('queue', 'list', '--json')) as { id: string }[];

/** Sends `count` messages from the device, each accepted with 250; returns their subjects. */
async function sendMessages(count: number): Promise<string[]> {
  const subjects: string[] = [];
  for (let i = 0; i < count; i++) {
    sent += 1;
    const subject = `Scan ${sent} from the copier`;
    const result = await sendFromDevice({
      port,
      from: 'john@contoso.com',
      to: ['anna@contoso.com'],
      subject,
      body: `Page ${sent}.`,
    }).catch((error: unknown) => {
      const exit = relay.child.exitCode;
      throw exit === null ? error : new Error(`serve exited with ${exit}:\n${relay.stderr()}`);
    });
    expect(result.final, `message ${sent}: ${result.replies.join(' | ')}`).toMatch(/^250 /);
    subjects.push(subject);
  }
  return subjects;
}

/** A device's SMTP session, one command at a time: each resolves with its final reply line. */
async function deviceSession() {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setEncoding('utf8');
  const finals: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buffer = '';
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (/^\d{3}-/.test(line)) continue;
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else finals.push(line);
    }
  });
  const reply = () =>
    new Promise<string>((resolve, reject) => {
      const queued = finals.shift();
      if (queued !== undefined) return resolve(queued);
      const timer = setTimeout(() => reject(new Error('no reply from the relay within 60 s')), 60_000);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  expect(await reply()).toMatch(/^220 /);
  return {
    write: (text: string) => socket.write(text),
    command: (line: string) => {
      socket.write(`${line}\r\n`);
      return reply();
    },
    close: () => socket.end('QUIT\r\n'),
  };
}

/** Subjects of what reached the sink, with how many times each arrived. */
function deliveredCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const message of emulator.messages) {
    const subject = /^Subject: (.*)$/m.exec(message.data.toString('utf8'))?.[1]?.trim() ?? '(none)';
    counts.set(subject, (counts.get(subject) ?? 0) + 1);
  }
  return counts;
}

beforeAll(async () => {
  const missing = wineMissing();
  if (missing) throw new Error(missing);
  // Kept after the run (test-artifacts/ is ignored): what serve and the CLI printed, for a failure.
  outputs = join(laneHome, 'e2e');
  await rm(outputs, { recursive: true, force: true });
  mkdirSync(outputs, { recursive: true });
  const folder = `RelayDesk-e2e-${randomBytes(4).toString('hex')}`;
  dataDir = onDriveC(folder);
  winDataDir = `C:\\${folder}`;
  mkdirSync(dataDir);
  emulator = await startExchangeEmulator({ password: UPSTREAM_PASSWORD });
  port = await freePort();
  const config = testConfig(port, emulator.port, windowsPath(emulator.caFile), {
    queue: { minRetrySeconds: 1, maxRetrySeconds: 2 },
  });
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify(config, null, 2));
});

afterAll(async () => {
  if (relay && relay.child.exitCode === null) relay.child.kill('SIGKILL');
  await emulator?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('relaydesk serve under Node.js for Windows, data in C:\\', () => {
  it('relays devices to the sink, each message once, and answers status and queue list over its named pipe', async () => {
    relay = await startServe();
    const subjects = await sendMessages(20);
    await emulator.waitForMessages(20, 60_000);
    const counts = deliveredCounts();
    expect(subjects.map((s) => counts.get(s))).toEqual(subjects.map(() => 1));

    const status = JSON.parse(await cli('status', '--json')) as {
      running: boolean;
      pid: number | null;
      today: { accepted: number; delivered: number };
    };
    expect(status.running).toBe(true);
    expect(status.pid).toBeTypeOf('number');
    expect(status.today).toMatchObject({ accepted: 20, delivered: 20 });
    expect(await queueList()).toEqual([]);
  });

  it('keeps what the upstream deferred through Ctrl+C, which drains and exits 0', async () => {
    emulator.script('mail', '451 4.7.500 Server busy. Please try again later.');
    await sendMessages(15);
    await until(
      () => (records(relay).filter((r) => r.event === 'deferred').length >= 15 ? true : undefined),
      60_000,
      () => `not every message was tried once:\n${relay.stdout()}`,
    );
    expect(await queueList()).toHaveLength(15);

    expect(await pressCtrlC(relay)).toBe(0);
    expect(records(relay).at(-1)).toMatchObject({ event: 'stopped', queued: 15 });
    // Read by `queue list` from the spool's segments, with no relay running.
    expect(await queueList()).toHaveLength(15);
    expect(
      readdirSync(join(dataDir, 'spool', 'segments')).filter((name) => name.endsWith('.seg')).length,
    ).toBeGreaterThan(0);
  });

  it('after a restart, delivers the queued and new mail exactly once while another program holds the spool, status.json and the log open without delete sharing', async () => {
    // A log a few lines short of rotation, so that the relay rotates it while delivering, held open.
    const log = join(dataDir, 'logs', 'relaydesk.log');
    const filler = `${JSON.stringify({ time: new Date().toISOString(), level: 'debug', event: 'filler' })}\n`;
    const fill = Math.floor((LOG_ROTATES_AT - statSync(log).size - 2_000) / filler.length);
    appendFileSync(log, filler.repeat(Math.max(0, fill)));

    const spoolFiles = ['queue', 'segments'].flatMap((folder) =>
      readdirSync(join(dataDir, 'spool', folder)).map((name) => join(dataDir, 'spool', folder, name)),
    );
    const held = [...spoolFiles, join(dataDir, 'status.json'), log];
    const holdOpen = await buildWindowsProgram('hold-open.c', outputs);
    const ready = onDriveC('hold-ready.txt');
    const release = onDriveC('hold-release.txt');
    await rm(ready, { force: true });
    await rm(release, { force: true });
    const holder = startWine(
      holdOpen,
      [windowsPath(ready), windowsPath(release), ...held.map(windowsPath)],
      join(outputs, 'hold-open'),
    );
    try {
      const report = await until(
        () => (existsSync(ready) ? readFileSync(ready, 'utf8') : undefined),
        60_000,
        () => `hold-open.exe never got ready: ${holder.stderr()}`,
      );
      expect(report.trim().split(/\r?\n/)).toEqual(held.map((file) => `held ${windowsPath(file)}`));

      emulator.clearScript();
      relay = await startServe();
      await sendMessages(15);
      await emulator.waitForMessages(50, 120_000);
      expect(relay.child.exitCode).toBeNull();
      const status = JSON.parse(await cli('status', '--json')) as { running: boolean };
      expect(status.running).toBe(true);
    } finally {
      writeFileSync(release, '');
      await holder.exited;
    }

    await until(
      async () => ((await queueList()).length === 0 ? true : undefined),
      60_000,
      () => `the queue never emptied after the files were released:\n${relay.stdout()}`,
    );
    expect(relay.child.exitCode).toBeNull();
    const counts = deliveredCounts();
    expect(counts.size).toBe(50);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('Ctrl+C exits 0 with nothing left; a restart sends nothing again, and its Ctrl+C lets a device finish its message', async () => {
    expect(await pressCtrlC(relay)).toBe(0);
    expect(records(relay).at(-1)).toMatchObject({ event: 'stopped', queued: 0 });
    expect(relay.stderr()).not.toMatch(/Error|uncaught/i);
    expect(existsSync(join(dataDir, 'logs', 'relaydesk.1.log'))).toBe(true);
    expect(readdirSync(join(dataDir, 'spool', 'queue'))).toEqual([]);

    // A message whose file could not be removed must not be sent again by the next start.
    relay = await startServe();
    expect(records(relay).find((r) => r.event === 'started')).toMatchObject({ queued: 0 });

    // Ctrl+C while a device is in the middle of DATA: the relay stops taking new work, lets the
    // device finish (250), and exits 0 once the message is safe.
    const device = await deviceSession();
    await device.command('EHLO scanner.local');
    await device.command('MAIL FROM:<john@contoso.com>');
    await device.command('RCPT TO:<anna@contoso.com>');
    expect(await device.command('DATA')).toMatch(/^354 /);
    device.write(
      'From: <john@contoso.com>\r\nTo: <anna@contoso.com>\r\nSubject: Scan 51 from the copier\r\n\r\n',
    );
    relay.child.kill('SIGINT');
    await until(
      () => records(relay).find((r) => r.event === 'stopping'),
      60_000,
      () => `serve never began to stop:\n${relay.stdout()}`,
    );
    expect(await device.command('Page 51.\r\n.')).toMatch(/^250 /);
    device.close();
    expect(await relay.exited).toBe(0);

    // Delivered before the exit, or kept for the next start: either way once.
    if (emulator.messages.length < 51) {
      relay = await startServe();
      await emulator.waitForMessages(51, 60_000);
      expect(await pressCtrlC(relay)).toBe(0);
    }
    const counts = deliveredCounts();
    expect(counts.size).toBe(51);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});
