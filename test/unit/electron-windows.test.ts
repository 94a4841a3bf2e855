/**
 * main's Windows behaviour against the stand-in 'electron', with `process.platform` reporting
 * win32: the app ID toasts need, Start at login that reads back what it wrote, notifications that
 * survive garbage collection, the Dock/taskbar `activate`, and draining at sign-out or shutdown
 * when the app was started hidden (no window of its own).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as stub from '../fixtures/electron-stub.ts';
import { until } from '../fixtures/until.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));
vi.mock('electron-log/main', () => import('../fixtures/electron-log-stub.ts'));

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const realPlatform = process.platform;
const realCwd = process.cwd();
let dataDir: string;

type Item = { label?: string; checked?: boolean; click?: (item: { checked: boolean }) => void };
const loginMenuItem = () =>
  (stub.Tray.created[0]!.menu!.template as Item[]).find((entry) => entry.label === 'Start at login');

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'relaydesk-win-'));
  process.env.RELAYDESK_DATA_DIR = dataDir;
  // The control channel's named-pipe path becomes a relative socket name on Linux: keep it here.
  process.chdir(dataDir);
  Object.defineProperty(process, 'platform', { value: 'win32' });
  process.argv.push('--hidden');
  await import('../../electron/main/index.ts');
  await until('the tray', () => stub.Tray.created[0]);
});

afterAll(async () => {
  Object.defineProperty(process, 'platform', { value: realPlatform });
  process.argv.splice(process.argv.indexOf('--hidden'), 1);
  process.chdir(realCwd);
  delete process.env.RELAYDESK_DATA_DIR;
  await rm(dataDir, { recursive: true, force: true });
});

describe('the Electron main process on Windows', () => {
  it("sets the AppUserModelID to electron-builder's appId, so toasts show", async () => {
    const builder = JSON.parse(await readFile(join(repoRoot, 'electron-builder.json'), 'utf8')) as {
      appId: string;
    };
    expect(stub.app.appUserModelId).toBe(builder.appId);
    expect(stub.app.name).toBe('RelayDesk');
  });

  it('shows an .ico tray icon, sharp at every Windows scaling', () => {
    expect(stub.Tray.created[0]!.image.path).toMatch(/build[/\\]tray[/\\]tray-attention\.ico$/);
  });

  it("keeps Chromium's profile out of the relay's data folder itself", () => {
    expect(stub.app.paths.get('userData')).toBe(join(dataDir, 'desktop'));
  });

  it('reads Start at login back as set, and switches it off again', () => {
    expect(loginMenuItem()?.checked).toBe(false);
    loginMenuItem()!.click!({ checked: true });
    expect(loginMenuItem()?.checked).toBe(true);
    expect([...stub.app.runEntries]).toEqual([
      JSON.stringify([process.execPath, ['/opt/relaydesk-stub/resources/app', '--hidden']]),
    ]);
    loginMenuItem()!.click!({ checked: false });
    expect(loginMenuItem()?.checked).toBe(false);
    expect(stub.app.runEntries.size).toBe(0);
  });

  it('keeps a notification until it is clicked, even through garbage collection', async () => {
    const { showNotice } = await import('../../electron/main/notifications.ts');
    let clicked = 0;
    showNotice({ title: 'Delivery is on hold', body: 'The password was refused' }, () => (clicked += 1));
    const ref = stub.Notification.created.at(-1)!;
    // WeakRefs are kept alive until the current job ends: collect on a later turn.
    await new Promise((resolve) => setTimeout(resolve, 0));
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    const notification = ref.deref();
    expect(notification, 'the notification was garbage-collected with its click handler').toBeDefined();
    notification!.emit('click');
    expect(clicked).toBe(1);
  });

  it('opens the window when the app is activated (taskbar, Dock)', async () => {
    // Not set up yet, so the window was opened for the wizard; the user closed (hid) it.
    const window = await until('the window', () => stub.BrowserWindow.created.find((w) => w.loadedUrl));
    window.emit('ready-to-show');
    window.emit('close', { preventDefault: () => undefined });
    window.shown = false;
    stub.app.emit('activate');
    expect(window.shown).toBe(true);
  });

  it('drains the relay and exits when Windows ends the session, though started hidden', async () => {
    const watcher = stub.BrowserWindow.created.find(
      (window) => window.listenerCount('query-session-end') > 0,
    );
    expect(watcher, 'no window listens for the end of the session').toBeDefined();
    expect(watcher!.options.show).toBe(false);
    let prevented = false;
    watcher!.emit('query-session-end', { reasons: ['shutdown'], preventDefault: () => (prevented = true) });
    expect(prevented).toBe(true);
    await until('the exit', () => stub.app.exitCode !== null);
    expect(stub.app.exitCode).toBe(0);
    expect(stub.Tray.created[0]!.destroyed).toBe(true);
  });
});
