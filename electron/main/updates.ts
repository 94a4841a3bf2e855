/**
 * Updates through electron-builder's updater, so that a fix reaches an office without a visit. Off
 * unless the package was built with a feed (`RELAYDESK_UPDATE_URL` at `npm run dist` writes
 * `resources/app-update.yml`, a generic provider). A downloaded update installs when the app quits,
 * which first drains the relay like any other quit.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import electronUpdater from 'electron-updater';

const CHECK_EVERY_MS = 6 * 60 * 60 * 1000;

export interface UpdateDeps {
  isPackaged: boolean;
  resourcesPath: string;
  log: { info(...args: unknown[]): void; warn(...args: unknown[]): void; error(...args: unknown[]): void };
}

/** Starts checking for updates when the package has a feed; returns whether it did. */
export function startUpdates({ isPackaged, resourcesPath, log }: UpdateDeps): boolean {
  if (!isPackaged || !existsSync(join(resourcesPath, 'app-update.yml'))) return false;
  const { autoUpdater } = electronUpdater;
  autoUpdater.logger = log;
  const check = () =>
    autoUpdater.checkForUpdatesAndNotify().catch((error: Error) => {
      log.warn('update check failed', { reason: error.message });
    });
  void check();
  setInterval(() => void check(), CHECK_EVERY_MS).unref();
  return true;
}
