/**
 * The admin web server behind `serve --admin`: the built window and the same API as the Electron
 * preload, over HTTP (one POST per request) and Server-Sent Events (pushes). It is a door into the
 * relay, so it is built like one:
 *
 * - the Host header must name the address it listens on (a DNS-rebinding page gets 421);
 * - every API request needs the token in a header (`Authorization: Bearer`), never a cookie, so a
 *   cross-site form or image cannot act with the admin's rights; POSTs must be JSON, and a foreign
 *   Origin is refused;
 * - failed token attempts are answered slower and slower per client, and one at a time for all
 *   clients together, so guessing from many addresses or connections in parallel gains nothing;
 * - a strict CSP, no framing, no sniffing, no referrer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, sep } from 'node:path';
import { CONTENT_SECURITY_POLICY } from '../app/csp.ts';
import { rendererContentType, rendererFilePath } from '../app/renderer-files.ts';
import { forwardPushes, handle, logRefusal, type Handlers } from '../app/handlers.ts';
import type { ServiceEvents } from '../app/service.ts';
import type { HealthEndpoint } from './health-endpoint.ts';
import type { Logger } from '../relay/log.ts';
import { EVENTS_PATH, isChannel, PayloadError, RPC_PATH } from '../shared/ipc.ts';

export interface AdminServerOptions {
  host: string;
  /** 0 lets the OS pick (tests). */
  port: number;
  token: string;
  /** The built renderer (renderer/dist). */
  rendererDir: string;
  handlers: Handlers;
  events: EventEmitter<ServiceEvents>;
  logger: Logger;
  /** /healthz and /metrics, answered without the token (they show states and counts only). */
  health?: HealthEndpoint;
  /**
   * Delay after a client's first failed token attempt; doubles per further failure from that client.
   * Wrong-token answers to all clients together also leave at most one per this interval. Default 250 ms.
   */
  failureDelayMs?: number;
}

export interface AdminServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const MAX_BODY_BYTES = 512 * 1024;
const MAX_FAILURE_DELAY_MS = 10_000;
/**
 * Wrong-token requests waiting for their answer, all clients together. Beyond this a wrong token gets
 * 429 at once: the waiting sockets stay bounded, and a 256-bit token is out of reach of guessing anyway.
 */
const MAX_PENDING_FAILURES = 256;
const KEEPALIVE_MS = 25_000;

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === '::1' || host === 'localhost' || host.startsWith('127.');
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The path without its query: a token pasted into a query string must not reach the log. */
function pathOf(request: IncomingMessage): string {
  return (request.url ?? '').split('?')[0]!.slice(0, 200);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function send(
  response: ServerResponse,
  status: number,
  body: string | Buffer,
  contentType = 'text/plain; charset=utf-8',
  extra: Record<string, string> = {},
): void {
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': contentType,
    'Cache-Control': 'no-store',
    ...extra,
  });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  send(response, status, JSON.stringify(value), 'application/json; charset=utf-8');
}

