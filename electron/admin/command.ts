/**
 * `relaydesk serve --admin HOST:PORT`: the relay plus the desktop app's window in a browser, for
 * headless installs. Unlike plain `serve`, a missing config is not an error: the window's setup
 * wizard writes it.
 */
import { access } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHandlers } from '../app/handlers.ts';
import { createRelayService } from '../app/service.ts';
import { configPathFrom, dataDirFrom, waitForStopSignal, type CliIo } from '../cli/context.ts';
import { AlreadyRunningError } from '../relay/control.ts';
import { createLogger } from '../relay/log.ts';
import { createKeychainStore } from '../secrets/index.ts';
import { appSnapshot, createHealthEndpoint } from './health-endpoint.ts';
import { startAdminServer } from './server.ts';
import { readOrCreateToken } from './token.ts';

export interface AdminServeFlags {
  config?: string;
  'data-dir'?: string;
  admin: string;
}

export const RENDERER_DIR = fileURLToPath(new URL('../../renderer/dist/', import.meta.url));

/** `127.0.0.1:8025`, `[::1]:8025`, `8025` (loopback). Null when it is neither. */
export function parseAdminAddress(value: string): { host: string; port: number } | null {
  const match = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(value.trim());
  if (!match) return null;
  const host = match[1] ?? match[2] ?? '127.0.0.1';
  const port = Number(match[3]);
  if (port > 65535 || (host !== 'localhost' && isIP(host) === 0)) return null;
  return { host, port };
}

export async function serveAdminCommand(flags: AdminServeFlags, io: CliIo): Promise<number> {
  const address = parseAdminAddress(flags.admin);
  if (!address) {
    io.stderr.write(
      `--admin takes HOST:PORT with HOST an IP address, such as 127.0.0.1:8025 (got "${flags.admin}").\n`,
    );
    return 64;
  }
  try {
    await access(join(RENDERER_DIR, 'index.html'));
  } catch {
    io.stderr.write(
      'The RelayDesk window is not built yet: run `npm run build:renderer`, then start again.\n',
    );
    return 1;
  }
  const dataDir = dataDirFrom(flags['data-dir'], io.env);
  const configPath = configPathFrom(flags.config, dataDir);
  const logger = createLogger({
    dir: join(dataDir, 'logs'),
    console: true,
    level: io.env.RELAYDESK_LOG_LEVEL === 'debug' ? 'debug' : 'info',
  });
  const service = createRelayService({
    dataDir,
    configPath,
    secrets: createKeychainStore(),
    logger,
    env: io.env,
  });
  try {
    await service.start();
  } catch (error) {
    if (!(error instanceof AlreadyRunningError)) throw error;
    io.stderr.write(`${error.message}\n`);
    await logger.close();
    return 1;
  }

  const token = await readOrCreateToken(dataDir);
  let admin;
  try {
    admin = await startAdminServer({
      ...address,
      token,
      rendererDir: RENDERER_DIR,
      handlers: createHandlers({
        service,
        reportRendererError: (message, stack) => logger.error('window-error', { message, stack }),
      }),
      events: service.events,
      logger,
      health: createHealthEndpoint(() => appSnapshot(service)),
    });
  } catch (error) {
    io.stderr.write(`Cannot open the admin page on ${flags.admin}: ${(error as Error).message}\n`);
    await service.stop();
    await logger.close();
    return 1;
  }

  const status = service.status();
  const lines = [`RelayDesk: ${status.summary}.`];
  if (!['127.0.0.1', '::1', 'localhost'].includes(address.host)) {
    lines.push(
      `Warning: the admin page listens on ${address.host}, not loopback: anyone who can reach it and learns the ` +
        'token controls the relay, and plain HTTP shows the token to the network.',
    );
  }
  lines.push(
    `Admin page: ${admin.url}#token=${token}`,
    `(The token is kept in ${join(dataDir, 'admin-token')}. Data folder: ${dataDir}. Press Ctrl+C to stop.)`,
  );
  io.stderr.write(`${lines.join('\n')}\n`);

  await waitForStopSignal();
  await admin.close();
  await service.stop();
  await logger.close();
  return 0;
}
