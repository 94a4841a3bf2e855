/**
 * The control channel between a running relay and `relaydesk status` / `relaydesk queue ...`:
 * a Unix socket in the data folder (a named pipe on Windows), usable only by the account that runs
 * the relay. One JSON request per connection, one JSON answer.
 *
 * A relay run as a service runs as an account of its own (systemd's dynamic user or `relaydesk`,
 * macOS's `_relaydesk`, Windows' LocalService), so that channel shuts out the office's
 * administrator at the tray. With RELAYDESK_CONTROL_GROUP set (the service definitions set it) the
 * relay opens a second, group channel, as IIS SMTP let its operators' group manage it:
 *
 * - Linux, macOS: a socket `relaydesk-<digest>.sock` in a control folder outside the private data
 *   folder (/run/relaydesk, systemd's RuntimeDirectory; on macOS a folder the install makes, as
 *   /var/run is emptied at boot). The relay, a member of the group (SupplementaryGroups=, or the
 *   group's membership on macOS), gives the folder (0750) and the socket (0660) to that group:
 *   connecting to a Unix socket needs search on its folder and write on the socket, so members
 *   get in and others get EACCES. The data folder stays 0700.
 * - Windows: Node cannot set a pipe's DACL, and the default one gives full control to SYSTEM,
 *   Administrators and the pipe's creator and only read to Everyone; UAC runs an administrator's
 *   tray with Administrators deny-only, so even an administrator cannot write a request unelevated.
 *   Instead the relay listens on a loopback TCP port that answers only requests carrying a random
 *   token, and writes port and token to `relaydesk-<digest>.json` in a folder that install ACLs to
 *   the service account, SYSTEM, Administrators and the local group "RelayDesk Admins" (read). UAC
 *   filters only the administrative groups out of a token: a custom local group stays enabled, so
 *   an unelevated member reads the ticket and a non-member gets "access denied". The token changes
 *   at every start of the relay.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join, win32 } from 'node:path';
import { userInfo } from 'node:os';
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

/** Settings of the group channel, read from the environment the service definitions set. */
export interface ControlEnv {
  /** The group whose members may drive this relay; unset: only the relay's own account. */
  RELAYDESK_CONTROL_GROUP?: string;
  /** Where the group channel lives, when not the OS's default (controlGroupDir). */
  RELAYDESK_CONTROL_DIR?: string;
  ProgramData?: string;
}

/** The group `relaydesk service install` creates, and the service definitions name. */
export function defaultAdminGroup(platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? 'RelayDesk Admins' : 'relaydesk-admins';
}

