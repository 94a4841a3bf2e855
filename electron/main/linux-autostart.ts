/**
 * Start at login on Linux, where Electron's login-item settings do nothing: an XDG autostart entry,
 * `$XDG_CONFIG_HOME/autostart/relaydesk.desktop` (Desktop Application Autostart Specification),
 * which GNOME, KDE, Xfce, Cinnamon and MATE all read when a user logs in.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const FILE_NAME = 'relaydesk.desktop';

export interface AutostartLocation {
  /** `$XDG_CONFIG_HOME`, or `~/.config` when it is unset or not absolute (as the spec says). */
  configHome: string;
}

export function autostartLocation(env: NodeJS.ProcessEnv = process.env): AutostartLocation {
  const configured = env.XDG_CONFIG_HOME;
  return { configHome: configured?.startsWith('/') ? configured : join(homedir(), '.config') };
}

export function autostartFile(location: AutostartLocation): string {
  return join(location.configHome, 'autostart', FILE_NAME);
}

/** Whether the entry exists and is not switched off (`Hidden=true`, or GNOME's own switch). */
export function isAutostartEnabled(location: AutostartLocation): boolean {
  let text: string;
  try {
    text = readFileSync(autostartFile(location), 'utf8');
  } catch {
    return false;
  }
  return !/^Hidden\s*=\s*true\s*$/im.test(text) && !/^X-GNOME-Autostart-enabled\s*=\s*false\s*$/im.test(text);
}

/**
 * Writes or removes the entry. `command` is the program and its arguments: for an AppImage, the
 * AppImage file itself (`$APPIMAGE`), since the running executable lives in a mount that changes
 * with every start.
 */
export function setAutostart(location: AutostartLocation, enabled: boolean, command: string[]): void {
  const file = autostartFile(location);
  if (!enabled) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(join(location.configHome, 'autostart'), { recursive: true });
  const entry = [
    '[Desktop Entry]',
    'Type=Application',
    'Name=RelayDesk',
    'Comment=Relays office devices’ mail to Microsoft 365',
    `Exec=${command.map(quoteExecArgument).join(' ')}`,
    'Terminal=false',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
  writeFileSync(file, entry, { mode: 0o644 });
}

/**
 * Desktop Entry Specification, "The Exec key": an argument with reserved characters is quoted in
 * double quotes, inside which `"`, `` ` ``, `$` and `\` are escaped with a backslash; a literal `%`
 * is written `%%`. The whole value is then a string value, whose own escapes double each backslash.
 */
export function quoteExecArgument(argument: string): string {
  const percent = argument.replace(/%/g, '%%');
  if (percent !== '' && !/[\s"'\\`$<>~|&;*?#()]/.test(percent)) return percent;
  const quoted = `"${percent.replace(/(["`$\\])/g, '\\$1')}"`;
  return quoted.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r');
}
