/**
 * The desktop app when the relay runs as a service: a tray that shows the service and drives it over
 * the control channel (app/service-remote.ts) instead of a second relay; and the offer to run the
 * relay as a service, which installs it through the OS's administrator prompt (service/elevate.ts),
 * or, where there is none (Linux without pkexec), shows the commands.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { dialog } from 'electron';
import { createServiceRemote, serviceAnswers, type ServiceRemote } from '../app/service-remote.ts';
import { manualSteps } from '../service/launchd-steps.ts';
import { installingUser } from '../service/admin-group.ts';
import { DEFAULT_SERVICE_DATA_DIR, SERVICE_ADMIN_GROUP, type ServiceTarget } from '../service/definitions.ts';
import { cliWords, NO_SERVICE_PROGRAM } from '../service/invocation.ts';
import {
  linuxElevatedInstall,
  macElevatedInstall,
  shellQuote,
  windowsElevatedInstall,
  type CliInvocation,
  type ElevatedCommand,
} from '../service/elevate.ts';
import { createServiceTray, type TrayController } from './tray.ts';

function serviceTarget(platform: NodeJS.Platform): ServiceTarget {
  if (platform === 'win32') return 'windows';
  if (platform === 'darwin') return 'launchd';
  return 'systemd';
}

/** The data folders a service's relay may answer on: the system one, then the app's own. */
export function serviceDataDirs(appDataDir: string, platform: NodeJS.Platform = process.platform): string[] {
  return [...new Set([DEFAULT_SERVICE_DATA_DIR[serviceTarget(platform)], appDataDir])];
}

export interface ServiceTrayOptions {
  iconDir: string;
  dataDirs: string[];
  quit: () => void;
}

export interface RunningServiceTray {
  remote: ServiceRemote;
  tray: TrayController;
  stop(): void;
}

/** Starts the service's tray when a relay answers on one of `dataDirs`; null when none does. */
export async function startServiceTray(options: ServiceTrayOptions): Promise<RunningServiceTray | null> {
  for (const dataDir of options.dataDirs) {
    // A service whose channel refuses this account is still there: a relay started here would only
    // collide with it on port 25, so the tray shows it as it can.
    if ((await serviceAnswers(dataDir)) === 'absent') continue;
    const remote = createServiceRemote(dataDir);
    const tray = createServiceTray(
      options.iconDir,
      { retryNow: () => void remote.flush(), quit: options.quit },
      await remote.refresh(),
    );
    remote.events.on('status', (status) => tray.update(status));
    const unwatch = remote.watch();
    return {
      remote,
      tray,
      stop() {
        unwatch();
        tray.destroy();
      },
    };
  }
  return null;
}

/**
 * What "Run the relay as a service" says: the commands, and why they are not run from here.
 * `relaydesk`: the words that run this install's command line (the packaged app: its binary and --cli).
 */
export function serviceOfferText(
  appDataDir: string,
  platform: NodeJS.Platform = process.platform,
  relaydesk = 'relaydesk',
): string {
  const target = serviceTarget(platform);
  const serviceDir = DEFAULT_SERVICE_DATA_DIR[target];
  const steps =
    platform === 'win32'
      ? [
          'In a Command Prompt opened with "Run as administrator", after quitting RelayDesk:',
          `    mkdir "${serviceDir}"`,
          `    copy "${appDataDir}\\config.json" "${serviceDir}"`,
          `    ${relaydesk} service install`,
        ]
      : [
          platform === 'darwin'
            ? 'In Terminal, after quitting RelayDesk:'
            : 'In a terminal, after quitting RelayDesk:',
          `    sudo mkdir -p '${serviceDir}'`,
          `    sudo cp '${appDataDir}/config.json' '${serviceDir}/'`,
          `    sudo ${relaydesk} service install`,
        ];
  return [
    'As a service the relay starts with the computer and works before anyone signs in (after Windows ' +
      'Update restarts it at night, say). Installing a service needs an administrator.',
    '',
    ...steps,
    '',
    'The service has no keychain: give it the upstream password as docs/service.md says ("Where the ' +
      'upstream password goes"). Start RelayDesk again afterwards: its tray then shows the service ' +
      'instead of running a second relay.',
  ].join('\n');
}

