/**
 * `relaydesk serve`: the relay in the foreground until it is asked to stop (SIGTERM, Ctrl+C,
 * Ctrl+Break, the console closed: context.ts). Then it stops accepting (new connections and new
 * transactions get 421), lets what is in flight finish, exits 0.
 */
import { access } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseAdminAddress, serveAdminCommand } from '../admin/command.ts';
import {
  createHealthEndpoint,
  relaySnapshot,
  startHealthServer,
  type HealthServer,
} from '../admin/health-endpoint.ts';
import { createKeychainStore } from '../secrets/index.ts';
import { AlreadyRunningError, claimControl, type ControlServer } from '../relay/control.ts';
import { describeDataFolder } from '../relay/data-folder.ts';
import { ListenError } from '../relay/lan/listener.ts';
import { createLogger } from '../relay/log.ts';
import { createRelay } from '../relay/relay.ts';
import {
  configLocation,
  EXIT_CONFIG,
  loadCommandConfig,
  waitForStopSignal,
  type CliIo,
  type ConfigFlags,
} from './context.ts';

export interface ServeFlags extends ConfigFlags {
  /** HOST:PORT: also serve the window and its API to a browser (electron/admin). */
  admin?: string;
  /** HOST:PORT: /healthz and /metrics for monitoring tools, on a listener of their own. */
  health?: string;
}

/** Where a first run without a config serves the setup window (loopback; another port if taken). */
export const SETUP_ADDRESS = '127.0.0.1:8025';

export async function serveCommand(flags: ServeFlags, io: CliIo): Promise<number> {
  if (flags.admin !== undefined) return serveAdminCommand({ ...flags, admin: flags.admin }, io);
  // First run: no config yet. Rather than stop with an error, serve the setup window; the relay
  // starts from what the wizard writes, without a restart.
  if (!(await fileExists(configLocation(flags, io.env).configPath))) {
    return serveAdminCommand({ ...flags, admin: SETUP_ADDRESS, setup: true }, io);
  }
  const healthAddress = flags.health === undefined ? null : parseAdminAddress(flags.health);
  if (flags.health !== undefined && !healthAddress) {
    io.stderr.write(
      `--health takes HOST:PORT with HOST an IP address, such as 127.0.0.1:9325 (got "${flags.health}").\n`,
    );
    return 64;
  }
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config, dataDir } = loaded;

  // The data folder is claimed before anything reads or cleans it: a second relay on the same
  // folder would otherwise discard the first one's half-received messages.
  let control: ControlServer;
  try {
    control = await claimControl(dataDir);
  } catch (error) {
    if (!(error instanceof AlreadyRunningError)) throw error;
    io.stderr.write(`${error.message}\n`);
    return 1;
  }
  const folderWarning = describeDataFolder(control.folder);
  // Listening from here on: a stop asked for while the spool loads still drains, once started.
  const stopSignal = waitForStopSignal();

  const logger = createLogger({
    dir: join(dataDir, 'logs'),
    console: true,
    level: io.env.RELAYDESK_LOG_LEVEL === 'debug' ? 'debug' : 'info',
  });
  if (folderWarning) logger.warn('data-folder', { dir: dataDir, warning: folderWarning });
  const relay = createRelay({ config, dataDir, secrets: createKeychainStore(), logger, env: io.env });

  try {
    await relay.start();
    control.attach(relay);
  } catch (error) {
    if (error instanceof ListenError) {
      const reason =
        error.code === 'EADDRINUSE' && (await greetsAsRelayDesk(error.host, error.port))
          ? `Port ${error.port} on ${error.host} is already in use by another RelayDesk, one started with another ` +
            'data folder (`relaydesk status --data-dir THAT-FOLDER` shows it). Stop that one, or set "listen.port" ' +
            'to a free port (for example 2525) and point the devices at it.'
          : error.message;
      io.stderr.write(`${reason}\n`);
      logger.error('start-failed', { reason });
      await relay.stop(0).catch(() => undefined);
      await control.close();
      await logger.close();
      return 1;
    }
    throw error;
  }

  let health: HealthServer | null = null;
  if (healthAddress) {
    try {
      health = await startHealthServer(
        healthAddress.host,
        healthAddress.port,
        createHealthEndpoint(() => relaySnapshot(relay)),
      );
    } catch (error) {
      io.stderr.write(`Cannot open the health endpoint on ${flags.health}: ${(error as Error).message}\n`);
      await relay.stop(0).catch(() => undefined);
      await control.close();
      await logger.close();
      return 1;
    }
  }

  const status = relay.status();
  io.stderr.write(
    `RelayDesk is relaying from ${status.listeners.map((l) => `${l.host}:${l.port}`).join(', ')} to ${status.upstream.description}.\n` +
      `Allowed devices: ${config.allowedClients.join(', ')}. Data folder: ${dataDir}. Press Ctrl+C to stop.\n` +
      (folderWarning ? `Warning: ${folderWarning}\n` : '') +
      (health ? `Health: ${health.url}/healthz, metrics: ${health.url}/metrics\n` : ''),
  );

  await stopSignal;
  await relay.stop();
  await health?.close();
  await control.close();
  await logger.close();
  return 0;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether what holds the port is a RelayDesk: its SMTP greeting says so. */
function greetsAsRelayDesk(host: string, port: number): Promise<boolean> {
  const loopback = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return new Promise((resolve) => {
    let greeting = '';
    const socket = connect({ host: loopback, port });
    const done = (isRelayDesk: boolean) => {
      socket.destroy();
      resolve(isRelayDesk);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      greeting += chunk.toString('latin1');
      if (greeting.includes('\n')) done(/^220 \S+ ESMTP RelayDesk\b/.test(greeting));
    });
  });
}
