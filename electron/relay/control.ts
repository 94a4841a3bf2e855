/**
 * The control channel between a running relay and `relaydesk status` / `relaydesk queue ...`:
 * a Unix socket in the data folder (a named pipe on Windows), readable only by the user who runs
 * the relay. One JSON request per connection, one JSON answer.
 */
import { createHash } from 'node:crypto';
import { chmod, unlink } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { QueueEntry } from './queue.ts';
import type { Relay, RelayStatus } from './relay.ts';

export type ControlRequest =
  | { op: 'status' }
  | { op: 'queue-list' }
  | { op: 'flush' }
  | { op: 'retry'; id: string }
  | { op: 'delete'; id: string };

export type ControlResponse =
  { ok: true; status?: RelayStatus; queue?: QueueEntry[]; count?: number } | { ok: false; error: string };

export function controlPath(dataDir: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') {
    const digest = createHash('sha256').update(dataDir.toLowerCase()).digest('hex').slice(0, 16);
    return `\\\\.\\pipe\\relaydesk-${digest}`;
  }
  return join(dataDir, 'relaydesk.sock');
}

const MAX_REQUEST_BYTES = 64 * 1024;

async function handle(relay: Relay, request: ControlRequest): Promise<ControlResponse> {
  switch (request.op) {
    case 'status':
      return { ok: true, status: relay.status() };
    case 'queue-list':
      return { ok: true, queue: relay.listQueue() };
    case 'flush':
      return { ok: true, count: relay.flush() };
    case 'retry':
      return relay.retry(String(request.id))
        ? { ok: true }
        : { ok: false, error: `No message ${request.id} in the queue` };
    case 'delete':
      return (await relay.remove(String(request.id)))
        ? { ok: true }
        : { ok: false, error: `No message ${request.id} in the queue (or it is being delivered right now)` };
    default:
      return { ok: false, error: 'Unknown request' };
  }
}

/** Another relay already answers on this data folder's control socket. */
export class AlreadyRunningError extends Error {}

export async function startControlServer(dataDir: string, relay: Relay): Promise<{ close(): Promise<void> }> {
  const path = controlPath(dataDir);
  if (process.platform !== 'win32') {
    if (await isAnswering(path)) {
      throw new AlreadyRunningError(
        `RelayDesk is already running with the data folder ${dataDir}. Stop it first, or use another --data-dir.`,
      );
    }
    await unlink(path).catch(() => undefined);
  }
  const server: Server = createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST_BYTES) {
        socket.destroy();
        return;
      }
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      let request: ControlRequest;
      try {
        request = JSON.parse(buffer.slice(0, newline)) as ControlRequest;
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'Bad request' })}\n`);
        return;
      }
      handle(relay, request)
        .catch((error: Error): ControlResponse => ({ ok: false, error: error.message }))
        .then((response) => socket.end(`${JSON.stringify(response)}\n`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  if (process.platform !== 'win32') await chmod(path, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

function isAnswering(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends one request to the relay running with `dataDir`; null when none is running. */
export function sendControlRequest(
  dataDir: string,
  request: ControlRequest,
  timeoutMs = 10_000,
): Promise<ControlResponse | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(controlPath(dataDir));
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('The running relay did not answer within 10 seconds'));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(answer) as ControlResponse);
      } catch {
        reject(new Error('The running relay sent an answer that could not be read'));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') resolve(null);
      else reject(error);
    });
  });
}
