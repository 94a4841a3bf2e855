/**
 * "Start at login", read back exactly as it was written. On Windows Electron compares the Run
 * entry's executable AND arguments: set with `--hidden` and read without it, the item always reads
 * unchecked and can never be switched off. Linux has no login items in Electron: an XDG autostart
 * entry does the job there (linux-autostart.ts).
 */
import type { App } from 'electron';
import { isAutostartEnabled, setAutostart, type AutostartLocation } from './linux-autostart.ts';

export const HIDDEN_ARG = '--hidden';

export interface LoginItem {
  enabled(): boolean;
  set(enabled: boolean): void;
  /** Whether this process was started by the login item (then it stays in the tray). */
  startedAtLogin(argv: readonly string[]): boolean;
}

type LoginItemApp = Pick<App, 'getLoginItemSettings' | 'setLoginItemSettings'>;

export function createLoginItem(
  app: LoginItemApp,
  linuxAutostart: AutostartLocation | null,
  launchCommand: () => string[],
): LoginItem {
  if (linuxAutostart) {
    return {
      enabled: () => isAutostartEnabled(linuxAutostart),
      set: (enabled) => setAutostart(linuxAutostart, enabled, [...launchCommand(), HIDDEN_ARG]),
      startedAtLogin: (argv) => argv.includes(HIDDEN_ARG),
    };
  }
  const [path] = launchCommand();
  const entry = { path, args: [...launchCommand().slice(1), HIDDEN_ARG] };
  return {
    enabled: () => app.getLoginItemSettings(entry).openAtLogin,
    set: (enabled) => app.setLoginItemSettings({ openAtLogin: enabled, ...entry }),
    startedAtLogin: (argv) => argv.includes(HIDDEN_ARG) || app.getLoginItemSettings(entry).wasOpenedAtLogin,
  };
}
