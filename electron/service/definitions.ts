/**
 * What `relaydesk service install` writes for each service manager: a systemd unit, a launchd
 * daemon plist, a WinSW service XML. Pure text generators, so each can be checked by the
 * manager's own tool (`systemd-analyze verify`, plistlib, an XML parser) on any machine.
 */

import { controlGroupDir, defaultAdminGroup } from '../relay/control.ts';
import { cliWords } from './invocation.ts';

export type ServiceTarget = 'systemd' | 'launchd' | 'windows';

export const SERVICE_TARGETS: readonly ServiceTarget[] = ['systemd', 'launchd', 'windows'];

export interface ServiceSpec {
  /** Absolute path of the program that runs the relay: Node.js, or the packaged desktop app's binary. */
  nodePath: string;
  /** Absolute path of bin/relaydesk.js of this install; null when nodePath is the app, run as `App --cli serve ...`. */
  cliPath: string | null;
  configPath: string;
  dataDir: string;
  /** The LAN listener's port, for the comments (port 25 is why the bind capability is granted). */
  port: number;
}

/** Where the definition goes and the name it is known by. */
export const SYSTEMD_UNIT_PATH = '/etc/systemd/system/relaydesk.service';
export const SYSTEMD_ENV_FILE = '/etc/relaydesk/relaydesk.env';
/** systemd's StateDirectory=relaydesk: created 0700 and owned by the service's dynamic user. */
export const SYSTEMD_STATE_DIR = '/var/lib/relaydesk';
export const LAUNCHD_LABEL = 'org.relaydesk.relay';
export const LAUNCHD_PLIST_PATH = `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
export const LAUNCHD_USER = '_relaydesk';
export const WINDOWS_SERVICE_ID = 'RelayDesk';
/** The built-in account the Windows service runs as: no password, few rights, its own profile. */
export const WINDOWS_SERVICE_ACCOUNT = 'NT AUTHORITY\\LocalService';

/**
 * The local group whose members may see and drive the service (status, queue, the tray), as IIS
 * SMTP's operators could: `install` creates it and adds the installing user (electron/relay/control.ts).
 */
export const SERVICE_ADMIN_GROUP: Record<ServiceTarget, string> = {
  systemd: defaultAdminGroup('linux'),
  launchd: defaultAdminGroup('darwin'),
  windows: defaultAdminGroup('win32'),
};
/** Where the group's control channel lives: outside the data folder, which stays the service's alone. */
export const SERVICE_CONTROL_DIR: Record<ServiceTarget, string> = {
  systemd: controlGroupDir({}, 'linux'),
  launchd: controlGroupDir({}, 'darwin'),
  windows: controlGroupDir({}, 'win32'),
};

/** The data folder a service uses when none is given: a system location, not a user's profile. */
export const DEFAULT_SERVICE_DATA_DIR: Record<ServiceTarget, string> = {
  systemd: SYSTEMD_STATE_DIR,
  launchd: '/Library/Application Support/RelayDesk',
  windows: 'C:\\ProgramData\\RelayDesk',
};

/** A path a definition cannot carry safely: refused with a reason instead of written wrong. */
export class ServicePathError extends Error {}

export function serviceDefinition(target: ServiceTarget, spec: ServiceSpec): string {
  switch (target) {
    case 'systemd':
      return systemdUnit(spec);
    case 'launchd':
      return launchdPlist(spec);
    case 'windows':
      return winswXml(spec);
  }
}

/** The program and its first words: node and bin/relaydesk.js, or the app's binary and `--cli`. */
function programWords(spec: ServiceSpec, linux: boolean): string[] {
  return cliWords({ command: spec.nodePath, script: spec.cliPath }, linux);
}

// ---- systemd -------------------------------------------------------------------------------

/**
 * One ExecStart= word: double-quoted (systemd.service(5) "Command lines"), `\` and `"` escaped,
 * `%` doubled (specifiers) and `$` doubled (environment variable substitution).
 */
export function systemdExecWord(word: string): string {
  return `"${systemdEscape(word).replaceAll('$', '$$$$')}"`;
}

/** A quoted path for list settings such as ReadWritePaths= (specifiers expand there, `$` does not). */
function systemdPathWord(path: string): string {
  return `"${systemdEscape(path)}"`;
}

function systemdEscape(text: string): string {
  if (/[\n\r\0]/.test(text))
    throw new ServicePathError(`a line break cannot go in a systemd unit: ${JSON.stringify(text)}`);
  return text.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('%', '%%');
}

