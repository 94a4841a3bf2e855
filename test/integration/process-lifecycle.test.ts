/**
 * How the relay process starts and stops, as an administrator meets it: every way of stopping it
 * (service stop, Ctrl+C, the terminal closed) drains like SIGTERM; a second `serve` on the same
 * data folder is refused before it touches the first one's spool; the data folder is private.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testCa } from '../fixtures/tls.ts';
import { deviceInData, expectDrainsOn } from './device-checks.ts';
import {
  createTeardown,
  freePort,
  queueFiles,
  ROOT,
  runCli,
  startEmulator,
  startRelay,
  startRelayWithEmulator,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
  writeConfigFile,
} from './harness.ts';

const NO_SIGNALS_ON_WINDOWS =
  "Windows has no signals between processes: child.kill('SIGINT') terminates the child at once; " +
  "Ctrl+C is sent to serve's console by the Windows lane's end-to-end test, Ctrl+Break is in test/unit/stop-signals.test.ts";
const PIPES_LEAVE_NOTHING =
  'a named pipe disappears with its process: a crashed relay leaves no socket file to take over';
const WINDOWS_ACL_ELSEWHERE =
  'POSIX modes; the Windows ACL is tested in test/unit/data-folder.test.ts (icacls arguments, its output, and the real icacls)';

const teardown = createTeardown();
afterEach(teardown.run);

const setup = (dataDir?: string) => startRelayWithEmulator(teardown, { dataDir });

/**
 * A device that has begun a message and not finished it: its bytes are in spool/incoming (over
 * 256 KB, so a file of its own; a smaller message waits in memory until its batch is written).
 */
const deviceWithHalfAScan = (port: number) =>
  deviceInData(
    port,
    `Subject: Scan 0042\r\n\r\n${`${'the first half of a scan '.repeat(40)}\r\n`.repeat(300)}`,
  );

async function incomingFiles(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'spool', 'incoming'));
}

async function eventuallyTrue(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`never: ${what}`);
}

describe('stopping', () => {
  // SIGINT: Ctrl+C, and how Windows service wrappers stop a console program. SIGHUP: the terminal or
  // (on Windows) the console window was closed.
  for (const signal of ['SIGINT', 'SIGHUP'] as const) {
    it(`drains on ${signal} like on SIGTERM: the message in flight is accepted and kept, exit 0`, async (context) => {
      context.skip(process.platform === 'win32', NO_SIGNALS_ON_WINDOWS);
      const { emulator, relay } = await setup();
      const device = await deviceWithHalfAScan(relay.port);
      await eventuallyTrue(
        async () => (await incomingFiles(relay.dataDir)).length === 1,
        'message in incoming/',
      );

      await expectDrainsOn(signal, relay, device, 'the second half\r\n.\r\n');
      expect(relay.process.signalCode).toBeNull();
      // Accepted means kept: delivered before the exit, or waiting in the queue for the next start.
      const delivered = emulator.messages.length;
      const queued = (await queueFiles(relay.dataDir)).length;
      expect(delivered + queued).toBe(1);
    });
  }
});

