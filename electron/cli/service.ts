/**
 * `relaydesk service print | install | uninstall | status`: run the relay from boot, with nobody
 * signed in. `print` shows the definition for this OS (or `--for` another). `install` does the
 * whole job for systemd (one file and two systemctl calls) and Windows (WinSW from node-windows,
 * service/windows.ts); for launchd it prints the exact commands an administrator runs, and says
 * that it installed nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, posix, win32 } from 'node:path';
import { loadConfigFile } from '../config/index.ts';
import { controlGroupDir } from '../relay/control.ts';
import { ensureLinuxAdminGroup, installingUser } from '../service/admin-group.ts';
import { shellQuote as shellWord } from '../service/elevate.ts';
import { NO_SERVICE_PROGRAM, thisCli, type CliInvocation } from '../service/invocation.ts';
import { manualSteps } from '../service/launchd-steps.ts';
import {
  DEFAULT_SERVICE_DATA_DIR,
  SERVICE_ADMIN_GROUP,
  SERVICE_CONTROL_DIR,
  SERVICE_TARGETS,
  serviceDefinition,
  ServicePathError,
  SYSTEMD_ENV_FILE,
  SYSTEMD_STATE_DIR,
  SYSTEMD_UNIT_PATH,
  WINDOWS_SERVICE_ACCOUNT,
  type ServiceSpec,
  type ServiceTarget,
} from '../service/definitions.ts';
import {
  isElevated,
  runWindowsPlan,
  shippedWinsw,
  windowsServiceDir,
  windowsServicePlan,
} from '../service/windows.ts';
import type { CliIo } from './context.ts';

export interface ServiceFlags {
  config?: string;
  'data-dir'?: string;
  for?: string;
  /** Who install puts in the admin group; default: the user who ran sudo, pkexec, or the elevated prompt. */
  'add-admin'?: string;
}

const USAGE =
  'Usage: relaydesk service print|install|uninstall|status [--config FILE] [--data-dir DIR]\n' +
  '                         [--for windows|systemd|launchd]   (print only; default: this OS)\n' +
  '                         [--add-admin USER]   (install: who may drive the service; default: you)\n';

/** Exit status when the command did not do the job itself and printed what the admin runs. */
const EXIT_NOT_DONE = 3;
/** The listener's default port, used when no config can be read yet. */
const DEFAULT_PORT = 25;

export async function serviceCommand(args: string[], flags: ServiceFlags, io: CliIo): Promise<number> {
  const [action, ...extra] = args;
  const actions = ['print', 'install', 'uninstall', 'status'];
  if (action === undefined || !actions.includes(action) || extra.length > 0) {
    io.stderr.write(USAGE);
    return 64;
  }
  const hostTarget = targetOf(process.platform);
  if (flags.for !== undefined && !SERVICE_TARGETS.includes(flags.for as ServiceTarget)) {
    io.stderr.write(`--for is one of ${SERVICE_TARGETS.join(', ')} (got "${flags.for}").\n`);
    return 64;
  }
  if (flags.for !== undefined && action !== 'print' && flags.for !== hostTarget) {
    io.stderr.write(`--for goes with print only: ${action} acts on this machine (${hostTarget}).\n`);
    return 64;
  }
  const target = (flags.for as ServiceTarget | undefined) ?? hostTarget;
  const cli = thisCli();
  if (cli === null) {
    io.stderr.write(`${NO_SERVICE_PROGRAM}\n`);
    return 64;
  }
  const spec = await specFor(target, hostTarget, flags, cli);

  let definition: string;
  try {
    definition = serviceDefinition(target, spec);
  } catch (error) {
    if (!(error instanceof ServicePathError)) throw error;
    io.stderr.write(`Cannot write a ${target} service definition: ${error.message}\n`);
    return 64;
  }
  if (action === 'print') {
    if (target !== hostTarget) {
      io.stderr.write(
        `The paths below are this machine's (${hostTarget}): on the ${target} machine, run ` +
          '`relaydesk service print` there, or change them.\n',
      );
    }
    io.stdout.write(definition);
    return 0;
  }
  const adminUser = flags['add-admin'] || installingUser(io.env);
  if (target === 'systemd') return systemd(action, definition, spec, adminUser, io);
  if (target === 'windows')
    return windows(action as 'install' | 'uninstall' | 'status', definition, spec, adminUser, io);
  io.stdout.write(manualSteps(action, spec, adminUser));
  io.stderr.write(
    `RelayDesk did not ${action} anything itself: run the commands above as an administrator.\n`,
  );
  return EXIT_NOT_DONE;
}

