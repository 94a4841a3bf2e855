import os from 'node:os';
import path from 'node:path';

const APP_FOLDER = 'RelayDesk';

/** Where RelayDesk keeps its config, queue and certificates, per operating system convention. */
export function defaultDataDir(
  platform: NodeJS.Platform = process.platform,
  env: NodeJS.ProcessEnv = process.env,
  home: string = os.homedir(),
): string {
  if (platform === 'win32') {
    const appData = env.APPDATA || path.win32.join(home, 'AppData', 'Roaming');
    return path.win32.join(appData, APP_FOLDER);
  }
  if (platform === 'darwin') return path.posix.join(home, 'Library', 'Application Support', APP_FOLDER);
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const xdgConfigHome = env.XDG_CONFIG_HOME;
  const configHome =
    xdgConfigHome && path.posix.isAbsolute(xdgConfigHome) ? xdgConfigHome : path.posix.join(home, '.config');
  return path.posix.join(configHome, APP_FOLDER);
}

export function defaultConfigPath(dataDir: string, platform: NodeJS.Platform = process.platform): string {
  return (platform === 'win32' ? path.win32 : path.posix).join(dataDir, 'config.json');
}
