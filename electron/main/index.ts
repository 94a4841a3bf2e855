/**
 * RelayDesk's Electron main process: one instance, the relay service, the tray, the window, IPC,
 * notifications and start at login. Everything that is not Electron lives in electron/app and the
 * engine; this file only wires them to the desktop.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, dialog, ipcMain, shell } from 'electron';
import log from 'electron-log/main';
import { createHandlers, forwardPushes } from '../app/handlers.ts';
import { createRelayService } from '../app/service.ts';
import { defaultConfigPath, defaultDataDir } from '../config/index.ts';
import { AlreadyRunningError } from '../relay/control.ts';
import { createLogger } from '../relay/log.ts';
import { createKeychainStore } from '../secrets/index.ts';
import { appCliArgs, thisCli } from '../service/invocation.ts';
import type { PushEvents } from '../shared/ipc.ts';
import { identifyApp } from './app-identity.ts';
import { registerIpc } from './ipc.ts';
import { runCliMode } from './cli-mode.ts';
import { autostartLocation } from './linux-autostart.ts';
import { createLoginItem } from './login-item.ts';
import { showNotice, testEmailNotice } from './notifications.ts';
import { registerAppScheme, serveRenderer } from './protocol.ts';
import { watchSessionEnd } from './session-end.ts';
import { startUpdates } from './updates.ts';
import { createTray, type TrayController } from './tray.ts';
import { offerService, serviceDataDirs, startServiceTray } from './service-tray.ts';
import { createMainWindow } from './window.ts';

/** Built layout: out/main/index.js, out/preload/index.cjs, renderer/dist, build/ beside them in the app. */
const appRoot = fileURLToPath(new URL('../../', import.meta.url));
/** Electron's login items do nothing on Linux: an XDG autostart entry does the job there. */
const linuxAutostart = process.platform === 'linux' ? autostartLocation() : null;

/** What starts this app again: the AppImage file (not its temporary mount), the installed binary, or electron + the app folder. */
function launchCommand(): string[] {
  if (!app.isPackaged) return [process.execPath, app.getAppPath()];
  // $APPIMAGE only when this process runs from that AppImage's mount (it is inherited by children).
  const { APPIMAGE, APPDIR } = process.env;
  const fromAppImage = APPIMAGE && APPDIR && process.execPath.startsWith(`${APPDIR}/`);
  return [fromAppImage ? APPIMAGE : process.execPath];
}

const dataDir = process.env.RELAYDESK_DATA_DIR ?? defaultDataDir();
/** `RelayDesk --cli serve ...`: the command line (a service, the elevated install), not the desktop app. */
const cliArgs = appCliArgs(process.argv);

if (cliArgs !== null) {
  runCliMode(cliArgs);
} else {
  identifyApp(app, process.platform, dataDir);
  log.transports.file.level = 'info';
  // The desktop shell's own log beside the relay's, where docs/desktop-app.md says it is.
  log.transports.file.resolvePathFn = () => join(dataDir, 'logs', 'desktop.log');
  log.errorHandler.startCatching();

  if (!app.requestSingleInstanceLock()) {
    app.quit();
  } else {
    registerAppScheme();
    app
      .whenReady()
      .then(start)
      .catch((error: unknown) => startupFailed(error));
  }
}

/** A tray app that failed to start must say so and end: otherwise it holds the single-instance lock invisibly. */
function startupFailed(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  log.error('startup failed', error);
  const detail =
    error instanceof AlreadyRunningError
      ? `${message}\n\nRelayDesk is already running for this data folder (as \`relaydesk serve\` or as a service). Stop it first, or use that one.`
      : `${message}\n\nThe log is in ${join(dataDir, 'logs')}.`;
  dialog.showErrorBox('RelayDesk could not start', detail);
  app.exit(1);
}

