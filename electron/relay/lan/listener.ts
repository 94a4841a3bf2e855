/**
 * A LAN listener: accepts connections, keeps two connection budgets, and hands each connection to a
 * LanConnection. Devices in allowedClients share `maxConnections`; clients outside it have their own
 * small budget, so outsiders holding connections open can never lock a device out (Postfix exempts
 * $mynetworks from its connection limits for the same reason). During shutdown it keeps accepting
 * just long enough to answer 421, so devices see "try again later" rather than a refused connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { normalizeIp } from '../access.ts';
import { LanConnection, watchHandshake } from './connection.ts';
import type { SessionHost } from './session.ts';

export interface ListenerOptions {
  host: string;
  port: number;
  /** `implicit`: TLS from the first byte (port 465 style); STARTTLS is the session host's `startTls`. */
  tls: 'none' | 'starttls' | 'implicit';
  /** Required for `implicit`. */
  secureContext: SecureContext | null;
  maxConnectionsPerClient: number;
  maxConnections: number;
  /** Clients outside allowedClients: all of them together, and each one. */
  maxUnlistedConnections: number;
  maxConnectionsPerUnlistedClient: number;
}

/** Connections counted per client address and in all. */
class ConnectionBudget {
  private readonly perClient = new Map<string, number>();
  private total = 0;

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
  ) {}

  /** Takes a place for `ip`, or says which limit is reached. */
  admit(ip: string): 'admitted' | 'client-full' | 'full' {
    const count = this.perClient.get(ip) ?? 0;
    if (count >= this.maxPerClient) return 'client-full';
    if (this.total >= this.maxTotal) return 'full';
    this.perClient.set(ip, count + 1);
    this.total += 1;
    return 'admitted';
  }

  release(ip: string): void {
    const left = (this.perClient.get(ip) ?? 1) - 1;
    if (left <= 0) this.perClient.delete(ip);
    else this.perClient.set(ip, left);
    this.total -= 1;
  }
}

/** How long a refused connection may linger for its 421 to be read. */
const REFUSED_GRACE_MS = 1000;

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

/** Exported for its test: the advice differs per OS (macOS lets anyone bind low ports on every address). */
export function listenErrorMessage(
  code: string,
  host: string,
  port: number,
  detail: string,
  platform: NodeJS.Platform = process.platform,
): string {
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `Port ${port} on ${host} is already in use by another program (often another mail server such as IIS SMTP, hMailServer or Postfix). Stop that program, or set "listen.port" to a free port (for example 2525) and point the devices at it.`;
    case 'EACCES':
    case 'EPERM':
      if (port >= 1024) return `Not allowed to listen on ${where} (${detail}).`;
      if (platform === 'darwin') {
        // Since macOS 10.14 any user may listen below 1024 on every address, never on one address.
        return `Not allowed to listen on ${where}: macOS lets any user listen on port ${port} on every address, but only an administrator on one address. Set "listen.host" to "0.0.0.0" ("allowedClients" still decides who may send), run RelayDesk as a LaunchDaemon (docs/service.md), or set "listen.port" to 2525.`;
      }
      if (platform === 'win32') {
        return `Not allowed to listen on ${where} (${detail}). Windows needs no administrator rights for port ${port}: another program, or a port range Windows reserved (netsh int ipv4 show excludedportrange protocol=tcp), holds it. Stop that program, or set "listen.port" to 2525.`;
      }
      return `Not allowed to listen on ${where}: ports below 1024 need administrator rights on this system. Run RelayDesk as a service with the right to bind low ports (systemd's AmbientCapabilities=CAP_NET_BIND_SERVICE, as docs/service.md sets up, or setcap 'cap_net_bind_service=+ep' on node), or set "listen.port" to 2525.`;
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
  const connections = new Set<LanConnection>();
  const devices = new ConnectionBudget(options.maxConnections, options.maxConnectionsPerClient);
  const unlisted = new ConnectionBudget(
    options.maxUnlistedConnections,
    options.maxConnectionsPerUnlistedClient,
  );
  let draining = false;
  let nextSessionId = 1;

  const refuse = (socket: Socket, reply: string) => {
    socket.end(`${reply}\r\n`);
    setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
  };

  const server: Server = createServer({ noDelay: true }, (socket: Socket) => {
    const ip = normalizeIp(socket.remoteAddress ?? '');
    socket.on('error', () => undefined);
    if (draining) {
      refuse(socket, '421 4.3.2 RelayDesk is shutting down, try again later');
      return;
    }
    const listed = host.isAllowed(ip);
    const budget = listed ? devices : unlisted;
    const admitted = budget.admit(ip);
    if (admitted === 'client-full') {
      refuse(socket, `421 4.7.0 Too many connections from ${ip}, try again later`);
      return;
    }
    if (admitted === 'full') {
      refuse(
        socket,
        listed
          ? '421 4.7.0 Too many connections, try again later'
          : '421 4.7.0 Too many connections from addresses outside allowedClients, try again later',
      );
      return;
    }
    let connection: Socket = socket;
    if (options.tls === 'implicit' && secureContext) {
      const secure = new TLSSocket(socket, { isServer: true, secureContext });
      secure.on('error', () => undefined);
      watchHandshake(secure, (error) => host.tlsFailed(ip, error));
      connection = secure;
    }
    // A device's place is free once its session ended (a program that reads 221 and connects again at
    // once must find it free); an outsider's only once its socket is gone.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      budget.release(ip);
    };
    const session = new LanConnection(
      connection,
      host,
      {
        id: nextSessionId++,
        remoteAddress: ip,
        remotePort: socket.remotePort ?? 0,
        listener: `${options.host}:${options.port}`,
        tls: options.tls === 'implicit',
      },
      () => {
        connections.delete(session);
        if (listed) release();
      },
    );
    connections.add(session);
    socket.once('close', () => {
      connections.delete(session);
      release();
    });
  });
  // A safety net for file descriptors only: the budgets above answer with 421 long before. Each place
  // may have a socket lingering behind it for a moment after its session ended.
  server.maxConnections = 2 * (options.maxConnections + options.maxUnlistedConnections) + 100;

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
      return connections.size;
    },
    async drain(timeoutMs) {
      draining = true;
      const deadline = Date.now() + timeoutMs;
      // Bounded: sessions mid-DATA get until the deadline to finish.
      while (connections.size > 0 && Date.now() < deadline) {
        for (const connection of connections) {
          if (connection.isClosed) connections.delete(connection);
          else connection.shutdownIfIdle();
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
