/**
 * The packaged app as the command line: `RelayDesk --cli serve --config C --data-dir D`, which a
 * service definition runs, and `RelayDesk --cli service install ...`, which the administrator prompt
 * runs (service/invocation.ts). The packaged app turns Electron's RunAsNode fuse off, so its binary
 * cannot act as node: the main process runs the command line itself, with no window, no tray and no
 * single-instance lock (a service's relay and the signed-in user's tray run side by side).
 */
import { app } from 'electron';
import { main } from '../cli/main.ts';

/** Exit status when the command line itself crashed (sysexits' EX_SOFTWARE). */
const EXIT_CRASHED = 70;

export function runCliMode(args: string[]): void {
  // A service on Linux has no display, and Chromium's default (X11/Wayland) platform would refuse to
  // start without one; the headless platform needs none. Read by the browser process before 'ready'.
  if (process.platform === 'linux') app.commandLine.appendSwitch('ozone-platform', 'headless');
  // macOS: a command line, not an app in the Dock.
  app.dock?.hide();

  let done = false;
  let running: Promise<number> | null = null;
  // Electron turns SIGTERM and SIGINT (systemd's and launchd's stop) into app.quit(); serve stops on
  // those signals, so a quit is handed to it as one, and the app ends when it has drained.
  app.on('before-quit', (event) => {
    if (done) return;
    event.preventDefault();
    if (running === null) app.exit(0);
    else process.emit('SIGTERM', 'SIGTERM');
  });
  // Without windows there is nothing to close; this keeps Electron from quitting on its own.
  app.on('window-all-closed', () => {});

  void app.whenReady().then(() => {
    running = main(args);
    return running.then(
      (code) => finish(code),
      (error: unknown) => {
        process.stderr.write(
          `relaydesk: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
        finish(EXIT_CRASHED);
      },
    );
  });

  function finish(code: number): void {
    done = true;
    app.exit(code);
  }
}