async function start(): Promise<void> {
  // A relay already runs as the service: the tray shows and drives it; no second relay starts here.
  const serviceTray = await startServiceTray({
    iconDir: join(appRoot, 'build/tray'),
    dataDirs: serviceDataDirs(dataDir),
    quit: () => app.exit(0),
  });
  if (serviceTray) {
    log.info('started beside the service', { dataDir: serviceTray.remote.dataDir });
    return;
  }
  const relayLogger = createLogger({ dir: join(dataDir, 'logs'), console: false });
  const service = createRelayService({
    dataDir,
    configPath: defaultConfigPath(dataDir),
    secrets: createKeychainStore(),
    logger: relayLogger,
    // Only sign-in pages main itself built (the identity platform's authorize URL) are opened.
    openBrowser: (url) => shell.openExternal(url),
  });
  let window: BrowserWindow | null = null;
  let tray: TrayController | null = null;
  let quitting = false;
  const loginItem = createLoginItem(app, linuxAutostart, launchCommand);

  function openWindow(): void {
    if (!window) {
      const created = createMainWindow({
        preloadPath: join(appRoot, 'out/preload/index.cjs'),
        iconPath: join(appRoot, 'build/icon.png'),
        isQuitting: () => quitting,
      });
      created.once('closed', () => (window = null));
      created.once('ready-to-show', () => created.show());
      window = created;
      return;
    }
    window.show();
    window.focus();
  }

  function push<C extends keyof PushEvents>(channel: C, value: PushEvents[C]): void {
    if (window && !window.isDestroyed()) window.webContents.send(channel, value);
  }

  async function sendTestEmail(): Promise<void> {
    const result = await service.sendTestEmail(null);
    showNotice(testEmailNotice(result), openWindow);
  }

  app.on('second-instance', openWindow);
  app.on('window-all-closed', () => {
    // The relay lives in the tray: no window is a normal state, not a reason to quit.
  });
  let draining: Promise<void> | null = null;
  function drainAndExit(): Promise<void> {
    quitting = true;
    tray?.destroy();
    draining ??= service
      .stop()
      .catch((error: Error) => log.error('stop failed', error))
      .finally(() => relayLogger.close().finally(() => app.exit(0)));
    return draining;
  }

  app.on('activate', openWindow);
  app.on('before-quit', (event) => {
    if (quitting) return;
    event.preventDefault();
    void drainAndExit();
  });
  watchSessionEnd({ platform: process.platform, drainAndExit });

  serveRenderer(join(appRoot, 'renderer/dist'));
  registerIpc(
    ipcMain,
    createHandlers({
      service,
      reportRendererError: (message, stack) => log.error('window error', { message, stack }),
    }),
    log,
  );

  await service.start();
  log.info('started', { dataDir, state: service.status().state });
  startUpdates({ isPackaged: app.isPackaged, resourcesPath: process.resourcesPath, log });

  service.events.on('status', (status) => tray?.update(status));
  forwardPushes(service.events, push);
  service.events.on('notice', (notice) => showNotice(notice, openWindow));

  tray = createTray(
    join(appRoot, 'build/tray'),
    {
      open: openWindow,
      sendTestEmail: () => void sendTestEmail(),
      togglePause: () => void (service.status().state === 'paused' ? service.resume() : service.pause()),
      startAtLogin: () => loginItem.enabled(),
      setStartAtLogin: (enabled) => {
        try {
          loginItem.set(enabled);
        } catch (error) {
          // The menu shows what really is set (it reads the entry back), so it stays truthful.
          log.error('start at login could not be changed', { enabled, reason: (error as Error).message });
        }
        tray?.update(service.status());
      },
      offerService: () =>
        void offerService(dataDir, {
          // The packaged app's own binary runs the command line (`--cli`): its RunAsNode fuse is off.
          cli: thisCli(),
          stopRelay: () => service.stop(),
          startRelay: () => service.start(),
          relaunch: () => {
            app.relaunch();
            void drainAndExit();
          },
          waitingMessages: () => {
            const { queued, active, deferred, held } = service.status().queue;
            return queued + active + deferred + held;
          },
        }),
      quit: () => app.quit(),
    },
    service.status(),
  );

  if (!loginItem.startedAtLogin(process.argv) || service.status().state === 'unconfigured') openWindow();
}
