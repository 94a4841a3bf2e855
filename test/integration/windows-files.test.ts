/**
 * The relay on a file system that behaves like Windows (issue 11, rows 1 to 5): folders that cannot
 * be flushed, and spool files that another program (antivirus, indexer, backup) holds open without
 * delete sharing. A real relay in this process, a real device on loopback, the Exchange emulator as
 * the upstream, the real disk; only the refusals Windows would give are injected (see
 * test/fixtures/windows-files.ts). Each device is told 250 only for mail that is then delivered
 * exactly once, and 451 only for mail that is never delivered; nothing ends the process.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../electron/config/validate.ts';
import { createLogger } from '../../electron/relay/log.ts';
import { createRelay, type Relay } from '../../electron/relay/relay.ts';
import { createMemoryStore } from '../../electron/secrets/index.ts';
import { type Emulator } from '../fixtures/exchange-emulator.ts';
import { testCa } from '../fixtures/tls.ts';
import { windowsFiles, type WindowsFiles, type WindowsFilesOptions } from '../fixtures/windows-files.ts';
import {
  createTeardown,
  eventually,
  freePort,
  type LogRecord,
  sendMail,
  startEmulator,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

/** What reached the process's last-resort handlers: each of these would have ended `relaydesk serve`. */
const escaped: unknown[] = [];
const onEscaped = (error: unknown) => void escaped.push(error);
beforeEach(() => {
  escaped.length = 0;
  process.on('unhandledRejection', onEscaped);
  process.on('uncaughtException', onEscaped);
});
afterEach(() => {
  process.off('unhandledRejection', onEscaped);
  process.off('uncaughtException', onEscaped);
});

const MESSAGE = (n: number) =>
  `From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: scan ${n}\r\nMessage-ID: <scan-${n}@scanner>\r\n\r\nScan ${n}.\r\n`;

/**
 * Over 256 KB: a message with files of its own (`<id>.eml`, `<id>.state.json`), which is what rows 3
 * to 5 hold; smaller messages live in the spool's segments (row 6).
 */
const LARGE_MESSAGE = (n: number) => `${MESSAGE(n)}${`${'x'.repeat(998)}\r\n`.repeat(300)}`;
const sendLarge = (port: number, n: number) =>
  sendMail(port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: LARGE_MESSAGE(n) });

interface Running {
  relay: Relay;
  port: number;
  logs: LogRecord[];
}

async function start(
  emulator: Emulator,
  dataDir: string,
  files: WindowsFiles,
  queue: Record<string, unknown> = {},
): Promise<Running> {
  const port = await freePort();
  const raw = testConfig(port, emulator.port, testCa.file, {
    // Retries are driven by flush() below, so nothing is retried behind the test's back.
    queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600, ...queue },
  });
  const { config, problems } = parseConfig(raw);
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const relay = createRelay({
    config,
    dataDir,
    secrets: createMemoryStore(),
    env: { RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD },
    logger: createLogger({ dir: null, console: false, onRecord: (r) => logs.push(r as LogRecord) }),
    files: files.fs,
  });
  await relay.start();
  let stopped = false;
  teardown.add(() => (stopped ? undefined : relay.stop(2000)));
  const stop = relay.stop.bind(relay);
  relay.stop = async (timeoutMs) => {
    stopped = true;
    await stop(timeoutMs);
  };
  return { relay, port, logs };
}

async function setup(options: WindowsFilesOptions = {}) {
  const emulator = await startEmulator(teardown);
  const dataDir = teardown.dir(await tempDir('relaydesk-winfs-'));
  const files = windowsFiles(options);
  return { emulator, dataDir, files };
}

const send = (port: number, n: number) =>
  sendMail(port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: MESSAGE(n) });

const subjects = (emulator: Emulator) =>
  emulator.messages.map((m) => /Subject: (.*)\r\n/.exec(m.data.toString('latin1'))?.[1]).sort();

const queueDir = (dataDir: string) => join(dataDir, 'spool', 'queue');

/** How a row ends: exactly `expected` arrived (by subject), the queue folder emptied, nothing escaped. */
async function expectDeliveredOnce(emulator: Emulator, dataDir: string, expected: string[]) {
  await emulator.waitForMessages(expected.length);
  await eventually(async () => (await readdir(queueDir(dataDir))).length === 0, 20_000);
  expect(subjects(emulator)).toEqual(expected);
  expect(escaped).toEqual([]);
}