function targetOf(platform: NodeJS.Platform): ServiceTarget {
  if (platform === 'win32') return 'windows';
  if (platform === 'darwin') return 'launchd';
  return 'systemd';
}

/** What the service runs: node and bin/relaydesk.js, or (inside the packaged app) the app's binary with --cli. */
export async function specFor(
  target: ServiceTarget,
  hostTarget: ServiceTarget,
  flags: ServiceFlags,
  cli: CliInvocation,
): Promise<ServiceSpec> {
  // A Windows path printed on Linux (or the reverse) is resolved by that OS's rules.
  const paths = target === 'windows' ? win32 : posix;
  const dataDir = paths.resolve(flags['data-dir'] ?? DEFAULT_SERVICE_DATA_DIR[target]);
  const configPath = paths.resolve(flags.config ?? paths.join(dataDir, 'config.json'));
  let port = DEFAULT_PORT;
  if (target === hostTarget) {
    const loaded = await loadConfigFile(configPath).catch(() => null);
    if (loaded?.exists && loaded.problems.length === 0) port = loaded.config.listen.port;
  }
  return { nodePath: cli.command, cliPath: cli.script, configPath, dataDir, port };
}

// ---- systemd: done here -------------------------------------------------------------------

async function systemd(
  action: string,
  definition: string,
  spec: ServiceSpec,
  adminUser: string | null,
  io: CliIo,
): Promise<number> {
  // sd_booted(3): this folder exists only when systemd is the running init.
  if (!existsSync('/run/systemd/system')) {
    io.stderr.write(
      `systemd is not running on this machine, so there is no service to ${action}. ` +
        'Run RelayDesk with `relaydesk serve` under the init system you have (docs/service.md).\n',
    );
    return 1;
  }
  if (action === 'status') return systemctl(io, 'status', '--no-pager', 'relaydesk.service');
  if (process.getuid?.() !== 0) {
    io.stderr.write(`Installing a system service needs root: run \`sudo relaydesk service ${action}\`.\n`);
    return 1;
  }
  if (action === 'uninstall') {
    if (existsSync(SYSTEMD_UNIT_PATH)) {
      const stopped = systemctl(io, 'disable', '--now', 'relaydesk.service');
      if (stopped !== 0) return stopped;
    }
    await rm(SYSTEMD_UNIT_PATH, { force: true });
    const reloaded = systemctl(io, 'daemon-reload');
    if (reloaded !== 0) return reloaded;
    io.stdout.write(
      `Removed ${SYSTEMD_UNIT_PATH}. The data folder ${spec.dataDir}, ${SYSTEMD_ENV_FILE} and the group ` +
        `${SERVICE_ADMIN_GROUP.systemd} are kept (\`groupdel ${SERVICE_ADMIN_GROUP.systemd}\` removes it).\n`,
    );
    return 0;
  }
  const ownsStateDir = spec.dataDir === SYSTEMD_STATE_DIR || spec.dataDir.startsWith(`${SYSTEMD_STATE_DIR}/`);
  if (!ownsStateDir && spawnSync('id', ['-u', 'relaydesk']).status !== 0) {
    io.stderr.write(
      `A data folder outside ${SYSTEMD_STATE_DIR} runs under a "relaydesk" account, which does not exist. Create it:\n` +
        `  useradd --system --shell /usr/sbin/nologin relaydesk\n` +
        `  mkdir -p ${shellWord(spec.dataDir)} && chown -R relaydesk: ${shellWord(spec.dataDir)} && chmod 700 ${shellWord(spec.dataDir)}\n` +
        'then run `relaydesk service install` again.\n',
    );
    return 1;
  }
  // /root is 0700: the service's account could not even start node or read RelayDesk there.
  const inRoot = [spec.nodePath, spec.cliPath ?? '', spec.configPath, spec.dataDir].find((path) =>
    path.startsWith('/root/'),
  );
  if (inRoot !== undefined) {
    io.stderr.write(
      `${inRoot} is under /root, which the service's account cannot read. Install Node.js and RelayDesk ` +
        'system-wide (for example under /usr/local or /opt) and keep the data outside /root.\n',
    );
    return 1;
  }
  // Before the unit: systemd refuses to start a service whose SupplementaryGroups= do not exist.
  const group = ensureLinuxAdminGroup(SERVICE_ADMIN_GROUP.systemd, adminUser);
  if (group.error !== null) {
    io.stderr.write(`${group.error}\n`);
    return 1;
  }
  await mkdir(dirname(SYSTEMD_UNIT_PATH), { recursive: true });
  await writeFile(SYSTEMD_UNIT_PATH, definition, { mode: 0o644 });
  const reloaded = systemctl(io, 'daemon-reload');
  if (reloaded !== 0) return reloaded;
  const started = systemctl(io, 'enable', '--now', 'relaydesk.service');
  if (started !== 0) return started;
  io.stdout.write(
    `Wrote ${SYSTEMD_UNIT_PATH}; relaydesk.service is enabled and started.\n` +
      `Put the upstream password in ${SYSTEMD_ENV_FILE} (RELAYDESK_UPSTREAM_PASSWORD=..., owner root, mode 0600),\n` +
      'then `systemctl restart relaydesk`. Logs: `journalctl -u relaydesk`.\n' +
      `Members of ${SERVICE_ADMIN_GROUP.systemd} may see and drive it (\`relaydesk status --data-dir ${shellWord(spec.dataDir)}\`,\n` +
      `\`relaydesk queue ...\`, the desktop app's tray) through ${SERVICE_CONTROL_DIR.systemd}:\n` +
      group.lines.map((line) => `  ${line}\n`).join(''),
  );
  return 0;
}

