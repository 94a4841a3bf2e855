/**
 * The service definitions, checked by the tools that read them: systemd's own `systemd-analyze
 * verify`, Python's plistlib (the format launchd reads) and an XML parser for WinSW's file, with
 * paths that hold spaces, quotes, `%` and `$`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { specFor } from '../../electron/cli/service.ts';
import { thisCli } from '../../electron/service/invocation.ts';
import { manualSteps } from '../../electron/service/launchd-steps.ts';
import {
  launchdPlist,
  ServicePathError,
  systemdUnit,
  windowsArg,
  winswXml,
  type ServiceSpec,
} from '../../electron/service/definitions.ts';

const CLI = resolve(import.meta.dirname, '../../bin/relaydesk.js');
const AWKWARD_DIR = `/srv/relay desk/50% "q" $HOME 'x'`;
const awkward: ServiceSpec = {
  nodePath: process.execPath,
  cliPath: CLI,
  configPath: `${AWKWARD_DIR}/config.json`,
  dataDir: AWKWARD_DIR,
  port: 25,
};

const scratch = mkdtempSync(join(tmpdir(), 'relaydesk-service-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function verifyUnit(unit: string, folder: string): { status: number | null; stderr: string } {
  const dir = join(scratch, folder);
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', dir]);
  const path = join(dir, 'relaydesk.service');
  writeFileSync(path, unit);
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

function settings(unit: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) found.set(match[1]!, [...(found.get(match[1]!) ?? []), match[2]!]);
  }
  return found;
}

describe('systemd unit', () => {
  it('passes systemd-analyze verify with spaces, quotes, % and $ in the paths, without a warning', () => {
    const unit = systemdUnit(awkward);
    // Any parse trouble (an unknown escape, a bad value, a missing binary) is printed on stderr.
    expect(verifyUnit(unit, 'awkward')).toEqual({ status: 0, stderr: '' });
    const exec = settings(unit).get('ExecStart')![0]!;
    expect(exec).toContain(`"/srv/relay desk/50%% \\"q\\" $$HOME 'x'/config.json"`);
    expect(settings(unit).get('ReadWritePaths')).toEqual([`"/srv/relay desk/50%% \\"q\\" $HOME 'x'"`]);
  });

  it('is hardened and runs as no root', () => {
    const keys = settings(systemdUnit(awkward));
    const expected: Record<string, string> = {
      User: 'relaydesk',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectControlGroups: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      AmbientCapabilities: 'CAP_NET_BIND_SERVICE',
      CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE',
      Restart: 'on-failure',
      TimeoutStopSec: '60',
      KillSignal: 'SIGTERM',
      After: 'network-online.target',
      EnvironmentFile: '-/etc/relaydesk/relaydesk.env',
    };
    for (const [key, value] of Object.entries(expected)) expect([key, keys.get(key)]).toEqual([key, [value]]);
    // No secret in the unit (the env file holds it): the one variable set here names the admin group.
    expect(keys.get('Environment')).toEqual(['RELAYDESK_CONTROL_GROUP=relaydesk-admins']);
  });

  it('lets the relaydesk-admins group reach the control socket in /run/relaydesk, the data folder private', () => {
    for (const dataDir of ['/var/lib/relaydesk', AWKWARD_DIR]) {
      const keys = settings(systemdUnit({ ...awkward, dataDir, configPath: `${dataDir}/config.json` }));
      // The relay joins the group (to hand the folder and socket to it) without being root.
      expect(keys.get('SupplementaryGroups')).toEqual(['relaydesk-admins']);
      expect(keys.get('RuntimeDirectory')).toEqual(['relaydesk']);
      expect(keys.get('RuntimeDirectoryMode')).toEqual(['0750']);
      expect(keys.get('UMask')).toEqual(['0077']);
    }
  });

  it('uses a dynamic user and StateDirectory for the default data folder', () => {
    const unit = systemdUnit({
      ...awkward,
      dataDir: '/var/lib/relaydesk',
      configPath: '/var/lib/relaydesk/config.json',
    });
    expect(verifyUnit(unit, 'state')).toEqual({ status: 0, stderr: '' });
    const keys = settings(unit);
    expect(keys.get('DynamicUser')).toEqual(['yes']);
    expect(keys.get('StateDirectory')).toEqual(['relaydesk']);
    expect(keys.get('StateDirectoryMode')).toEqual(['0700']);
    expect(keys.has('User')).toBe(false);
    const withEtcConfig = systemdUnit({
      ...awkward,
      dataDir: '/var/lib/relaydesk',
      configPath: '/etc/relaydesk/config.json',
    });
    expect(settings(withEtcConfig).get('DynamicUser')).toEqual(['yes']);
  });

  it('keeps a data folder under /home reachable: read-only home plus the folder writable', () => {
    const unit = systemdUnit({
      ...awkward,
      dataDir: '/home/ops/relay',
      configPath: '/home/ops/relay/config.json',
    });
    expect(verifyUnit(unit, 'home')).toEqual({ status: 0, stderr: '' });
    expect(settings(unit).get('ProtectHome')).toEqual(['read-only']);
    expect(settings(unit).get('ReadWritePaths')).toEqual(['"/home/ops/relay"']);
  });

  it('refuses a line break in a path rather than writing a second setting', () => {
    expect(() => systemdUnit({ ...awkward, dataDir: '/srv/a\nExecStartPre=/bin/sh' })).toThrow(
      ServicePathError,
    );
  });
});

/** The plist as launchd's format reader (Python's plistlib) reads it; a parse error fails the test. */
function readPlist(plist: string): unknown {
  const path = join(scratch, 'org.relaydesk.relay.plist');
  writeFileSync(path, plist);
  const result = spawnSync(
    'python3',
    ['-c', 'import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],"rb"))))', path],
    { encoding: 'utf8' },
  );
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout);
}