describe('one relay per data folder', () => {
  it("refuses a second serve before it touches the first one's spool, naming the running pid", async () => {
    const { emulator, relay, config } = await setup();
    const device = await deviceWithHalfAScan(relay.port);
    await eventuallyTrue(
      async () => (await incomingFiles(relay.dataDir)).length === 1,
      'message in incoming/',
    );
    const halfReceived = await incomingFiles(relay.dataDir);

    // The same config and folder, as a second double-click or a service started twice would.
    const second = await startRelay({ config, dataDir: relay.dataDir, waitForListening: false });
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toContain(
      `RelayDesk is already running for this data folder (pid ${relay.process.pid})`,
    );
    expect(second.stderr()).not.toMatch(/IIS SMTP|hMailServer|Postfix/);
    expect(await incomingFiles(relay.dataDir)).toEqual(halfReceived);

    // The first relay did not notice: the device finishes, the message is delivered once.
    device.write('the second half\r\n.\r\n');
    expect(await device.read()).toMatch(/^250 2\.0\.0 Ok: queued as /);
    device.close();
    await emulator.waitForMessages(1);
    const status = await relay.cli(['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: relay.process.pid });
  });

  it('takes over after a crash, even when two start at once: exactly one runs', async (context) => {
    context.skip(process.platform === 'win32', PIPES_LEAVE_NOTHING);
    const { relay, config } = await setup();
    await relay.stop('SIGKILL');
    // The crashed relay's socket file is still there; nobody answers on it.
    expect((await stat(join(relay.dataDir, 'relaydesk.sock'))).isSocket()).toBe(true);

    const starts = await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort();
        const started = await startRelay({
          config: { ...config, listen: { host: '127.0.0.1', port } },
          dataDir: relay.dataDir,
          waitForListening: false,
        });
        teardown.add(() => started.stop('SIGKILL'));
        return started;
      }),
    );
    const outcome = await Promise.race(
      starts.map((s, i) =>
        Promise.race([
          s.waitForLog((r) => r.event === 'started', 20_000).then(() => ({ running: i })),
          s.exited.then((code) => ({ exited: i, code })),
        ]),
      ),
    );
    // Whichever settled first, the other must settle the opposite way.
    const runningIndex = 'running' in outcome ? outcome.running : 1 - outcome.exited;
    const loser = starts[1 - runningIndex]!;
    await starts[runningIndex]!.waitForLog((r) => r.event === 'started', 20_000);
    expect(await loser.exited).toBe(1);
    expect(loser.stderr()).toContain(
      `RelayDesk is already running for this data folder (pid ${starts[runningIndex]!.process.pid})`,
    );
  });

  it('is not blocked by a takeover claim its crashed owner left behind', async (context) => {
    context.skip(process.platform === 'win32', PIPES_LEAVE_NOTHING);
    const { relay, config } = await setup();
    await relay.stop('SIGKILL');
    // A relay killed while it was replacing a dead relay's socket leaves its claim, naming its pid.
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => gone.once('exit', resolve));
    await writeFile(join(relay.dataDir, 'relaydesk.sock.takeover'), String(gone.pid));

    const next = teardown.relay(
      await startRelay({ config, dataDir: relay.dataDir, waitForListening: false }),
    );
    const outcome = await Promise.race([
      next.waitForLog((r) => r.event === 'started', 20_000).then(() => 'started'),
      next.exited.then((code) => `exited ${code}: ${next.stderr()}`),
    ]);
    expect(outcome).toBe('started');
  });
  it('names another RelayDesk, not IIS SMTP, as the holder of the port when its data folder differs', async () => {
    const { relay, config } = await setup();
    const other = await startRelay({ config, waitForListening: false });
    teardown.dir(other.dataDir);
    expect(await other.exited).toBe(1);
    expect(other.stderr()).toContain(
      `Port ${relay.port} on 127.0.0.1 is already in use by another RelayDesk`,
    );
    expect(other.stderr()).not.toMatch(/IIS SMTP|hMailServer|Postfix/);
  });
});

describe('the data folder', () => {
  it('is created private (0700) by serve', async (context) => {
    context.skip(process.platform === 'win32', WINDOWS_ACL_ELSEWHERE);
    const emulator = await startEmulator(teardown);
    const { dir: parent, file: configPath } = await writeConfigFile(
      teardown,
      testConfig(await freePort(), emulator.port, testCa.file),
    );
    const dataDir = join(parent, 'RelayDesk');
    const serve = spawn(
      process.execPath,
      [join(ROOT, 'bin/relaydesk.js'), 'serve', '--config', configPath, '--data-dir', dataDir],
      {
        env: { ...process.env, RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const exited = new Promise((resolve) => serve.once('exit', resolve));
    teardown.add(() => {
      serve.kill('SIGKILL');
      return exited;
    });
    let stderr = '';
    serve.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await eventuallyTrue(async () => stderr.includes('Press Ctrl+C'), `serve started:\n${stderr}`);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(stderr).not.toContain('Warning');
  });

  it('is reported by serve and check when other users can change it', async (context) => {
    context.skip(process.platform === 'win32', WINDOWS_ACL_ELSEWHERE);
    const dataDir = await tempDir();
    await mkdir(dataDir, { recursive: true });
    await chmod(dataDir, 0o777);
    const { relay } = await setup(dataDir);
    expect(relay.stderr()).toMatch(
      /Warning: The data folder .* can be changed by its group \(gid \d+\), every user \(others\).*chmod 700/,
    );
    const logged = relay.logs.find((r) => r.event === 'data-folder');
    expect(logged?.level).toBe('warn');

    const check = await runCli(['check', '--config', relay.configPath, '--data-dir', dataDir], {
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(check.stdout).toMatch(/warn\s+data folder .*every user \(others\)/);
    // The upstream is fine: the warning does not make the check fail.
    expect(check.code).toBe(0);
  });
});