function readBody(request: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        request.resume();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { logger, handlers } = options;
  const tokenDigest = digest(options.token);
  const failureDelayMs = options.failureDelayMs ?? 250;
  const failures = new Map<string, number>();
  /** When the latest queued wrong-token answer leaves; the next one leaves `failureDelayMs` after it. */
  let lastFailureAnswerAt = 0;
  let pendingFailures = 0;
  const streams = new Set<ServerResponse>();
  let allowedHosts = new Set<string>();
  let allowedOrigins = new Set<string>();

  function tokenFrom(request: IncomingMessage): string | null {
    const authorization = request.headers.authorization;
    if (authorization?.startsWith('Bearer ')) return authorization.slice(7).trim();
    const header = request.headers['x-relaydesk-token'];
    return typeof header === 'string' ? header.trim() : null;
  }

  /**
   * True when the token matches, at once. Otherwise answers 401 after the client's own delay (doubling
   * per failure) and no sooner than `failureDelayMs` after the previous wrong-token answer to anyone:
   * N wrong guesses take N delays however many addresses or connections they come from.
   */
  async function authorized(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
    const client = request.socket.remoteAddress ?? '';
    const token = tokenFrom(request);
    if (token !== null && timingSafeEqual(digest(token), tokenDigest)) {
      failures.delete(client);
      return true;
    }
    const count = (failures.get(client) ?? 0) + 1;
    failures.delete(client);
    failures.set(client, count);
    // Bounded memory: forget the client that failed longest ago.
    if (failures.size > 1000) failures.delete(failures.keys().next().value!);
    const reason = `${token === null ? 'no' : 'wrong'} token (attempt ${count})`;
    if (pendingFailures >= MAX_PENDING_FAILURES) {
      logRefusal(logger, 'admin', pathOf(request), `${reason}; too many failed attempts waiting`);
      send(response, 429, 'Too many failed attempts: try again later.', undefined, { 'Retry-After': '60' });
      return false;
    }
    const now = Date.now();
    const ownDelay = Math.min(MAX_FAILURE_DELAY_MS, failureDelayMs * 2 ** (count - 1));
    lastFailureAnswerAt = Math.max(now, lastFailureAnswerAt) + failureDelayMs;
    const answerAt = Math.max(now + ownDelay, lastFailureAnswerAt);
    logRefusal(logger, 'admin', pathOf(request), reason);
    pendingFailures += 1;
    try {
      await new Promise((resolve) => setTimeout(resolve, answerAt - now));
    } finally {
      pendingFailures -= 1;
    }
    send(
      response,
      401,
      'A valid token is needed: open the address that `relaydesk serve --admin` printed.',
      undefined,
      {
        'WWW-Authenticate': 'Bearer realm="RelayDesk"',
      },
    );
    return false;
  }

  async function serveStatic(path: string, response: ServerResponse): Promise<void> {
    const file = rendererFilePath(options.rendererDir, path);
    if (!file) {
      send(response, 404, 'Not found');
      return;
    }
    try {
      const body = await readFile(file);
      send(response, 200, body, rendererContentType(file), {
        // Vite names the files in assets/ by their content: they never change under the same name.
        'Cache-Control': file.startsWith(join(options.rendererDir, 'assets') + sep)
          ? 'public, max-age=31536000, immutable'
          : 'no-store',
      });
    } catch {
      send(response, 404, 'Not found');
    }
  }

  function openStream(response: ServerResponse): void {
    response.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    response.write(': RelayDesk events\n\n');
    streams.add(response);
    response.on('close', () => streams.delete(response));
  }

  async function serveApi(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    if (!(await authorized(request, response))) return;
    if (path === `/${EVENTS_PATH}`) {
      if (request.method !== 'GET')
        return send(response, 405, 'Method not allowed', undefined, { Allow: 'GET' });
      return openStream(response);
    }
    // One route per channel of the contract: POST /api/rpc/<channel>.
    const rpc = `/${RPC_PATH}`;
    const channel = path.startsWith(rpc) ? decodeURIComponent(path.slice(rpc.length)) : '';
    if (!isChannel(channel)) return sendJson(response, 404, { error: 'No such API call' });
    if (request.method !== 'POST')
      return send(response, 405, 'Method not allowed', undefined, { Allow: 'POST' });
    const origin = request.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin)) {
      logRefusal(logger, 'admin', channel, 'foreign Origin');
      return sendJson(response, 403, { error: 'Requests from other sites are refused' });
    }
    if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
      return sendJson(response, 415, { error: 'Send JSON (Content-Type: application/json)' });
    }
    const body = await readBody(request);
    if (body === null) return sendJson(response, 413, { error: 'Request too large' });
    let payload: unknown;
    try {
      payload = body === '' ? null : JSON.parse(body);
    } catch {
      return sendJson(response, 400, { error: 'Not valid JSON' });
    }
    try {
      sendJson(response, 200, { result: await handle(handlers, channel, payload) });
    } catch (error) {
      if (error instanceof PayloadError) {
        logRefusal(logger, 'admin', channel, error.message);
        return sendJson(response, 400, { error: error.message });
      }
      logger.error('admin-request-failed', { channel, reason: (error as Error).message });
      sendJson(response, 500, { error: (error as Error).message });
    }
  }

  const server: Server = createServer((request, response) => {
    const host = request.headers.host ?? '';
    if (!allowedHosts.has(host.toLowerCase())) {
      logRefusal(logger, 'admin', pathOf(request), 'Host header does not name this server');
      send(response, 421, 'This server answers only to its own address (Host header refused).');
      return;
    }
    if (options.health?.handle(request, response)) return;
    const path = new URL(request.url ?? '/', 'http://relaydesk.invalid').pathname;
    const work = path.startsWith('/api/')
      ? serveApi(request, response, path)
      : request.method === 'GET' || request.method === 'HEAD'
        ? serveStatic(path, response)
        : Promise.resolve(send(response, 405, 'Method not allowed', undefined, { Allow: 'GET' }));
    work.catch((error: Error) => {
      logger.error('admin-request-failed', { reason: error.message });
      if (!response.headersSent) send(response, 500, 'Internal error');
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  allowedHosts = new Set([hostPort(options.host, port).toLowerCase()]);
  if (isLoopback(options.host)) allowedHosts.add(`localhost:${port}`);
  allowedOrigins = new Set([...allowedHosts].map((h) => `http://${h}`));

  const stopPushes = forwardPushes(options.events, (channel, value) => {
    const frame = `event: ${channel}\ndata: ${JSON.stringify(value)}\n\n`;
    for (const stream of streams) stream.write(frame);
  });
  const keepalive = setInterval(() => {
    for (const stream of streams) stream.write(': keep-alive\n\n');
  }, KEEPALIVE_MS);
  keepalive.unref();

  return {
    url: `http://${hostPort(options.host, port)}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(keepalive);
        stopPushes();
        for (const stream of streams) stream.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
