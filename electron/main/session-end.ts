/**
 * Drains the relay when the computer shuts down or the user signs out, where `before-quit` never
 * fires. Linux and macOS tell the app through `powerMonitor`'s `shutdown` (preventDefault asks the
 * system to wait until the app quits). Windows tells only windows (`query-session-end`,
 * `session-end`), and the app started hidden at login has none: a hidden, never-shown window is
 * kept for that. Everything acknowledged is already on disk; draining ends deliveries in flight
 * cleanly so that nothing is sent twice after the restart.
 */
import { BrowserWindow, powerMonitor } from 'electron';

export interface SessionEndDeps {
  platform: NodeJS.Platform;
  /** Stops the relay (listener closed, deliveries finished or deferred) and exits the app; idempotent. */
  drainAndExit(): Promise<void>;
}

export function watchSessionEnd({ platform, drainAndExit }: SessionEndDeps): void {
  if (platform !== 'win32') {
    // Electron passes an event with preventDefault (documented), though its typings declare none.
    (powerMonitor as NodeJS.EventEmitter).on('shutdown', (event: Electron.Event) => {
      event.preventDefault();
      void drainAndExit();
    });
    return;
  }
  const watcher = new BrowserWindow({
    show: false,
    width: 1,
    height: 1,
    skipTaskbar: true,
    webPreferences: { sandbox: true, contextIsolation: true, nodeIntegration: false },
  });
  watcher.on('query-session-end', (event: Electron.WindowSessionEndEvent) => {
    // Windows waits while the app holds the session open; it exits as soon as the relay has stopped.
    event.preventDefault();
    void drainAndExit();
  });
  watcher.on('session-end', () => void drainAndExit());
}
