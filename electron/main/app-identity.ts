/**
 * Who the app is to the OS. Windows shows a toast only for an app whose AppUserModelID matches its
 * Start-menu shortcut, which NSIS creates with electron-builder's `appId`: the two must be equal
 * (packaging.test.ts reads the builder's value). Electron's own user data (Chromium's profile) goes
 * into a folder of its own inside the data folder instead of `%APPDATA%\RelayDesk` itself, which on
 * Windows and macOS is the relay's data folder: the queue must not share a folder with a cache.
 */
import { join } from 'node:path';
import type { App } from 'electron';

export const APP_ID = 'org.relaydesk.app';

export function identifyApp(
  app: Pick<App, 'setAppUserModelId' | 'setPath' | 'setName'>,
  platform: NodeJS.Platform,
  dataDir: string,
): void {
  app.setName('RelayDesk');
  if (platform === 'win32') app.setAppUserModelId(APP_ID);
  app.setPath('userData', join(dataDir, 'desktop'));
}