/** pkexec on the PATH: polkit's prompt for running one command as root. */
export function findPkexec(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, 'pkexec'), constants.X_OK);
      return join(dir, 'pkexec');
    } catch {
      // Not in this folder.
    }
  }
  return null;
}

export type ServiceOffer =
  | {
      kind: 'elevate';
      command: ElevatedCommand;
      logPath: string | null;
      /** The commands to run by hand, shown when the prompt was refused or the install failed. */
      manual: string;
    }
  | { kind: 'show'; text: string };

/**
 * The words that run this install's command line in the manual steps: `relaydesk` where Node runs it
 * (npm puts it on the PATH); the packaged app's own binary with --cli, which is on no PATH (a
 * Command Prompt would not wait for a windowed program without `start /wait`).
 */
function manualWords(cli: CliInvocation, platform: NodeJS.Platform): string {
  if (cli.script !== null) return 'relaydesk';
  if (platform === 'win32')
    return `start /wait "" "${cli.command}" ${cliWords(cli, false).slice(1).join(' ')}`;
  return cliWords(cli, platform === 'linux')
    .map(shellQuote)
    .join(' ');
}

export interface ServiceOfferInput {
  platform: NodeJS.Platform;
  appDataDir: string;
  /** Null from an unpackaged `electron .`: no program of its own to elevate, so the commands are shown. */
  cli: CliInvocation | null;
  /** The signed-in user, who joins the admin group (the prompt may elevate to another account). */
  adminUser: string;
  pkexec: boolean;
  /** Windows: where the elevated install leaves its output. */
  logPath?: string;
}

/** What the offer does on this OS: the install behind the administrator prompt, or the commands to run. */
export function serviceOffer(input: ServiceOfferInput): ServiceOffer {
  const target = serviceTarget(input.platform);
  const cli = input.cli;
  if (cli === null) return { kind: 'show', text: NO_SERVICE_PROGRAM };
  const serviceDataDir = DEFAULT_SERVICE_DATA_DIR[target];
  const separator = input.platform === 'win32' ? '\\' : '/';
  const manual = serviceOfferText(input.appDataDir, input.platform, manualWords(cli, input.platform));
  const request = {
    cli,
    appConfigPath: `${input.appDataDir}${separator}config.json`,
    serviceDataDir,
    adminUser: input.adminUser,
    ...(input.logPath ? { logPath: input.logPath } : {}),
  };
  if (input.platform === 'win32') {
    return {
      kind: 'elevate',
      command: windowsElevatedInstall(request),
      logPath: input.logPath ?? null,
      manual,
    };
  }
  if (input.platform === 'darwin') {
    const relaydesk = cliWords(cli, false).map(shellQuote).join(' ');
    const spec = {
      nodePath: cli.command,
      cliPath: cli.script,
      configPath: `${serviceDataDir}/config.json`,
      dataDir: serviceDataDir,
      port: 25,
    };
    const steps = manualSteps('install', spec, input.adminUser, relaydesk);
    return { kind: 'elevate', command: macElevatedInstall(request, steps), logPath: null, manual };
  }
  if (input.pkexec) return { kind: 'elevate', command: linuxElevatedInstall(request), logPath: null, manual };
  return { kind: 'show', text: manual };
}

export interface ServiceOfferDeps {
  offer: ServiceOffer;
  platform: NodeJS.Platform;
  appDataDir: string;
  /** A question in a dialog: the index of the button chosen. */
  ask(title: string, detail: string, buttons: string[]): Promise<number>;
  /** Runs the elevated command to its end. */
  run(command: ElevatedCommand): Promise<{ code: number | null; output: string }>;
  /** The app's own relay: stopped so that the service can take the port, started again if it fails. */
  stopRelay(): Promise<void>;
  startRelay(): Promise<void>;
  /** Starts the app again: it then finds the service and shows it in the tray. */
  relaunch(): void;
  /** Messages still waiting in the app's own queue (queued, being sent, deferred or held). */
  waitingMessages(): number;
}

const OFFER_TITLE = 'Run the relay as a service (works before anyone signs in)';