// ---- Windows: done here, with WinSW --------------------------------------------------------

async function windows(
  action: 'install' | 'uninstall' | 'status',
  definition: string,
  spec: ServiceSpec,
  adminUser: string | null,
  io: CliIo,
): Promise<number> {
  if (action !== 'status' && !isElevated()) {
    io.stderr.write(
      `Installing a Windows service needs administrator rights: run \`relaydesk service ${action}\` in a ` +
        'Command Prompt opened with "Run as administrator".\n',
    );
    return 1;
  }
  const serviceDir = windowsServiceDir(io.env);
  const steps = windowsServicePlan({
    action,
    xml: definition,
    dataDir: spec.dataDir,
    serviceDir,
    winsw: shippedWinsw(),
    controlDir: controlGroupDir(io.env, 'win32'),
    adminUser,
  });
  const status = await runWindowsPlan(steps, io.stdout, io.stderr);
  if (status !== 0 || action === 'status') return status;
  io.stdout.write(
    action === 'install'
      ? `The RelayDesk service is installed and started: it runs as ${WINDOWS_SERVICE_ACCOUNT} from ${serviceDir},\n` +
          `starts with Windows and restarts when it stops unexpectedly. Data and logs: ${spec.dataDir}.\n` +
          'Give it the upstream password as docs/service.md says ("Where the upstream password goes").\n' +
          `Members of the local group "${SERVICE_ADMIN_GROUP.windows}" may see and drive it (relaydesk status, queue, the tray)` +
          (adminUser ? `; ${adminUser} is one, from the next sign-in.\n` : '.\n') +
          `Add another: net localgroup "${SERVICE_ADMIN_GROUP.windows}" NAME /add (elevated), then NAME signs out and in.\n`
      : `The RelayDesk service is removed. The data folder ${spec.dataDir} and the group ` +
          `"${SERVICE_ADMIN_GROUP.windows}" are kept.\n`,
  );
  return 0;
}

function systemctl(io: CliIo, ...args: string[]): number {
  const result = spawnSync('systemctl', args, { encoding: 'utf8' });
  if (result.error) {
    io.stderr.write(`systemctl ${args.join(' ')} could not run: ${result.error.message}\n`);
    return 1;
  }
  io.stdout.write(result.stdout);
  io.stderr.write(result.stderr);
  return result.status ?? 1;
}