function isUnder(path: string, folder: string): boolean {
  return path === folder || path.startsWith(`${folder}/`);
}

export function systemdUnit(spec: ServiceSpec): string {
  // The config may live anywhere readable (/etc/relaydesk, say): the data folder decides the account.
  const usesStateDir = isUnder(spec.dataDir, SYSTEMD_STATE_DIR);
  const inHome = [spec.dataDir, spec.configPath, spec.cliPath ?? spec.nodePath].some(
    (path) => isUnder(path, '/home') || isUnder(path, '/root'),
  );
  const exec = [...programWords(spec, true), 'serve', '--config', spec.configPath, '--data-dir', spec.dataDir]
    .map(systemdExecWord)
    .join(' ');
  const account = usesStateDir
    ? [
        '# A user that exists only while the service runs; /var/lib/relaydesk is made 0700 for it.',
        'DynamicUser=yes',
        'StateDirectory=relaydesk',
        'StateDirectoryMode=0700',
      ]
    : [
        '# A dedicated system account (create it: useradd --system --shell /usr/sbin/nologin relaydesk),',
        '# owner of the data folder (chown -R relaydesk: DIR; chmod 700 DIR).',
        'User=relaydesk',
        'Group=relaydesk',
        `ReadWritePaths=${systemdPathWord(spec.dataDir)}`,
      ];
  return [
    '# RelayDesk SMTP relay, written by `relaydesk service install` (see docs/service.md).',
    '[Unit]',
    'Description=RelayDesk SMTP relay to Microsoft 365',
    'Documentation=https://relaydesk.invalid/docs/service.md',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    ...account,
    '# The upstream password (RELAYDESK_UPSTREAM_PASSWORD=...) or client secret (RELAYDESK_CLIENT_SECRET=...)',
    `# lives in this file, root-owned, mode 0600, never in the unit; the leading "-" lets it be absent.`,
    `EnvironmentFile=-${SYSTEMD_ENV_FILE}`,
    // serve drains on SIGTERM: new connections get 421, messages in flight finish.
    'KillSignal=SIGTERM',
    'TimeoutStopSec=60',
    'Restart=on-failure',
    'RestartSec=5',
    `# Listens on port ${spec.port}: a port below 1024, such as 25, needs this capability, not root.`,
    'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    // A data folder or install under /home stays reachable, read-only except what ReadWritePaths names.
    `ProtectHome=${inHome ? 'read-only' : 'yes'}`,
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'UMask=0077',
    `# Members of ${SERVICE_ADMIN_GROUP.systemd} may see and drive the relay (docs/service.md, "Who can drive`,
    `# the service"): its control socket is in ${SERVICE_CONTROL_DIR.systemd}, which the relay hands to that group;`,
    '# the data folder stays private to the service.',
    `Environment=RELAYDESK_CONTROL_GROUP=${SERVICE_ADMIN_GROUP.systemd}`,
    `SupplementaryGroups=${SERVICE_ADMIN_GROUP.systemd}`,
    `RuntimeDirectory=${SERVICE_CONTROL_DIR.systemd.replace('/run/', '')}`,
    'RuntimeDirectoryMode=0750',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

// ---- XML (launchd and WinSW) ---------------------------------------------------------------

export function xmlEscape(text: string): string {
  // XML 1.0 allows no control characters but tab, CR, LF: no entity can carry them either.
  const forbidden = [...text].find((char) => char < ' ' && !'\t\n\r'.includes(char));
  if (forbidden !== undefined) {
    throw new ServicePathError(`a control character cannot go in an XML file: ${JSON.stringify(text)}`);
  }
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&apos;');
}

// ---- launchd -------------------------------------------------------------------------------

export function launchdPlist(spec: ServiceSpec): string {
  const args = [
    ...programWords(spec, false),
    'serve',
    '--config',
    spec.configPath,
    '--data-dir',
    spec.dataDir,
  ];
  const logs = `${spec.dataDir.replace(/\/+$/, '')}/logs`;
  const string = (value: string) => `<string>${xmlEscape(value)}</string>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<!-- RelayDesk SMTP relay, written by `relaydesk service install` (see docs/service.md). -->',
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key>${string(LAUNCHD_LABEL)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...args.map((arg) => `    ${string(arg)}`),
    '  </array>',
    '  <key>RunAtLoad</key><true/>',
    '  <key>KeepAlive</key>',
    '  <dict>',
    '    <key>SuccessfulExit</key><false/>',
    '  </dict>',
    `  <key>UserName</key>${string(LAUNCHD_USER)}`,
    `  <key>GroupName</key>${string(LAUNCHD_USER)}`,
    '  <key>Umask</key><integer>63</integer>',
    // launchd gives the account its groups (initgroups): relaydesk-admins, whose members drive it.
    '  <key>InitGroups</key><true/>',
    '  <key>EnvironmentVariables</key>',
    '  <dict>',
    `    <key>RELAYDESK_CONTROL_GROUP</key>${string(SERVICE_ADMIN_GROUP.launchd)}`,
    '  </dict>',
    `  <key>StandardOutPath</key>${string(`${logs}/service.out.log`)}`,
    `  <key>StandardErrorPath</key>${string(`${logs}/service.err.log`)}`,
    // launchd sends SIGTERM, then SIGKILL after this many seconds: time for serve to drain.
    '  <key>ExitTimeOut</key><integer>60</integer>',
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

// ---- Windows (WinSW) -----------------------------------------------------------------------

/**
 * One argument quoted for a Windows command line as the C runtime (and so Node) splits it:
 * backslashes are literal except before a quote, where they double; a quote is `\"`.
 */
export function windowsArg(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  let quoted = '"';
  let backslashes = 0;
  for (const char of arg) {
    if (char === '\\') {
      backslashes += 1;
      continue;
    }
    quoted += '\\'.repeat(char === '"' ? backslashes * 2 + 1 : backslashes) + char;
    backslashes = 0;
  }
  return `${quoted}${'\\'.repeat(backslashes * 2)}"`;
}

export function winswXml(spec: ServiceSpec): string {
  const [executable = spec.nodePath, ...first] = programWords(spec, false);
  const paths = [executable, ...first, spec.configPath, spec.dataDir];
  // WinSW expands %NAME% in <executable> and <arguments>, and that has no escape.
  const withPercent = paths.find((path) => path.includes('%'));
  if (withPercent !== undefined) {
    throw new ServicePathError(
      `WinSW would read "%" as an environment variable in ${withPercent}: choose a path without "%"`,
    );
  }
  const args = [...first, 'serve', '--config', spec.configPath, '--data-dir', spec.dataDir]
    .map(windowsArg)
    .join(' ');
  const logs = `${spec.dataDir.replace(/\\+$/, '')}\\logs`;
  const [domain, user] = WINDOWS_SERVICE_ACCOUNT.split('\\');
  // Only elements WinSW 1.17 reads (the winsw.exe node-windows ships): it ignores any other, so a
  // newer WinSW's <username> would leave the service running as LocalSystem.
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!-- RelayDesk SMTP relay, a WinSW service definition written by `relaydesk service install`',
    '     (see docs/service.md). WinSW stops the relay with Ctrl+C, on which serve drains. -->',
    '<service>',
    `  <id>${WINDOWS_SERVICE_ID}</id>`,
    '  <name>RelayDesk SMTP relay</name>',
    `  <description>Relays mail from office devices (port ${spec.port}) to Microsoft 365.</description>`,
    `  <executable>${xmlEscape(executable)}</executable>`,
    `  <arguments>${xmlEscape(args)}</arguments>`,
    // A service starts in System32: the data folder is where relative paths should land.
    `  <workingdirectory>${xmlEscape(spec.dataDir)}</workingdirectory>`,
    '  <startmode>Automatic</startmode>',
    '  <onfailure action="restart" delay="10 sec"/>',
    '  <onfailure action="restart" delay="60 sec"/>',
    '  <resetfailure>1 hour</resetfailure>',
    '  <stoptimeout>60 sec</stoptimeout>',
    `  <logpath>${xmlEscape(logs)}</logpath>`,
    '  <log mode="roll-by-size"/>',
    // Members of this local group may see and drive the service: control.ts, docs/service.md.
    `  <env name="RELAYDESK_CONTROL_GROUP" value="${xmlEscape(SERVICE_ADMIN_GROUP.windows)}"/>`,
    '  <serviceaccount>',
    `    <domain>${domain}</domain>`,
    `    <user>${user}</user>`,
    // WinSW 1.x installs with this password: LocalService has none.
    '    <password></password>',
    '  </serviceaccount>',
    '</service>',
    '',
  ].join('\n');
}
