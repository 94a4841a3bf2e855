/**
 * `relaydesk serve`: the relay in the foreground until SIGINT/SIGTERM. On a signal it stops
 * accepting (new connections and new transactions get 421), lets what is in flight finish, exits 0.
 */
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
  configPathFrom,
  dataDirFrom,
  EXIT_CONFIG,
  loadConfigOrReport,
  waitForStopSignal,
  type CliIo,
} from './context.ts';

export interface ServeFlags {
  config?: string;
  'data-dir'?: string;
  /** HOST:PORT: also serve the window and its API to a browser (electron/admin). */
  admin?: string;
  /** HOST:PORT: /healthz and /metrics for monitoring tools, on a listener of their own. */
  health?: string;
}

export async function serveCommand(flags: ServeFlags, io: CliIo): Promise<number> {
  if (flags.admin !== undefined) return serveAdminCommand({ ...flags, admin: flags.admin }, io);
  const healthAddress = flags.health === undefined ? null : parseAdminAddress(flags.health);
  if (flags.health !== undefined && !healthAddress) {
    io.stderr.write(
      `--health takes HOST:PORT with HOST an IP address, such as 127.0.0.1:9325 (got "${flags.health}").\n`,
    );
    return 64;
  }
  const dataDir = dataDirFrom(flags['data-dir'], io.env);
  const configPath = configPathFrom(flags.config, dataDir);
  const config = await loadConfigOrReport(configPath, io);
  if (!config) return EXIT_CONFIG;

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
      io.stderr.write(`${error.message}\n`);
      logger.error('start-failed', { reason: error.message });
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