describe('launchd plist', () => {
  it('parses with plistlib and carries the arguments, account, logs and stop time exactly', () => {
    expect(readPlist(launchdPlist(awkward))).toEqual({
      Label: 'org.relaydesk.relay',
      ProgramArguments: [
        process.execPath,
        CLI,
        'serve',
        '--config',
        `${AWKWARD_DIR}/config.json`,
        '--data-dir',
        AWKWARD_DIR,
      ],
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      UserName: '_relaydesk',
      GroupName: '_relaydesk',
      InitGroups: true,
      EnvironmentVariables: { RELAYDESK_CONTROL_GROUP: 'relaydesk-admins' },
      Umask: 0o077,
      StandardOutPath: `${AWKWARD_DIR}/logs/service.out.log`,
      StandardErrorPath: `${AWKWARD_DIR}/logs/service.err.log`,
      ExitTimeOut: 60,
    });
  });
});

/** How the Microsoft C runtime (and so node.exe) splits a command line into argv. */
function splitWindowsCommandLine(line: string): string[] {
  const args: string[] = [];
  let current = '';
  let inWord = false;
  let quoted = false;
  for (let index = 0; index < line.length; index += 1) {
    const char = line[index]!;
    if (char === '\\') {
      let count = 0;
      while (line[index] === '\\') {
        count += 1;
        index += 1;
      }
      if (line[index] === '"') {
        current += '\\'.repeat(Math.floor(count / 2));
        if (count % 2 === 1) current += '"';
        else {
          quoted = !quoted;
        }
      } else {
        current += '\\'.repeat(count);
        index -= 1;
      }
      inWord = true;
    } else if (char === '"') {
      quoted = !quoted;
      inWord = true;
    } else if ((char === ' ' || char === '\t') && !quoted) {
      if (inWord) args.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (inWord) args.push(current);
  return args;
}

function parseXml(xml: string): { status: number | null; stdout: string; stderr: string } {
  const path = join(scratch, 'relaydesk-service.xml');
  writeFileSync(path, xml);
  const script =
    'import json,sys,xml.etree.ElementTree as ET\n' +
    'root = ET.parse(sys.argv[1]).getroot()\n' +
    'print(json.dumps({"tag": root.tag, "children": [[c.tag, c.text, c.attrib] for c in root] ,' +
    ' "user": root.findtext("serviceaccount/domain") + "\\\\" + root.findtext("serviceaccount/user")}))';
  return spawnSync('python3', ['-c', script, path], { encoding: 'utf8' });
}

describe('WinSW service XML', () => {
  const windowsSpec: ServiceSpec = {
    nodePath: 'C:\\Program Files\\nodejs\\node.exe',
    cliPath: 'C:\\Program Files\\RelayDesk & Co\\bin\\relaydesk.js',
    configPath: 'C:\\Relay <Desk> "x"\\config.json',
    dataDir: 'C:\\Relay Desk\\',
    port: 25,
  };

  it('is well-formed XML whose arguments node.exe splits back into the exact paths', () => {
    const parsed = parseXml(winswXml(windowsSpec));
    expect(parsed.stderr).toBe('');
    const service = JSON.parse(parsed.stdout) as {
      tag: string;
      children: [string, string, object][];
      user: string;
    };
    expect(service.tag).toBe('service');
    const text = (tag: string) => service.children.find(([name]) => name === tag)?.[1];
    expect(text('id')).toBe('RelayDesk');
    expect(text('executable')).toBe(windowsSpec.nodePath);
    expect(splitWindowsCommandLine(text('arguments')!)).toEqual([
      windowsSpec.cliPath,
      'serve',
      '--config',
      windowsSpec.configPath,
      '--data-dir',
      windowsSpec.dataDir,
    ]);
    expect(text('startmode')).toBe('Automatic');
    expect(text('workingdirectory')).toBe(windowsSpec.dataDir);
    expect(text('stoptimeout')).toBe('60 sec');
    expect(service.children.filter(([name]) => name === 'onfailure')[0]![2]).toEqual({
      action: 'restart',
      delay: '10 sec',
    });
    expect(service.user).toBe('NT AUTHORITY\\LocalService');
  });

  it('quotes any argument so that it splits back unchanged', () => {
    const samples = [
      '',
      'a b',
      'tail\\',
      'tail\\\\',
      'a\\"b',
      '"',
      '\\\\server\\share\\x y',
      'C:\\x\\"y\\"',
      'plain',
    ];
    for (const sample of samples) {
      expect([sample, splitWindowsCommandLine(`node ${windowsArg(sample)} end`)]).toEqual([
        sample,
        ['node', sample, 'end'],
      ]);
    }
  });

  it('refuses a % in a path, which WinSW would expand as an environment variable', () => {
    expect(() => winswXml({ ...windowsSpec, dataDir: 'C:\\100%USERNAME%' })).toThrow(
      /choose a path without "%"/,
    );
  });
});

describe('the commands printed where install cannot act itself', () => {
  it('macOS: the plist printed with the same folders, then launchctl bootstrap', () => {
    const out = manualSteps('install', awkward);
    // The folder is single-quoted for the shell, its own ' closed and escaped.
    expect(out).toContain(`--data-dir '/srv/relay desk/50% "q" $HOME '\\''x'\\'''`);
    expect(out).toContain(
      'sudo launchctl bootstrap system /Library/LaunchDaemons/org.relaydesk.relay.plist\n',
    );
    expect(manualSteps('uninstall', awkward)).toContain('sudo launchctl bootout system/org.relaydesk.relay');
  });

  it('macOS: the admin group with the relay and the installing admin in it, and its control folder', () => {
    const out = manualSteps('install', awkward, 'anna');
    expect(out).toContain(
      [
        "sudo dseditgroup -o create -r 'RelayDesk admins' relaydesk-admins",
        'sudo dseditgroup -o edit -a _relaydesk -t user relaydesk-admins',
        'sudo dseditgroup -o edit -a anna -t user relaydesk-admins',
        "sudo mkdir -p '/Library/Application Support/RelayDesk Control'",
        "sudo chown _relaydesk:relaydesk-admins '/Library/Application Support/RelayDesk Control' && " +
          "sudo chmod 750 '/Library/Application Support/RelayDesk Control'",
      ].join('\n'),
    );
    // The group is made before the daemon starts: the relay hands its folder to it at start.
    expect(out.indexOf('dseditgroup -o create')).toBeLessThan(out.indexOf('launchctl bootstrap'));
  });
});

/**
 * The packaged app: its RunAsNode fuse is off, so the service runs the app's own binary with --cli
 * (main/cli-mode.ts), not `<Electron> bin/relaydesk.js`, which would open the desktop app.
 */
describe('the packaged app as the program', () => {
  // An executable that exists (systemd-analyze checks), standing in for /opt/RelayDesk/relaydesk.
  const packaged: ServiceSpec = { ...awkward, cliPath: null };
  const serveWords = ['serve', '--config', `${AWKWARD_DIR}/config.json`, '--data-dir', AWKWARD_DIR];

  it('systemd: ExecStart runs the app binary with --cli, and the unit passes systemd-analyze verify', () => {
    const unit = systemdUnit(packaged);
    expect(verifyUnit(unit, 'packaged')).toEqual({ status: 0, stderr: '' });
    // --no-sandbox: NoNewPrivileges= leaves Chromium no way to set its sandbox up, and no page is opened.
    expect(settings(unit).get('ExecStart')).toEqual([
      [process.execPath, '--no-sandbox', '--cli', ...serveWords]
        .map((word) => `"${word.replaceAll('"', '\\"').replaceAll('%', '%%').replaceAll('$', '$$$$')}"`)
        .join(' '),
    ]);
  });

  it('launchd: ProgramArguments are the app binary, --cli and serve, as plistlib reads them', () => {
    expect((readPlist(launchdPlist(packaged)) as { ProgramArguments: string[] }).ProgramArguments).toEqual([
      process.execPath,
      '--cli',
      ...serveWords,
    ]);
  });

  it('WinSW: <executable> is RelayDesk.exe and <arguments> split back into --cli serve ...', () => {
    const exe = 'C:\\Program Files\\RelayDesk & Co\\RelayDesk.exe';
    const spec: ServiceSpec = {
      nodePath: exe,
      cliPath: null,
      configPath: 'C:\\Relay <Desk> "x"\\config.json',
      dataDir: 'C:\\Relay Desk\\',
      port: 25,
    };
    const parsed = parseXml(winswXml(spec));
    expect(parsed.stderr).toBe('');
    const service = JSON.parse(parsed.stdout) as { children: [string, string, object][] };
    const text = (tag: string) => service.children.find(([name]) => name === tag)?.[1];
    expect(text('executable')).toBe(exe);
    expect(splitWindowsCommandLine(text('arguments')!)).toEqual([
      '--cli',
      'serve',
      '--config',
      spec.configPath,
      '--data-dir',
      spec.dataDir,
    ]);
  });
});

describe('specFor: what this install runs as the service', () => {
  const flags = { 'data-dir': '/var/lib/relaydesk' };

  it('under Node.js: node and bin/relaydesk.js', async () => {
    const spec = await specFor('systemd', 'systemd', flags, thisCli()!);
    expect([spec.nodePath, spec.cliPath]).toEqual([process.execPath, CLI]);
    expect(settings(systemdUnit(spec)).get('ExecStart')![0]).toMatch(
      /^"[^"]+" "[^"]+relaydesk\.js" "serve" /,
    );
  });

  it('inside the packaged app: its own binary, no script (the unit says --cli)', async () => {
    const app = {
      versions: { ...process.versions, electron: '39.2.4' },
      execPath: '/opt/RelayDesk/relaydesk',
    };
    const spec = await specFor('systemd', 'systemd', flags, thisCli(app)!);
    expect([spec.nodePath, spec.cliPath]).toEqual(['/opt/RelayDesk/relaydesk', null]);
    expect(settings(systemdUnit(spec)).get('ExecStart')).toEqual([
      '"/opt/RelayDesk/relaydesk" "--no-sandbox" "--cli" "serve" "--config" "/var/lib/relaydesk/config.json" "--data-dir" "/var/lib/relaydesk"',
    ]);
  });

  it('from an unpackaged `electron .`: none, since its binary alone would not start RelayDesk', () => {
    const dev = {
      versions: { ...process.versions, electron: '39.2.4' },
      execPath: '/x/electron',
      defaultApp: true,
    };
    expect(thisCli(dev)).toBeNull();
  });

  it('from an AppImage: none, since its binary lives in a mount that ends with the app', () => {
    const mount = '/tmp/.mount_RelayDXyz12';
    const appImage = {
      versions: { ...process.versions, electron: '39.2.4' },
      execPath: `${mount}/relaydesk`,
    };
    expect(thisCli(appImage, { APPIMAGE: '/home/ann/RelayDesk.AppImage', APPDIR: mount })).toBeNull();
    // The .deb's binary, started from a shell an AppImage once set these in: still itself.
    expect(
      thisCli({ ...appImage, execPath: '/opt/RelayDesk/relaydesk' }, { APPIMAGE: 'x', APPDIR: mount }),
    ).toEqual({
      command: '/opt/RelayDesk/relaydesk',
      script: null,
    });
  });
});