function folderDigest(dataDir: string, platform: NodeJS.Platform): string {
  // Windows paths are case-insensitive: C:\ProgramData and c:\programdata are one folder.
  const key = platform === 'win32' ? dataDir.toLowerCase() : dataDir;
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

export function controlPath(dataDir: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return `\\\\.\\pipe\\relaydesk-${folderDigest(dataDir, platform)}`;
  return join(dataDir, 'relaydesk.sock');
}

/** The folder of the group channels: outside every data folder, which stays private. */
export function controlGroupDir(env: ControlEnv = process.env, platform: NodeJS.Platform = process.platform) {
  if (env.RELAYDESK_CONTROL_DIR) return env.RELAYDESK_CONTROL_DIR;
  if (platform === 'win32') return win32.join(env.ProgramData ?? 'C:\\ProgramData', 'RelayDesk Control');
  // launchd has no RuntimeDirectory and macOS empties /var/run at boot: a folder that stays.
  if (platform === 'darwin') return '/Library/Application Support/RelayDesk Control';
  return '/run/relaydesk';
}

/** The group channel of `dataDir`: a socket, or on Windows the ticket naming its port and token. */
export function groupControlPath(
  dataDir: string,
  env: ControlEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  const name = `relaydesk-${folderDigest(dataDir, platform)}.${platform === 'win32' ? 'json' : 'sock'}`;
  return join(controlGroupDir(env, platform), name);
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
 * A relay is (or may be) there, but this account may not use its control channel: the message
 * says which group admits it and how to join, or that the channel is its own account's alone.
 */
export class ControlAccessError extends Error {
  readonly code = 'EACCES';
}

/**
 * The data folder's control endpoint, held from before the spool is touched until the relay stops:
 * binding it is what makes this process the only RelayDesk on the folder (a pipe name and a socket
 * path can be bound once). Requests wait for `attach`: until then they are told the relay is starting.
 */
export interface ControlServer {
  folder: DataFolderReport;
  /** The group channel, when RELAYDESK_CONTROL_GROUP asked for one and it opened. */
  group: { name: string; path: string } | null;
  attach(relay: Relay): void;
  close(): Promise<void>;
}

export interface ControlOptions {
  env?: ControlEnv;
  /** Which flavour of group channel to open (tests run the Windows one on Linux too). */
  platform?: NodeJS.Platform;
  /** Where a group channel that cannot open is told: the relay keeps relaying without it. */
  warn?: (message: string) => void;
}

type Answerer = (request: ControlRequest) => Promise<ControlResponse>;

/** Reads one newline-ended JSON request per connection and writes the one answer. */
function serveRequests(answer: (request: Record<string, unknown>) => Promise<ControlResponse>) {
  return (socket: Socket) => {
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
      let request: Record<string, unknown>;
      try {
        request = JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>;
        if (typeof request !== 'object' || request === null) throw new Error('not an object');
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'Bad request' })}\n`);
        return;
      }
      answer(request)
        .catch((error: Error): ControlResponse => ({ ok: false, error: error.message }))
        .then((response) => socket.end(`${JSON.stringify(response)}\n`));
    });
  };
}

export async function claimControl(dataDir: string, options: ControlOptions = {}): Promise<ControlServer> {
  const folder = await prepareDataFolder(dataDir);
  let target: Relay | null = null;
  const answer: Answerer = (request) =>
    request.op === 'hello'
      ? Promise.resolve({ ok: true, pid: process.pid })
      : target
        ? handle(target, request)
        : Promise.resolve({ ok: false, error: 'RelayDesk is starting: try again in a moment' });
  const server: Server = createServer(serveRequests((request) => answer(request as ControlRequest)));
  await bindExclusive(server, dataDir);
  let group: GroupChannel | null = null;
  const env = options.env ?? process.env;
  const groupName = env.RELAYDESK_CONTROL_GROUP?.trim();
  if (groupName) {
    const platform = options.platform ?? process.platform;
    const path = groupControlPath(dataDir, env, platform);
    try {
      group = await (platform === 'win32' ? openTicketChannel : openGroupSocket)(path, groupName, answer);
    } catch (error) {
      (options.warn ?? ((text) => process.stderr.write(`Warning: ${text}\n`)))(
        `members of "${groupName}" cannot drive this relay: ${(error as Error).message}`,
      );
    }
  }
  return {
    folder,
    group: group && { name: groupName!, path: group.path },
    attach(relay) {
      target = relay;
    },
    async close() {
      await group?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
      });
    },
  };
}

/** `claimControl`, answering for `relay` at once. */
export async function startControlServer(dataDir: string, relay: Relay): Promise<ControlServer> {
  const control = await claimControl(dataDir);
  control.attach(relay);
  return control;
}

interface GroupChannel {
  path: string;
  close(): Promise<void>;
}

/** Runs a program without a shell: its standard output, or null when it fails. */
function output(file: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 10_000 }, (error, stdout) =>
      resolve(error ? null : stdout),
    );
  });
}

/** A group's id from its name, through the system's own lookup (NSS on Linux, Directory Services on macOS). */
async function groupId(name: string): Promise<number> {
  if (/^\d+$/.test(name)) return Number(name);
  const found =
    process.platform === 'darwin'
      ? /PrimaryGroupID:\s*(\d+)/.exec(
          (await output('dscl', ['.', '-read', `/Groups/${name}`, 'PrimaryGroupID'])) ?? '',
        )
      : /^[^:]*:[^:]*:(\d+):/.exec((await output('getent', ['group', name])) ?? '');
  if (!found) throw new Error(`there is no group "${name}" (\`relaydesk service install\` creates it)`);
  return Number(found[1]);
}

/** A group's name from its id, for messages; null when the system does not know it. */
async function groupNameOf(gid: number): Promise<string | null> {
  if (process.platform === 'darwin') {
    const found = await output('dscl', ['.', '-search', '/Groups', 'PrimaryGroupID', String(gid)]);
    return found?.split(/\s/)[0] || null;
  }
  return (await output('getent', ['group', String(gid)]))?.split(':')[0] || null;
}

async function openGroupSocket(path: string, group: string, answer: Answerer): Promise<GroupChannel> {
  const gid = await groupId(group);
  const uid = process.getuid!();
  if (uid !== 0 && !process.getgroups!().includes(gid)) {
    throw new Error(
      `the relay's account is not a member of "${group}" (systemd: SupplementaryGroups=${group}; macOS: ` +
        `dseditgroup -o edit -a ${userInfo().username} -t user ${group})`,
    );
  }
  const folder = dirname(path);
  await mkdir(folder, { recursive: true, mode: 0o750 });
  const folderStats = await stat(folder);
  // systemd makes the RuntimeDirectory the service's own (user and primary group): the relay, a
  // member of the admin group, hands the folder to it. A folder someone else made is theirs to set.
  if (folderStats.uid === uid) {
    await chown(folder, uid, gid);
    await chmod(folder, 0o750);
  } else if (folderStats.mode & 0o002) {
    throw new Error(`${folder} is writable by every user: anyone could put a false relay there`);
  }
  // This relay holds the data folder's own endpoint: a socket file here is a dead relay's.
  await rm(path, { force: true });
  const server = createServer(serveRequests((request) => answer(request as ControlRequest)));
  if ((await listen(server, path)) !== 'bound') throw new Error(`${path} is in use`);
  await chown(path, uid, gid);
  await chmod(path, 0o660);
  return {
    path,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Ticket {
  port: number;
  token: string;
  pid: number;
}

async function openTicketChannel(path: string, group: string, answer: Answerer): Promise<GroupChannel> {
  // The folder's ACL (install: the service account, SYSTEM, Administrators, the group) is what
  // keeps the token from everyone else: a folder made here would inherit ProgramData's "Users: read".
  await stat(dirname(path)).catch(() => {
    throw new Error(
      `${dirname(path)} does not exist: \`relaydesk service install\` makes it, readable by "${group}"`,
    );
  });
  const token = randomBytes(32);
  const server = createServer(
    serveRequests(async (request) => {
      const presented = Buffer.from(typeof request.token === 'string' ? request.token : '', 'base64url');
      if (presented.length !== token.length || !timingSafeEqual(presented, token)) {
        return {
          ok: false,
          error: `Refused: this request does not carry the token of the "${group}" ticket`,
        };
      }
      const { token: _token, ...rest } = request;
      return answer(rest as ControlRequest);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  const ticket: Ticket = { port, token: token.toString('base64url'), pid: process.pid };
  await writeFile(path, `${JSON.stringify(ticket)}\n`);
  return {
    path,
    async close() {
      await rm(path, { force: true });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A crashed relay leaves its socket file behind; a claim to take it over older than this was abandoned. */
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
    if (other.answering || process.platform === 'win32' || attempt >= 100) {
      throw new AlreadyRunningError(dataDir, other.pid);
    }
    // A socket file nobody answers on: its relay died. Two processes starting at once must not both
    // replace it (each would unlink the other's), so replacing it is itself claimed with an exclusive
    // file holding the claimant's pid; a claim whose process is gone (killed mid-way) is void.
    const claimed = await open(takeover, 'wx').then(
      async (handle) => {
        await handle.writeFile(String(process.pid));
        await handle.close();
        return true;
      },
      () => false,
    );
    if (!claimed) {
      if (await abandoned(takeover)) await rm(takeover, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, 50));
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

/** A takeover claim whose process is gone, or older than any takeover takes. */
async function abandoned(takeover: string): Promise<boolean> {
  try {
    const [pid, stats] = await Promise.all([readFile(takeover, 'utf8'), stat(takeover)]);
    if (Date.now() - stats.mtimeMs > STALE_TAKEOVER_MS) return true;
    // Empty: its process was killed between creating and writing it.
    if (!/^\d+$/.test(pid)) return Date.now() - stats.mtimeMs > 1_000;
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ESRCH: no such process. ENOENT: the claim is gone already. EPERM: alive, another user's.
    return code === 'ESRCH' || code === 'ENOENT';
  }
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

/**
 * Sends one request to the relay running with `dataDir`; null when none is running. The group
 * channel first (a service's, which the service's own account may use too), then the data folder's.
 * Throws ControlAccessError when a channel is there but shuts this account out.
 */
export async function sendControlRequest(
  dataDir: string,
  request: ControlRequest,
  timeoutMs = 10_000,
  env: ControlEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): Promise<ControlResponse | null> {
  // A non-member cannot even look into the group channels' folder: that says nothing about a
  // relay on a data folder of their own, so the refusal counts only if the folder's own channel fails too.
  let refusal: ControlAccessError | null = null;
  try {
    const viaGroup = await groupExchange(dataDir, request, timeoutMs, env, platform);
    if (viaGroup !== null) return viaGroup;
  } catch (error) {
    if (!(error instanceof ControlAccessError)) throw error;
    refusal = error;
  }
  try {
    return await exchange(controlPath(dataDir), request, timeoutMs);
  } catch (error) {
    // Windows opens another account's pipe read-only, and the request then fails to be written.
    if (refusal) throw refusal;
    if (!isDenied(error)) throw error;
    throw new ControlAccessError(
      `The control channel of ${dataDir} admits only the account that runs its relay, and no relay answers ` +
        `for it on the admin group's channel (${groupControlPath(dataDir, env, platform)}). For a RelayDesk ` +
        'service: is it running (`relaydesk service status`)? Installed with `relaydesk service install`, ' +
        `it lets members of "${defaultAdminGroup(platform)}" drive it. Otherwise run this command as the ` +
        'account that runs the relay.',
    );
  }
}

function isDenied(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}

async function groupExchange(
  dataDir: string,
  request: ControlRequest,
  timeoutMs: number,
  env: ControlEnv,
  platform: NodeJS.Platform,
): Promise<ControlResponse | null> {
  const path = groupControlPath(dataDir, env, platform);
  try {
    if (platform !== 'win32') return await exchange(path, request, timeoutMs);
    let ticket: Ticket;
    try {
      ticket = JSON.parse(await readFile(path, 'utf8')) as Ticket;
    } catch (error) {
      // No ticket (no service, or one without a group), or one being written: not this channel.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || error instanceof SyntaxError) return null;
      throw error;
    }
    return await exchange(
      { host: '127.0.0.1', port: ticket.port },
      { ...request, token: ticket.token },
      timeoutMs,
    );
  } catch (error) {
    if (!isDenied(error)) throw error;
    throw new ControlAccessError(await notMemberMessage(dataDir, path, env, platform));
  }
}

/** Who may drive the service and how this account joins them, in the OS's own commands. */
async function notMemberMessage(
  dataDir: string,
  path: string,
  env: ControlEnv,
  platform: NodeJS.Platform,
): Promise<string> {
  let group = defaultAdminGroup(platform);
  const user = platform === 'win32' ? (process.env.USERNAME ?? userInfo().username) : userInfo().username;
  if (platform !== 'win32') {
    // The folder carries the group (the relay set it): the name an admin chose, not ours.
    const gid = await stat(controlGroupDir(env, platform)).then(
      (stats) => stats.gid,
      () => null,
    );
    group = (gid !== null && (await groupNameOf(gid))) || group;
  }
  const join =
    platform === 'win32'
      ? `in a Command Prompt opened with "Run as administrator": net localgroup "${group}" "${user}" /add`
      : platform === 'darwin'
        ? `sudo dseditgroup -o edit -a ${user} -t user ${group}`
        : `sudo usermod -aG ${group} ${user}`;
  return (
    `Only members of the group "${group}" may drive the RelayDesk service of ${dataDir} (${path}), and ` +
    `${user} is not one. To add this account: ${join}; then sign out and in again (membership counts from the ` +
    'next sign-in).'
  );
}

function exchange(
  target: string | { host: string; port: number },
  request: ControlRequest | (ControlRequest & { token: string }),
  timeoutMs: number,
): Promise<ControlResponse | null> {
  return new Promise((resolve, reject) => {
    const socket = typeof target === 'string' ? connect(target) : connect(target.port, target.host);
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
