/**
 * The packaged app's binary as the command line (`RelayDesk --cli ...`): its RunAsNode fuse is off,
 * so a service and the elevated install run the app itself with CLI words. Main, loaded against the
 * stand-in 'electron', must then open no window or tray, take no single-instance lock, and run the
 * command: `status` and `service print` exit with their code, `serve` relays on loopback until the
 * app is asked to quit (what Electron does on the service manager's SIGTERM).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { systemdExecWord } from '../../electron/service/definitions.ts';
import { freePort } from '../fixtures/free-port.ts';
import { testCa } from '../fixtures/tls.ts';
import { sendScan, testConfig } from '../integration/harness.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));
vi.mock('electron-log/main', () => import('../fixtures/electron-log-stub.ts'));

type Stub = typeof import('../fixtures/electron-stub.ts');

const argv = process.argv;
let root: string;
let written: string;

beforeEach(async () => {
  vi.resetModules();
  root = await mkdtemp(join(tmpdir(), 'relaydesk-cli-mode-'));
  written = '';
  const capture = (chunk: string | Uint8Array) => ((written += chunk.toString()), true);
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  // Not the test's own app folder: anything main writes for the desktop would land here.
  process.env.RELAYDESK_DATA_DIR = join(root, 'desktop');
});

afterEach(async () => {
  vi.restoreAllMocks();
  process.argv = argv;
  delete process.env.RELAYDESK_DATA_DIR;
  await rm(root, { recursive: true, force: true });
});

/** Main started as the packaged binary is by a service: `RelayDesk --cli WORDS...`. */
async function startMain(words: string[]): Promise<Stub> {
  // The stand-in outlives vi.resetModules: each start begins with a fresh app.
  const stub = (await import('electron')) as unknown as Stub;
  stub.app.removeAllListeners();
  stub.app.exitCode = null;
  stub.app.singleInstanceLockRequests = 0;
  stub.BrowserWindow.created.length = 0;
  stub.Tray.created.length = 0;
  process.argv = ['/opt/RelayDesk/relaydesk', '--cli', ...words];
  await import('../../electron/main/index.ts');
  return stub;
}

async function exitOf(stub: Stub): Promise<number | null> {
  const deadline = Date.now() + 20_000;
  while (stub.app.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return stub.app.exitCode;
}

function desktopUntouched(stub: Stub): void {
  expect(stub.BrowserWindow.created).toHaveLength(0);
  expect(stub.Tray.created).toHaveLength(0);
  expect(stub.app.singleInstanceLockRequests).toBe(0);
}

it('runs `status` and exits with its code: 2 when no relay runs for that data folder', async () => {
  const stub = await startMain(['status', '--data-dir', join(root, 'service')]);
  expect(await exitOf(stub)).toBe(2);
  expect(written).toMatch(/not running/i);
  desktopUntouched(stub);
  // A service on Linux has no display: Chromium's headless platform is asked for before 'ready'.
  const ozone = process.platform === 'linux' ? 'headless' : undefined;
  expect(stub.app.commandLine.switches.get('ozone-platform')).toBe(ozone);
});

it('runs `service print`, which puts the app binary itself with --cli in the unit, and exits 0', async () => {
  // Inside Electron: the binary running main is the app's (process.execPath), not node.
  Object.defineProperty(process.versions, 'electron', { value: '39.2.4', configurable: true });
  try {
    const stub = await startMain([
      'service',
      'print',
      '--for',
      'systemd',
      '--data-dir',
      '/var/lib/relaydesk',
    ]);
    expect(await exitOf(stub)).toBe(0);
    expect(written).toContain(
      `ExecStart=${systemdExecWord(process.execPath)} "--no-sandbox" "--cli" "serve" "--config" "/var/lib/relaydesk/config.json" "--data-dir" "/var/lib/relaydesk"\n`,
    );
    desktopUntouched(stub);
  } finally {
    delete (process.versions as Record<string, string | undefined>).electron;
  }
});

it('serves mail on loopback until the app is asked to quit, then drains and exits 0', async () => {
  const port = await freePort();
  const dataDir = join(root, 'service');
  await mkdir(dataDir);
  const configPath = join(root, 'config.json');
  // No upstream answers: the message is queued durably, which is what a device sees as accepted.
  await writeFile(configPath, JSON.stringify(testConfig(port, await freePort(), testCa.file)));
  const stub = await startMain(['serve', '--config', configPath, '--data-dir', dataDir]);

  let reply = '';
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const sent = await sendScan(port, 'cli mode').catch(() => null);
    if (sent) {
      reply = sent.final;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(reply).toMatch(/^250/);
  expect(stub.app.exitCode).toBeNull();
  desktopUntouched(stub);

  // Electron's answer to SIGTERM: app.quit(), i.e. before-quit, whose default main prevents to drain first.
  let prevented = false;
  stub.app.emit('before-quit', { preventDefault: () => (prevented = true) });
  expect(prevented).toBe(true);
  expect(await exitOf(stub)).toBe(0);
  expect(await sendScan(port, 'after stop').catch((error: Error) => error.message)).toMatch(/ECONNREFUSED/);
});
