/**
 * The control channel between a running relay and `relaydesk status` / `relaydesk queue ...`:
 * a Unix socket in the data folder (a named pipe on Windows), readable only by the user who runs
 * the relay. One JSON request per connection, one JSON answer.
 */
import { createHash } from 'node:crypto';
import { chmod, open, rm, stat } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { prepareDataFolder, type DataFolderReport } from './data-folder.ts';
import type { QueueEntry } from './queue.ts';
import type { Relay, RelayStatus } from './relay.ts';

export type ControlRequest =
  | { op: 'status' }
  | { op: 'queue-list' }
  | { op: 'flush' }
  | { op: 'retry'; id: string }
  | { op: 'delete'; id: string }
  /** Who holds the endpoint: answered even while the relay is still starting. */
  | { op: 'hello' };

export type ControlResponse =
  | { ok: true; status?: RelayStatus; queue?: QueueEntry[]; count?: number; pid?: number }
  | { ok: false; error: string };

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

/** Another RelayDesk holds this data folder. */
export class AlreadyRunningError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number | null,
  ) {
    super(
      `RelayDesk is already running for this data folder (${pid === null ? 'pid unknown' : `pid ${pid}`}): ${dataDir}. ` +
        'Stop it first, or start this one with another --data-dir.',
    );
  }
}

/**
 * The data folder's control endpoint, held from before the spool is touched until the relay stops:
 * binding it is what makes this process the only RelayDesk on the folder (a pipe name and a socket
 * path can be bound once). Requests wait for `attach`: until then they are told the relay is starting.
 */
export interface ControlServer {
  folder: DataFolderReport;
  attach(relay: Relay): void;
  close(): Promise<void>;
}

export async function claimControl(dataDir: string): Promise<ControlServer> {
  const folder = await prepareDataFolder(dataDir);
  let target: Relay | null = null;
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
      const answer: Promise<ControlResponse> =
        request.op === 'hello'
          ? Promise.resolve({ ok: true, pid: process.pid })
          : target
            ? handle(target, request)
            : Promise.resolve({ ok: false, error: 'RelayDesk is starting: try again in a moment' });
      answer
        .catch((error: Error): ControlResponse => ({ ok: false, error: error.message }))
        .then((response) => socket.end(`${JSON.stringify(response)}\n`));
    });
  });
  await bindExclusive(server, dataDir);
  return {
    folder,
    attach(relay) {
      target = relay;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

/** `claimControl`, answering for `relay` at once. */
export async function startControlServer(dataDir: string, relay: Relay): Promise<ControlServer> {
  const control = await claimControl(dataDir);
  control.attach(relay);
  return control;
}

/** A crashed relay leaves its socket file behind; a takeover of it older than this was abandoned. */
const STALE_TAKEOVER_MS = 10_000;

async function bindExclusive(server: Server, dataDir: string): Promise<void> {
  const path = controlPath(dataDir);
  const takeover = `${path}.takeover`;
  // Asked first: Windows refuses a second server on a pipe name (libuv creates the first instance
  // exclusively), but Wine lets a second process bind the same name alongside the first.
  const running = await probe(path);
  if (running.answering) throw new AlreadyRunningError(dataDir, running.pid);
  for (let attempt = 1; ; attempt += 1) {
    const bound = await listen(server, path);
    if (bound === 'bound') break;
    const other = await probe(path);
    // On Windows the pipe's name is held only by a live process, whether it answers or not.
    if (other.answering || process.platform === 'win32' || attempt >= 20) {
      throw new AlreadyRunningError(dataDir, other.pid);
    }
    // A socket file nobody answers on: its relay died. Two processes starting at once must not both
    // replace it (each would unlink the other's), so replacing it is itself claimed with an exclusive file.
    const claimed = await open(takeover, 'wx').then(
      (handle) => handle.close().then(() => true),
      () => false,
    );
    if (!claimed) {
      const age = await stat(takeover).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_TAKEOVER_MS) await rm(takeover, { force: true });
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    try {
      if (!(await probe(path)).answering) await rm(path, { force: true });
      if ((await listen(server, path)) === 'bound') break;
    } finally {
      await rm(takeover, { force: true });
    }
  }
  if (process.platform !== 'win32') await chmod(path, 0o600);
}

function listen(server: Server, path: string): Promise<'bound' | 'in use'> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') resolve('in use');
      else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve('bound');
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(path);
  });
}

/** Whether a relay answers on the endpoint, and its process id when it says. */
async function probe(path: string): Promise<{ answering: boolean; pid: number | null }> {
  // Any failure but "nothing there" (ENOENT, ECONNREFUSED: null) means a live process holds it.
  const answer = await exchange(path, { op: 'hello' }, 5_000).catch((): ControlResponse => ({
    ok: false,
    error: 'no answer',
  }));
  if (answer === null) return { answering: false, pid: null };
  return { answering: true, pid: answer.ok && typeof answer.pid === 'number' ? answer.pid : null };
}

/** Sends one request to the relay running with `dataDir`; null when none is running. */
export function sendControlRequest(
  dataDir: string,
  request: ControlRequest,
  timeoutMs = 10_000,
): Promise<ControlResponse | null> {
  return exchange(controlPath(dataDir), request, timeoutMs);
}

function exchange(path: string, request: ControlRequest, timeoutMs: number): Promise<ControlResponse | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
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
