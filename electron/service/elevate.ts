/**
 * The desktop app's "Run the relay as a service": `relaydesk service install`, started through the
 * OS's own administrator prompt. Windows: PowerShell's Start-Process -Verb RunAs (the UAC prompt);
 * Linux: pkexec (polkit's prompt), when installed; macOS: osascript's `do shell script ... with
 * administrator privileges`. None of them passes the caller's environment on (UAC starts the process
 * afresh, pkexec and `do shell script` clear it), so the command sets what it needs itself. Pure
 * composition, so that a test reads each command on any OS.
 */
import { cliWords, type CliInvocation } from './invocation.ts';

export type { CliInvocation };

export interface InstallRequest {
  cli: CliInvocation;
  /** The app's config.json: the service starts with the settings made in the window. */
  appConfigPath: string;
  /** The service's data folder (DEFAULT_SERVICE_DATA_DIR). */
  serviceDataDir: string;
  /** Who joins the admin group: the signed-in user, not the account the prompt elevates to. */
  adminUser: string;
  /** Windows: where the elevated install writes its output for the app to show. */
  logPath?: string;
}

export interface ElevatedCommand {
  command: string;
  args: string[];
}

/** A word for a POSIX shell: single-quoted, its own `'` closed, escaped and reopened. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A PowerShell verbatim string: `'` doubled, and the typographic single quotes it also reads as quotes. */
export function powershellQuote(word: string): string {
  return `'${word.replace(/['\u2018\u2019\u201a\u201b]/g, (quote) => quote + quote)}'`;
}

/** An AppleScript string literal (`do shell script` takes one). */
export function appleScriptString(text: string): string {
  return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`;
}

/**
 * Linux: pkexec runs /bin/sh with the paths as positional parameters ($1...), never parsed as
 * shell text: a folder with spaces or quotes arrives intact.
 */
export function linuxElevatedInstall(request: InstallRequest): ElevatedCommand {
  const script = [
    'set -e',
    'install -d -m 0700 -- "$1"',
    'install -m 0600 -- "$2" "$1/config.json"',
    'data=$1 admin=$3',
    // What is left is the command line's program and first words (node and its script, or the app).
    'shift 3',
    'exec "$@" service install --data-dir "$data" --add-admin "$admin"',
  ].join('\n');
  return {
    command: 'pkexec',
    args: [
      '/bin/sh',
      '-c',
      script,
      'relaydesk-service-install',
      request.serviceDataDir,
      request.appConfigPath,
      request.adminUser,
      ...cliWords(request.cli, true),
    ],
  };
}

/**
 * macOS: `relaydesk service install` prints the steps there (launchd has no installer to call), so
 * the prompt runs those steps, given as a script by `steps` (cli/service.ts manualSteps), after
 * copying the app's config into the new data folder.
 */
export function macElevatedInstall(request: InstallRequest, steps: string): ElevatedCommand {
  const data = shellQuote(request.serviceDataDir);
  // No `set -e`: on a second install dseditgroup's "group exists" is no reason to stop.
  const script = [
    `mkdir -p ${data}`,
    `cp ${shellQuote(request.appConfigPath)} ${shellQuote(`${request.serviceDataDir}/config.json`)}`,
    // The steps write for an administrator's Terminal (sudo ...): here they already run as root.
    ...steps.split('\n').filter((line) => line !== '' && !line.startsWith('#')),
  ].join('\n');
  return {
    command: '/usr/bin/osascript',
    args: ['-e', `do shell script ${appleScriptString(script)} with administrator privileges`],
  };
}

/**
 * Windows: an unelevated PowerShell asks UAC for an elevated one (Start-Process -Verb RunAs -Wait)
 * and passes its exit status back. The elevated script goes as -EncodedCommand (base64 of UTF-16LE),
 * so no quoting has to survive the hop; inside, every path is a verbatim string.
 */
export function windowsElevatedInstall(request: InstallRequest): ElevatedCommand {
  const data = request.serviceDataDir;
  const log = request.logPath
    ? ` *>&1 | Out-File -Encoding utf8 -LiteralPath ${powershellQuote(request.logPath)}`
    : '';
  const inner = [
    "$ErrorActionPreference = 'Stop'",
    `New-Item -ItemType Directory -Force -Path ${powershellQuote(data)} | Out-Null`,
    `Copy-Item -Force -LiteralPath ${powershellQuote(request.appConfigPath)} -Destination ${powershellQuote(`${data.replace(/\\+$/, '')}\\config.json`)}`,
    `& ${cliWords(request.cli, false).map(powershellQuote).join(' ')} service install --data-dir ${powershellQuote(data)} --add-admin ${powershellQuote(request.adminUser)}${log}`,
    'exit $LASTEXITCODE',
  ].join('\n');
  const encoded = Buffer.from(inner, 'utf16le').toString('base64');
  return {
    command: 'powershell.exe',
    args: [
      '-NoProfile',
      '-NonInteractive',
      '-Command',
      "$p = Start-Process -FilePath 'powershell.exe' -Verb RunAs -Wait -PassThru -WindowStyle Hidden " +
        `-ArgumentList '-NoProfile','-NonInteractive','-EncodedCommand','${encoded}'; exit $p.ExitCode`,
    ],
  };
}