/** The offer from the tray: asks, installs behind the OS's prompt, and says how it went. */
export async function runServiceOffer(
  deps: ServiceOfferDeps,
): Promise<'shown' | 'cancelled' | 'installed' | 'failed' | 'waiting'> {
  const { offer } = deps;
  if (offer.kind === 'show') {
    await deps.ask(OFFER_TITLE, offer.text, ['OK']);
    return 'shown';
  }
  // The service keeps a queue of its own in its own folder, and the app stops relaying once the
  // service runs: mail still waiting here would stay here, acknowledged to its device and never sent.
  const waiting = deps.waitingMessages();
  if (waiting > 0) {
    await deps.ask(
      'Mail is still waiting here',
      `${waiting} message${waiting === 1 ? '' : 's'} still wait${waiting === 1 ? 's' : ''} in this app's queue. ` +
        'The service has a queue of its own and would not send them. Let them go out first (Status: ' +
        '"Retry queued mail now", or fix what holds them), or delete them, then choose "Run the relay as a ' +
        'service" again.',
      ['OK'],
    );
    return 'waiting';
  }
  const group = SERVICE_ADMIN_GROUP[serviceTarget(deps.platform)];
  const choice = await deps.ask(
    OFFER_TITLE,
    'As a service the relay starts with the computer and works before anyone signs in (after Windows Update ' +
      'restarts it at night, say). Installing it asks for an administrator: your settings are copied to the ' +
      `service, and you join the group "${group}", whose members see and drive the service from the tray. ` +
      'The relay here stops meanwhile; RelayDesk then starts again beside the service.',
    ['Install the service', 'Cancel'],
  );
  if (choice !== 0) return 'cancelled';
  await deps.stopRelay();
  const result = await deps.run(offer.command);
  if (result.code === 0) {
    await deps.ask(
      'The RelayDesk service is installed',
      'The service relays from now on, also before anyone signs in. The service has no keychain: give it the ' +
        'upstream password as docs/service.md says ("Where the upstream password goes"). RelayDesk starts ' +
        `again now and shows the service in its tray (membership of "${group}" counts from your next sign-in).`,
      ['OK'],
    );
    deps.relaunch();
    return 'installed';
  }
  await deps.startRelay();
  const said = result.output.trim().split('\n').slice(-6).join('\n');
  await deps.ask(
    'The service was not installed',
    `The install ended with exit status ${result.code ?? 'unknown'} (cancelled at the prompt, or it failed)` +
      `${said ? `:\n${said}` : '.'}\n\n${offer.manual}`,
    ['OK'],
  );
  return 'failed';
}

/** Runs a command, its output and exit status; a command that cannot start is exit status null. */
export function runElevated(command: ElevatedCommand): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command.command, command.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => resolve({ code: null, output: `${command.command}: ${error.message}` }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

export interface OfferHooks {
  cli: CliInvocation | null;
  stopRelay(): Promise<void>;
  startRelay(): Promise<void>;
  relaunch(): void;
  waitingMessages(): number;
}

export async function offerService(appDataDir: string, hooks: OfferHooks): Promise<void> {
  const platform = process.platform;
  const logPath =
    platform === 'win32' ? join(tmpdir(), `relaydesk-service-install-${process.pid}.log`) : undefined;
  const offer = serviceOffer({
    platform,
    appDataDir,
    cli: hooks.cli,
    adminUser: installingUser(process.env) ?? '',
    pkexec: findPkexec() !== null,
    ...(logPath ? { logPath } : {}),
  });
  await runServiceOffer({
    offer,
    platform,
    appDataDir,
    ask: async (message, detail, buttons) =>
      (await dialog.showMessageBox({ type: 'info', title: OFFER_TITLE, message, detail, buttons })).response,
    async run(command) {
      const result = await runElevated(command);
      if (!logPath) return result;
      // The elevated PowerShell's own output went to the log: it had no console here.
      let logged = '';
      try {
        logged = readFileSync(logPath, 'utf8');
        rmSync(logPath, { force: true });
      } catch {
        // Nothing logged: cancelled at the prompt.
      }
      return { code: result.code, output: `${result.output}${logged}` };
    },
    stopRelay: hooks.stopRelay,
    startRelay: hooks.startRelay,
    relaunch: hooks.relaunch,
    waitingMessages: hooks.waitingMessages,
  });
}
