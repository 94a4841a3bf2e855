/**
 * "Run the relay as a service" behind the OS's administrator prompt: the exact commands for UAC
 * (PowerShell Start-Process -Verb RunAs), polkit (pkexec) and macOS (osascript with administrator
 * privileges), with paths holding spaces and quotes; the Linux one run for real (as root, the part
 * pkexec would run), and the fallback to showing the commands where pkexec is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  findPkexec,
  runElevated,
  runServiceOffer,
  serviceOffer,
  serviceOfferText,
  type ServiceOffer,
  type ServiceOfferDeps,
} from '../../electron/main/service-tray.ts';
import {
  appleScriptString,
  linuxElevatedInstall,
  powershellQuote,
  type CliInvocation,
} from '../../electron/service/elevate.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));

const scratch = mkdtempSync(join(tmpdir(), 'relaydesk-elevate-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The packaged app: its own binary runs the command line given --cli (its RunAsNode fuse is off). */
const electronCli: CliInvocation = {
  command: "C:\\Program Files\\RelayDesk\\O'Brien’s\\RelayDesk.exe",
  script: null,
};

describe('Windows: UAC through PowerShell', () => {
  it('asks for elevation with Start-Process -Verb RunAs -Wait and passes the exit status back', () => {
    const offer = serviceOffer({
      platform: 'win32',
      appDataDir: "C:\\Users\\Ann O'Neil\\AppData\\Roaming\\RelayDesk",
      cli: electronCli,
      adminUser: "OFFICE\\ann o'neil",
      pkexec: false,
      logPath: 'C:\\Users\\ANN~1\\AppData\\Local\\Temp\\relaydesk-service-install-7.log',
    });
    expect(offer.kind).toBe('elevate');
    if (offer.kind !== 'elevate') return;
    const { command, args } = offer.command;
    expect(command).toBe('powershell.exe');
    expect(args.slice(0, 3)).toEqual(['-NoProfile', '-NonInteractive', '-Command']);
    const outer =
      /^\$p = Start-Process -FilePath 'powershell\.exe' -Verb RunAs -Wait -PassThru -WindowStyle Hidden -ArgumentList '-NoProfile','-NonInteractive','-EncodedCommand','([A-Za-z0-9+/=]+)'; exit \$p\.ExitCode$/.exec(
        args[3]!,
      );
    expect(outer).not.toBeNull();
    // What the elevated PowerShell runs: every path a verbatim string, its quotes doubled.
    expect(Buffer.from(outer![1]!, 'base64').toString('utf16le').split('\n')).toEqual([
      "$ErrorActionPreference = 'Stop'",
      "New-Item -ItemType Directory -Force -Path 'C:\\ProgramData\\RelayDesk' | Out-Null",
      "Copy-Item -Force -LiteralPath 'C:\\Users\\Ann O''Neil\\AppData\\Roaming\\RelayDesk\\config.json' -Destination 'C:\\ProgramData\\RelayDesk\\config.json'",
      "& 'C:\\Program Files\\RelayDesk\\O''Brien’’s\\RelayDesk.exe' '--cli' service install --data-dir 'C:\\ProgramData\\RelayDesk' --add-admin 'OFFICE\\ann o''neil' *>&1 | Out-File -Encoding utf8 -LiteralPath 'C:\\Users\\ANN~1\\AppData\\Local\\Temp\\relaydesk-service-install-7.log'",
      'exit $LASTEXITCODE',
    ]);
  });

  it('offers the packaged binary by its path, waited for, when the prompt is refused', () => {
    const offer = serviceOffer({
      platform: 'win32',
      appDataDir: 'C:\\Users\\ann\\AppData\\Roaming\\RelayDesk',
      cli: electronCli,
      adminUser: 'OFFICE\\ann',
      pkexec: false,
    });
    // A Command Prompt does not wait for a windowed program: `start /wait`, and no `relaydesk` on the PATH.
    expect(offer.kind === 'elevate' && offer.manual).toContain(
      `    start /wait "" "${electronCli.command}" --cli service install`,
    );
  });

  it('doubles every quote PowerShell reads as a single quote', () => {
    expect(powershellQuote("a'b‘c’d‚e‛f")).toBe("'a''b‘‘c’’d‚‚e‛‛f'");
  });
});

