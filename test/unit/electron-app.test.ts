/**
 * main's wiring (electron/main/index.ts) against the stand-in 'electron': on a first run it opens the
 * window for the wizard, shows the tray in "attention", answers the window over IPC, hides the window
 * on close, and stops the relay before it quits.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { APP_URL } from '../../electron/main/window.ts';
import { CHANNELS } from '../../electron/shared/ipc.ts';
import * as stub from '../fixtures/electron-stub.ts';
import { until } from '../fixtures/until.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));
vi.mock('electron-log/main', () => import('../fixtures/electron-log-stub.ts'));

let dataDir: string;

/** The app's window: on Windows a hidden 1x1 window that watches for the session end comes first. */
const mainWindow = () => stub.BrowserWindow.created.find((window) => window.options.title === 'RelayDesk')!;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'relaydesk-app-'));
  process.env.RELAYDESK_DATA_DIR = dataDir;
  // Start at login on Linux writes an XDG autostart entry: into the test's folder, not the user's.
  process.env.XDG_CONFIG_HOME = join(dataDir, 'xdg-config');
  await import('../../electron/main/index.ts');
  await until('the tray', () => stub.Tray.created[0]);
});

afterAll(async () => {
  delete process.env.RELAYDESK_DATA_DIR;
  delete process.env.XDG_CONFIG_HOME;
  await rm(dataDir, { recursive: true, force: true });
});

describe('the Electron main process, wired up', () => {
  it('registers the app:// scheme and every IPC channel', () => {
    expect(stub.protocol.privileged).toEqual([expect.objectContaining({ scheme: 'app' })]);
    expect(stub.protocol.handlers.has('app')).toBe(true);
    expect([...stub.ipcMain.handlers.keys()].sort()).toEqual([...CHANNELS].sort());
  });

  it('on a first run shows the tray as needing attention and opens the window for the wizard', () => {
    const tray = stub.Tray.created[0]!;
    // Windows takes the .ico (every size in one file), Linux the PNG.
    const ext = process.platform === 'win32' ? 'ico' : 'png';
    expect(tray.image.path).toMatch(new RegExp(`build[/\\\\]tray[/\\\\]tray-attention\\.${ext}$`));
    expect(tray.tooltip).toBe('RelayDesk is not set up yet: open it to run the setup');
    const window = mainWindow();
    expect(window.loadedUrl).toBe(APP_URL);
    window.emit('ready-to-show');
    expect(window.shown).toBe(true);
  });

  it('answers the window, and keeps running when the window is closed', async () => {
    const handler = stub.ipcMain.handlers.get('relay:status')!;
    expect(await handler({ senderFrame: { url: APP_URL, parent: null } }, null)).toMatchObject({
      state: 'unconfigured',
    });
    const window = mainWindow();
    window.emit('close', { preventDefault: () => undefined });
    expect(window.hidden).toBe(true);
    expect(stub.app.exitCode).toBeNull();
  });

  it.runIf(process.platform === 'linux')(
    'offers Start at login on Linux too, as an XDG autostart entry that starts it hidden',
    async () => {
      type Item = { label?: string; checked?: boolean; click?: (item: { checked: boolean }) => void };
      const tray = stub.Tray.created[0]!;
      const item = () => (tray.menu!.template as Item[]).find((entry) => entry.label === 'Start at login');
      expect(item()?.checked).toBe(false);
      const entryFile = join(dataDir, 'xdg-config', 'autostart', 'relaydesk.desktop');

      item()!.click!({ checked: true });
      const entry = await readFile(entryFile, 'utf8');
      expect(entry).toMatch(/^\[Desktop Entry\]\nType=Application\nName=RelayDesk\n/);
      // Unpackaged, as here: electron itself with the app folder; `--hidden` keeps the window closed.
      expect(entry).toContain(`\nExec=${process.execPath} /opt/relaydesk-stub/resources/app --hidden\n`);
      expect(item()?.checked).toBe(true);

      item()!.click!({ checked: false });
      await expect(readFile(entryFile, 'utf8')).rejects.toThrow(/ENOENT/);
      expect(item()?.checked).toBe(false);

      // An autostart folder that cannot be made: no error escapes the click, the item stays off.
      await rm(join(dataDir, 'xdg-config', 'autostart'), { recursive: true, force: true });
      await writeFile(join(dataDir, 'xdg-config', 'autostart'), 'not a folder');
      expect(() => item()!.click!({ checked: true })).not.toThrow();
      expect(item()?.checked).toBe(false);
    },
  );

  it('stops the relay, then exits, on Quit', async () => {
    let prevented = false;
    stub.app.emit('before-quit', { preventDefault: () => (prevented = true) });
    expect(prevented).toBe(true);
    await until('the exit', () => stub.app.exitCode !== null);
    expect(stub.app.exitCode).toBe(0);
    expect(stub.Tray.created[0]!.destroyed).toBe(true);
  });
});
