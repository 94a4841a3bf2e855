/**
 * A LAN listener: accepts connections, enforces the per-client and total connection caps, and
 * hands each connection to a LanSession. During shutdown it keeps accepting just long enough to
 * answer 421, so devices see "try again later" rather than a refused connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { normalizeIp } from '../access.ts';
import { LanSession, watchHandshake, type SessionHost } from './session.ts';

export interface ListenerOptions {
  host: string;
  port: number;
  /** `implicit`: TLS from the first byte (port 465 style); STARTTLS is the session host's `startTls`. */
  tls: 'none' | 'starttls' | 'implicit';
  /** Required for `implicit`. */
  secureContext: SecureContext | null;
  maxConnectionsPerClient: number;
  maxConnections: number;
}

export interface LanListener {
  readonly address: string;
  readonly port: number;
  readonly connections: number;
  /** Answers new connections with 421 and closes idle sessions; resolves when all sessions ended. */
  drain(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Why a port could not be bound, in words an admin can act on. */
export class ListenError extends Error {
  constructor(
    readonly code: string,
    readonly host: string,
    readonly port: number,
    cause: Error,
  ) {
    super(listenErrorMessage(code, host, port, cause.message));
    this.name = 'ListenError';
  }
}

function listenErrorMessage(code: string, host: string, port: number, detail: string): string {
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `Port ${port} on ${host} is already in use by another program (often another mail server such as IIS SMTP, hMailServer or Postfix). Stop that program, or set "listen.port" to a free port (for example 2525) and point the devices at it.`;
    case 'EACCES':
    case 'EPERM':
      return port < 1024
        ? `Not allowed to listen on ${where}: ports below 1024 need administrator rights on this system. Run RelayDesk as a service with the right to bind low ports (Linux: setcap 'cap_net_bind_service=+ep' on node, or systemd's AmbientCapabilities=CAP_NET_BIND_SERVICE), or set "listen.port" to 2525.`
        : `Not allowed to listen on ${where} (${detail}).`;
    case 'EADDRNOTAVAIL':
      return `${host} is not an address of this computer. Set "listen.host" to one of its addresses, or 0.0.0.0 for all.`;
    default:
      return `Cannot listen on ${where}: ${detail}`;
  }
}

export async function startListener(options: ListenerOptions, host: SessionHost): Promise<LanListener> {
  const { secureContext } = options;
  if (options.tls === 'implicit' && !secureContext) {
    throw new Error(`The implicit-TLS listener ${options.host}:${options.port} needs a certificate`);
  }
  const sessions = new Set<LanSession>();
  const perClient = new Map<string, number>();
  let draining = false;
  let nextSessionId = 1;

  const server: Server = createServer({ noDelay: true }, (socket: Socket) => {
    const ip = normalizeIp(socket.remoteAddress ?? '');
    socket.on('error', () => undefined);
    const count = perClient.get(ip) ?? 0;
    if (draining) {
      socket.end('421 4.3.2 RelayDesk is shutting down, try again later\r\n');
      return;
    }
    if (count >= options.maxConnectionsPerClient) {
      socket.end(`421 4.7.0 Too many connections from ${ip}, try again later\r\n`);
      return;
    }
    if (sessions.size >= options.maxConnections) {
      socket.end('421 4.7.0 Too many connections, try again later\r\n');
      return;
    }
    perClient.set(ip, count + 1);
    let connection: Socket = socket;
    if (options.tls === 'implicit' && secureContext) {
      const secure = new TLSSocket(socket, { isServer: true, secureContext });
      secure.on('error', () => undefined);
      watchHandshake(secure, (error) => host.tlsFailed(ip, error));
      connection = secure;
    }
    const session = new LanSession(connection, host, {
      id: nextSessionId++,
      remoteAddress: ip,
      remotePort: socket.remotePort ?? 0,
      listener: `${options.host}:${options.port}`,
      tls: options.tls === 'implicit',
    });
    sessions.add(session);
    socket.once('close', () => {
      sessions.delete(session);
      const left = (perClient.get(ip) ?? 1) - 1;
      if (left <= 0) perClient.delete(ip);
      else perClient.set(ip, left);
    });
  });
  server.maxConnections = options.maxConnections + 50;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(new ListenError(error.code ?? 'UNKNOWN', options.host, options.port, error));
    };
    server.once('error', onError);
    server.listen({ host: options.host, port: options.port, backlog: 511 }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : options.port;

  const closeServer = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });

  return {
    address: options.host,
    port,
    get connections() {
      return sessions.size;
    },
    async drain(timeoutMs) {
      draining = true;
      const deadline = Date.now() + timeoutMs;
      // Bounded: sessions mid-DATA get until the deadline to finish.
      while (sessions.size > 0 && Date.now() < deadline) {
        for (const session of sessions) {
          if (session.isClosed) sessions.delete(session);
          else session.shutdownIfIdle();
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      draining = true;
      await closeServer();
    },
  };
}