describe('macOS: osascript with administrator privileges', () => {
  it('runs the launchd steps as root, with the app as the command line, after copying the settings', () => {
    const offer = serviceOffer({
      platform: 'darwin',
      appDataDir: '/Users/ann/Library/Application Support/RelayDesk',
      cli: {
        command: '/Applications/RelayDesk.app/Contents/MacOS/RelayDesk',
        script: null,
      },
      adminUser: 'ann',
      pkexec: false,
    });
    expect(offer.kind).toBe('elevate');
    if (offer.kind !== 'elevate') return;
    expect(offer.command.command).toBe('/usr/bin/osascript');
    const [flag, source] = offer.command.args;
    expect(flag).toBe('-e');
    const literal = /^do shell script ("(?:[^"\\]|\\.)*") with administrator privileges$/.exec(source!);
    expect(literal).not.toBeNull();
    // AppleScript's string escapes undone: the shell script root runs.
    const script = JSON.parse(literal![1]!) as string;
    const lines = script.split('\n');
    expect(lines.slice(0, 2)).toEqual([
      "mkdir -p '/Library/Application Support/RelayDesk'",
      "cp '/Users/ann/Library/Application Support/RelayDesk/config.json' '/Library/Application Support/RelayDesk/config.json'",
    ]);
    expect(lines).toContain('sudo dseditgroup -o edit -a ann -t user relaydesk-admins');
    expect(lines).toContain(
      "/Applications/RelayDesk.app/Contents/MacOS/RelayDesk --cli service print --for launchd --config '/Library/Application Support/RelayDesk/config.json' --data-dir '/Library/Application Support/RelayDesk' | sudo tee /Library/LaunchDaemons/org.relaydesk.relay.plist >/dev/null",
    );
    expect(lines.at(-1)).toBe(
      'sudo launchctl bootstrap system /Library/LaunchDaemons/org.relaydesk.relay.plist',
    );
    expect(lines.some((line) => line.startsWith('#'))).toBe(false);
  });

  it('escapes backslashes, quotes and line breaks in the AppleScript string', () => {
    expect(appleScriptString('a "b" \\c\nd')).toBe('"a \\"b\\" \\\\c\\nd"');
  });
});