describe('a relay on Windows file semantics', () => {
  it('row 1: accepts and delivers mail where folders cannot be flushed (Windows)', async () => {
    const { emulator, dataDir, files } = await setup({ platform: 'win32', windowsFolders: true });
    const { port } = await start(emulator, dataDir, files);
    for (const n of [1, 2, 3]) expect((await send(port, n)).final).toMatch(/^250 2\.0\.0 Ok: queued as /);
    await emulator.waitForMessages(3);
    expect(subjects(emulator)).toEqual(['scan 1', 'scan 2', 'scan 3']);
    expect(escaped).toEqual([]);
  });

  it('row 2: a device told 451 never gets that message delivered, even after a restart', async () => {
    const { emulator, dataDir, files } = await setup();
    const first = await start(emulator, dataDir, files);
    // The disk fails to flush the queue folder after the message was moved into it.
    files.failFolderSync('EIO');
    expect((await send(first.port, 1)).final).toMatch(/^451 4\.3\.0 /);
    files.failFolderSync(null);
    await first.relay.stop(2000);

    const second = await start(emulator, dataDir, files);
    expect((await send(second.port, 2)).final).toMatch(/^250 /);
    // The peer message went through the same queue after the restart; the refused one never did.
    await expectDeliveredOnce(emulator, dataDir, ['scan 2']);
  });

  it('row 3: a file-system error while recording a delivery attempt defers the message, logged, and the relay goes on', async () => {
    const { emulator, dataDir, files } = await setup();
    const { relay, port, logs } = await start(emulator, dataDir, files);
    emulator.script('message', '451 4.7.500 Server busy', { times: 1 });
    // The disk is full when the attempt's outcome is written (the state file's temporary file).
    const stateTemp = /\.state\.json\.[0-9a-f]+\.tmp$/;
    files.fail('open', stateTemp, 'ENOSPC');
    expect((await sendLarge(port, 1)).final).toMatch(/^250 /);
    const logged = await eventually(() => logs.find((r) => r.event === 'spool-error'));
    expect(logged).toMatchObject({ level: 'error', code: 'ENOSPC' });
    expect(relay.listQueue()).toMatchObject([{ status: 'deferred' }]);
    files.fail('open', stateTemp, null);

    expect(relay.flush()).toBe(1);
    await expectDeliveredOnce(emulator, dataDir, ['scan 1']);
  });

  it('row 4: state.json held open by another program: the state is written once it lets go, or the message waits', async () => {
    const { emulator, dataDir, files } = await setup();
    const { relay, port, logs } = await start(emulator, dataDir, files);
    emulator.script('message', '451 4.7.500 Server busy', { times: 3 });
    expect((await sendLarge(port, 1)).final).toMatch(/^250 /);
    const statePath: string = await eventually(async () => {
      const name = (await readdir(queueDir(dataDir))).find((n) => n.endsWith('.state.json'));
      return name === undefined ? '' : join(queueDir(dataDir), name);
    });
    /** Attempts as recorded on disk, which is what a restart would know. */
    const attemptsOnDisk = async () =>
      (JSON.parse(await readFile(statePath, 'utf8')) as { attempts: number }).attempts;
    await eventually(async () => (await attemptsOnDisk()) === 1);

    // A scanner holds it for a moment: the rename over it is tried again and goes through.
    files.hold(statePath);
    void eventually(() => files.refusals.length > 0, 15_000, 5).then(() => files.releaseAll());
    relay.flush();
    await eventually(async () => (await attemptsOnDisk()) === 2);
    expect(files.refusals.some((r) => r.startsWith('rename EPERM'))).toBe(true);
    expect(logs.filter((r) => r.event === 'spool-error')).toEqual([]);

    // A backup holds it for longer than the retries last: the message waits, the relay goes on.
    files.hold(statePath);
    relay.flush();
    const logged = await eventually(() => logs.find((r) => r.event === 'spool-error'));
    expect(logged).toMatchObject({ code: 'EPERM' });
    expect(relay.listQueue()).toMatchObject([{ status: 'deferred', attempts: 3 }]);
    expect(await attemptsOnDisk()).toBe(2);
    files.releaseAll();

    relay.flush();
    await expectDeliveredOnce(emulator, dataDir, ['scan 1']);
  });

  it('row 5: a delivered message whose .eml is held open is not delivered again, even after a restart', async () => {
    const { emulator, dataDir, files } = await setup();
    const held = /\.eml$/;
    const first = await start(emulator, dataDir, files);
    // An indexer opens every message file the moment it appears, and keeps it.
    files.hold(held);
    expect((await sendLarge(first.port, 1)).final).toMatch(/^250 /);
    await emulator.waitForMessages(1);
    await eventually(() => first.logs.find((r) => r.event === 'delivered'));
    await first.relay.stop(2000);

    const second = await start(emulator, dataDir, files);
    expect((await send(second.port, 2)).final).toMatch(/^250 /);
    await emulator.waitForMessages(2);
    await eventually(() => second.logs.filter((r) => r.event === 'delivered').length === 1);
    expect(second.relay.listQueue()).toEqual([]);

    // Once the indexer lets go, the files go too.
    files.releaseAll();
    await expectDeliveredOnce(emulator, dataDir, ['scan 1', 'scan 2']);
  });

  it('row 6: a segment another program holds at start is left as it is, loaded at the next start, and delivered once', async () => {
    const { emulator, dataDir, files } = await setup();
    const first = await start(emulator, dataDir, files);
    emulator.script('message', '451 4.7.500 Server busy', { times: 1 });
    expect((await send(first.port, 1)).final).toMatch(/^250 /);
    await eventually(() => first.logs.find((r) => r.event === 'deferred'));
    await first.relay.stop(2000);

    // A backup holds the segment with the waiting message while the relay starts.
    const firstSegment = /[\\/]00000001\.seg$/;
    files.fail('open', firstSegment, 'EBUSY');
    const second = await start(emulator, dataDir, files);
    expect(second.logs.find((r) => r.event === 'spool-file-held')).toMatchObject({
      file: '00000001.seg',
      code: 'EBUSY',
    });
    expect((await send(second.port, 2)).final).toMatch(/^250 /);
    await eventually(() => second.logs.find((r) => r.event === 'delivered'));
    await second.relay.stop(2000);
    expect(await readdir(join(dataDir, 'spool', 'segments'))).toContain('00000001.seg');

    files.fail('open', firstSegment, null);
    const third = await start(emulator, dataDir, files);
    expect(third.relay.listQueue()).toMatchObject([{ status: 'deferred', attempts: 1 }]);
    third.relay.flush();
    await emulator.waitForMessages(2);
    await eventually(() => third.logs.find((r) => r.event === 'delivered'));
    expect(subjects(emulator)).toEqual(['scan 1', 'scan 2']);
    expect(escaped).toEqual([]);
  });
});
