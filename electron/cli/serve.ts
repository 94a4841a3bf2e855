/**
 * `relaydesk serve`: the relay in the foreground until it is asked to stop (SIGTERM, Ctrl+C,
 * Ctrl+Break, the console closed: context.ts). Then it stops accepting (new connections and new
 * transactions get 421), lets what is in flight finish, exits 0.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { serveAdminCommand } from '../admin/command.ts';
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
}

export async function serveCommand(flags: ServeFlags, io: CliIo): Promise<number> {
  if (flags.admin !== undefined) return serveAdminCommand({ ...flags, admin: flags.admin }, io);
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

  const status = relay.status();
  io.stderr.write(
    `RelayDesk is relaying from ${status.listeners.map((l) => `${l.host}:${l.port}`).join(', ')} to ${status.upstream.description}.\n` +
      `Allowed devices: ${config.allowedClients.join(', ')}. Data folder: ${dataDir}. Press Ctrl+C to stop.\n` +
      (folderWarning ? `Warning: ${folderWarning}\n` : ''),
  );

  await stopSignal;
  await relay.stop();
  await control.close();
  await logger.close();
  return 0;
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