describe('Linux: pkexec, or the commands', () => {
  const cli: CliInvocation = {
    command: process.execPath,
    script: resolve(import.meta.dirname, '../../bin/relaydesk.js'),
  };

  it('hands pkexec a shell whose paths are positional parameters, never shell text', () => {
    const command = linuxElevatedInstall({
      cli: { command: '/opt/RelayDesk/relaydesk', script: null },
      appConfigPath: "/home/ann/.config/Relay Desk/it's.json",
      serviceDataDir: '/var/lib/relaydesk',
      adminUser: 'ann',
    });
    expect(command).toEqual({
      command: 'pkexec',
      args: [
        '/bin/sh',
        '-c',
        'set -e\ninstall -d -m 0700 -- "$1"\ninstall -m 0600 -- "$2" "$1/config.json"\n' +
          'data=$1 admin=$3\nshift 3\nexec "$@" service install --data-dir "$data" --add-admin "$admin"',
        'relaydesk-service-install',
        '/var/lib/relaydesk',
        "/home/ann/.config/Relay Desk/it's.json",
        'ann',
        // Chromium will not start as root with its sandbox on; the command line needs none.
        '/opt/RelayDesk/relaydesk',
        '--no-sandbox',
        '--cli',
      ],
    });
  });

  // What pkexec runs, run here as root: systemd is not running here, so install stops there, saying so.
  it.runIf(process.platform === 'linux' && process.getuid?.() === 0 && !existsSync('/run/systemd/system'))(
    'runs for real: the folder made private, the settings copied, install started with the exact arguments',
    async () => {
      const appDir = join(scratch, `app "dir" it's $HOME`);
      spawnSync('mkdir', ['-p', appDir]);
      const settings = JSON.stringify({ listen: { port: 2525 } });
      writeFileSync(join(appDir, 'config.json'), settings);
      const dataDir = join(scratch, 'service data $1 `x`');
      const command = linuxElevatedInstall({
        cli,
        appConfigPath: join(appDir, 'config.json'),
        serviceDataDir: dataDir,
        adminUser: 'ann',
      });
      const result = await runElevated({ command: command.args[0]!, args: command.args.slice(1) });
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      expect(readFileSync(join(dataDir, 'config.json'), 'utf8')).toBe(settings);
      expect(result).toEqual({
        code: 1,
        output:
          'systemd is not running on this machine, so there is no service to install. Run RelayDesk with ' +
          '`relaydesk serve` under the init system you have (docs/service.md).\n',
      });
    },
  );

  const annOnLinux = (app: CliInvocation | null, pkexec: boolean) =>
    serviceOffer({
      platform: 'linux',
      appDataDir: '/home/ann/.config/RelayDesk',
      cli: app,
      adminUser: 'ann',
      pkexec,
    });

  /** Runs the offer with recording stand-ins for the dialogs and the app's relay. */
  async function recordOffer(
    offer: ServiceOffer,
    overrides: Pick<ServiceOfferDeps, 'waitingMessages'> & Partial<ServiceOfferDeps>,
  ) {
    const asked: string[] = [];
    const steps: string[] = [];
    const run = overrides.run ?? (async () => ({ code: 0, output: '' }));
    const outcome = await runServiceOffer({
      offer,
      platform: 'linux',
      appDataDir: '/home/ann/.config/RelayDesk',
      ask: async (title, detail) => (asked.push(`${title}: ${detail}`), 0),
      stopRelay: async () => void steps.push('stop'),
      startRelay: async () => void steps.push('start'),
      relaunch: () => steps.push('relaunch'),
      ...overrides,
      run: (command) => (steps.push('run'), run(command)),
    });
    return { outcome, asked, steps };
  }

  it('shows the packaged app its own binary as the command to run where pkexec is missing', () => {
    const offer = annOnLinux({ command: '/opt/RelayDesk/relaydesk', script: null }, false);
    expect(offer.kind === 'show' && offer.text).toContain(
      'sudo /opt/RelayDesk/relaydesk --no-sandbox --cli service install',
    );
  });

  it('shows the packaged binary in the manual steps offered after a refused prompt', () => {
    const offer = annOnLinux({ command: '/opt/RelayDesk/relaydesk', script: null }, true);
    expect(offer.kind === 'elevate' && offer.manual).toContain(
      'sudo /opt/RelayDesk/relaydesk --no-sandbox --cli service install',
    );
  });

  it('says why an AppImage cannot be a service, rather than offering one', () => {
    const offer = annOnLinux(null, true);
    expect(offer).toEqual({
      kind: 'show',
      text: expect.stringContaining('an AppImage runs from a temporary mount'),
    });
  });

  it('shows the commands where pkexec is missing, and runs nothing', async () => {
    const offer = serviceOffer({
      platform: 'linux',
      appDataDir: '/home/ann/.config/RelayDesk',
      cli,
      adminUser: 'ann',
      pkexec: findPkexec({ PATH: join(scratch, 'no-pkexec-here') }) !== null,
    });
    expect(offer).toEqual({ kind: 'show', text: serviceOfferText('/home/ann/.config/RelayDesk', 'linux') });
    const asked: string[] = [];
    const steps: string[] = [];
    const deps: ServiceOfferDeps = {
      offer,
      platform: 'linux',
      appDataDir: '/home/ann/.config/RelayDesk',
      ask: async (_title, detail) => (asked.push(detail), 0),
      run: async () => (steps.push('run'), { code: 0, output: '' }),
      stopRelay: async () => void steps.push('stop'),
      startRelay: async () => void steps.push('start'),
      relaunch: () => steps.push('relaunch'),
      waitingMessages: () => 0,
    };
    expect(await runServiceOffer(deps)).toBe('shown');
    expect(asked).toEqual([serviceOfferText('/home/ann/.config/RelayDesk', 'linux')]);
    expect(asked[0]).toContain('sudo relaydesk service install');
    expect(steps).toEqual([]);
  });

  it('installs nothing while mail still waits in the app queue, and says why and what to do', async () => {
    const offer = annOnLinux(cli, true);
    expect(offer.kind).toBe('elevate');
    const { outcome, asked, steps } = await recordOffer(offer, { waitingMessages: () => 3 });
    expect(outcome).toBe('waiting');
    // The app's relay keeps running and sending them: nothing stopped, no prompt.
    expect(steps).toEqual([]);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toContain("Mail is still waiting here: 3 messages still wait in this app's queue.");
    expect(asked[0]).toContain('Retry queued mail now');
  });

  it('with pkexec: stops the app relay, runs the prompt; a refused prompt starts it again and shows the commands', async () => {
    // A pkexec whose prompt the user dismissed answers 126: a real process stands for it.
    const pkexecDir = join(scratch, 'bin');
    spawnSync('mkdir', ['-p', pkexecDir]);
    writeFileSync(join(pkexecDir, 'pkexec'), '#!/bin/sh\necho "Not authorized" >&2\nexit 126\n', {
      mode: 0o755,
    });
    const found = findPkexec({ PATH: `${join(scratch, 'none')}:${pkexecDir}` });
    expect(found).toBe(join(pkexecDir, 'pkexec'));
    const offer = annOnLinux(cli, true);
    if (offer.kind !== 'elevate') throw new Error('expected the prompt');
    const { outcome, asked, steps } = await recordOffer(offer, {
      run: (command) => runElevated({ ...command, command: found! }),
      waitingMessages: () => 0,
    });
    expect(outcome).toBe('failed');
    expect(steps).toEqual(['stop', 'run', 'start']);
    expect(asked[0]).toContain('you join the group "relaydesk-admins"');
    expect(asked[1]).toContain('The service was not installed: The install ended with exit status 126');
    expect(asked[1]).toContain('Not authorized');
    expect(asked[1]).toContain('sudo relaydesk service install');
  });
});
