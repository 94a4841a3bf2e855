/**
 * The pickup folder, as IIS's SMTP service had it: a program writes a message file into it, RelayDesk
 * takes the file once the program is done with it, queues it like a device's message (the same
 * fsynced spool, sender rewriting and delivery) and deletes it. A file it cannot send goes to the
 * badmail folder with a `<name>.reason` file beside it.
 *
 * When a file is done. On Windows a program writing a file usually holds it without delete sharing,
 * so the claim (a rename) fails until it closes the file. Node's own writers and every POSIX system
 * allow the rename under an open writer, so a file must also have kept its size and modification
 * time over `settleMs` before it is claimed. A program that pauses longer than that mid-write should
 * write the file elsewhere (or under a name starting with `.`, which is never picked up) and then
 * move it in: a rename is the one way that is safe everywhere (docs/configuration.md).
 *
 * Noticing files. fs.watch is only a hint (it misses events on network shares and under Wine); a
 * scan of at most MAX_FILES_PER_SCAN entries runs every SCAN_INTERVAL_MS regardless.
 *
 * Never twice, never lost. `.claimed/` inside the pickup folder (the same volume, so every move is
 * an atomic rename) holds a file through these names:
 *   `<token>.<name>`       claimed, not queued: read again after a crash.
 *   `<token>+<id>.<name>`  its message was being written to the spool as queue id `<id>`.
 *   `<token>+<id>`         (empty) a marker: `<id>` is queued, the file above only waits to be deleted.
 * The token is ours (a queue-id-shaped random string, no `.` or `+`), so a name is never ambiguous.
 * The message is handed to delivery only after its claimed file is deleted or marked, so a
 * `<token>+<id>.<name>` found at start without a marker is queued exactly when `<id>` is in the
 * spool: then the file is deleted; otherwise the spool never took the message (its half-written
 * file in `incoming/` is discarded at start) and the file is read again.
 */
import { isAscii } from 'node:buffer';
import { watch, type FSWatcher } from 'node:fs';
import { copyFile, lstat, mkdir, opendir, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, isAbsolute } from 'node:path';
import { isLocked, nodeFileSystem, replaceFile, retrying, type FileSystem } from '../platform/fs-retry.ts';
import type { Logger } from './log.ts';
import {
  checkPickupSize,
  PICKUP_HEADER_BYTES,
  readPickupMessage,
  type PickupLimits,
  type PickupProblem,
} from './pickup-message.ts';
import { newMessageId, type EnvelopeClient, type Spool, type SpooledMessage } from './spool.ts';

/** A pickup file is mail from this computer: `sender.byClient["127.0.0.1"]` applies to it. */
export const PICKUP_CLIENT: EnvelopeClient = {
  ip: '127.0.0.1',
  port: 0,
  helo: 'pickup',
  listener: 'pickup',
  tls: false,
  authUser: null,
};

export const CLAIMED_FOLDER = '.claimed';
/** Files that are never mail: Explorer's folder settings and thumbnail cache. */
const SYSTEM_FILES = new Set(['desktop.ini', 'thumbs.db']);
const SCAN_INTERVAL_MS = 5000;
/** Watch events come in bursts (one per write): one scan for a burst. */
const WATCH_DEBOUNCE_MS = 50;
/** A folder with a million files is read a slice at a time, and memory stays bounded. */
const MAX_FILES_PER_SCAN = 2000;
/** Files read and queued at once: the spool's directory fsyncs are shared between them. */
const CONCURRENCY = 4;
const COPY_CHUNK_BYTES = 256 * 1024;

const CLAIMED_NAME = /^([0-9A-Z]+)(?:\+([0-9A-Z]+))?(?:\.(.+))?$/s;

export interface PickupOptions {
  dir: string;
  badmailDir: string;
  settleMs: number;
  spool: Spool;
  limits: PickupLimits;
  logger: Logger;
  /** The queue ids in the spool at start (loaded, or held by another program): how a claimed file left by a crash is known to be queued. */
  queuedAtStart: ReadonlySet<string>;
  hasRoomFor(bytes: number): Promise<boolean>;
  /** The message is in the spool and its pickup file is gone: deliver it. */
  queued(message: SpooledMessage): void;
  /** Default: the real file system. */
  files?: FileSystem;
}

export interface Pickup {
  start(): Promise<void>;
  /** Finishes the files being queued, then stops watching. */
  stop(): Promise<void>;
}

/** The pickup folder cannot be used as configured. */
export class PickupError extends Error {}

/** IIS kept Pickup and Badmail side by side under mailroot: the default badmail folder is the pickup folder's sibling. */
export function defaultBadmailDir(pickupDir: string): string {
  return join(dirname(pickupDir), /^[A-Z]/.test(basename(pickupDir)) ? 'Badmail' : 'badmail');
}

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export function createPickup(options: PickupOptions): Pickup {
  const { dir, badmailDir, logger, spool, limits } = options;
  const rawFs = options.files ?? nodeFileSystem;
  const fs = retrying(rawFs);
  const claimedDir = join(dir, CLAIMED_FOLDER);

  /** Size and modification time of each file as first seen unchanged, and since when. */
  const seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  /** Tokens of claimed files being read or queued right now. */
  const inFlight = new Set<string>();
  /** Queue ids whose claimed file is still to be deleted (another program held it). */
  const knownQueued = new Set<string>();
  /** Queued messages whose claimed file could neither be deleted nor marked yet: delivered once it is. */
  const parked = new Map<string, { message: SpooledMessage; name: string }>();
  let watcher: FSWatcher | null = null;
  let stopped = false;
  let wake: (() => void) | null = null;
  let loop: Promise<void> | null = null;

  async function start(): Promise<void> {
    if (isInside(spool.root, dir) || isInside(dir, spool.root)) {
      throw new PickupError(
        `pickup.dir ${dir} overlaps RelayDesk's spool (${spool.root}): choose a folder of its own, such as C:\\inetpub\\mailroot\\Pickup`,
      );
    }
    // Inside the pickup folder is fine (folders there are never picked up); the folder itself is not.
    if (relative(dir, badmailDir) === '') {
      throw new PickupError(
        `pickup.badmailDir is the pickup folder ${dir}: refused files would be picked up again; leave it out for ${defaultBadmailDir(dir)}`,
      );
    }
    if (isInside(spool.root, badmailDir)) {
      throw new PickupError(
        `pickup.badmailDir ${badmailDir} is inside RelayDesk's spool: choose a folder of its own`,
      );
    }
    try {
      await mkdir(claimedDir, { recursive: true });
      await mkdir(badmailDir, { recursive: true });
    } catch (error) {
      throw new PickupError(
        `cannot create the pickup folder ${dir} or the badmail folder ${badmailDir}: ${(error as Error).message}`,
      );
    }
    for (const name of await readdir(claimedDir)) {
      const match = CLAIMED_NAME.exec(name);
      if (match?.[2] && options.queuedAtStart.has(match[2])) knownQueued.add(match[2]);
    }
    try {
      watcher = watch(dir, { persistent: false }, () => scheduleWake());
      watcher.on('error', () => {
        // Some file systems (network shares) stop reporting: the periodic scan still runs.
        watcher?.close();
        watcher = null;
      });
    } catch {
      watcher = null;
    }
    logger.info('pickup-watching', { dir, badmailDir, settleSeconds: options.settleMs / 1000 });
    loop = run();
  }

  let debounce: NodeJS.Timeout | null = null;
  function scheduleWake(): void {
    if (debounce || stopped) return;
    debounce = setTimeout(() => {
      debounce = null;
      wake?.();
    }, WATCH_DEBOUNCE_MS);
  }

  async function run(): Promise<void> {
    while (!stopped) {
      let delay = SCAN_INTERVAL_MS;
      try {
        delay = await scan();
      } catch (error) {
        logger.error('pickup-error', { dir, error: (error as Error).message });
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  }

  /** One round; returns how soon the next should come. */
  async function scan(): Promise<number> {
    await tidyClaimed();
    const now = performance.now();
    const ready: { name: string; size: number }[] = [];
    const present = new Set<string>();
    let nextSettle = Infinity;
    let truncated = false;
    const folder = await opendir(dir);
    for await (const entry of folder) {
      if (present.size >= MAX_FILES_PER_SCAN) {
        truncated = true;
        break;
      }
      if (entry.name.startsWith('.') || SYSTEM_FILES.has(entry.name.toLowerCase())) continue;
      if (!entry.isFile()) continue;
      present.add(entry.name);
      const stats = await lstat(join(dir, entry.name)).catch(() => null);
      if (!stats?.isFile()) continue;
      const previous = seen.get(entry.name);
      if (!previous || previous.size !== stats.size || previous.mtimeMs !== stats.mtimeMs) {
        seen.set(entry.name, { size: stats.size, mtimeMs: stats.mtimeMs, since: now });
        nextSettle = Math.min(nextSettle, options.settleMs);
      } else if (now - previous.since >= options.settleMs) {
        ready.push({ name: entry.name, size: stats.size });
      } else {
        nextSettle = Math.min(nextSettle, options.settleMs - (now - previous.since));
      }
    }
    // (Leaving the loop early closed the folder.) Forgotten: files that went away.
    if (!truncated) for (const name of seen.keys()) if (!present.has(name)) seen.delete(name);

    let diskFull = false;
    await eachLimited(ready, async ({ name, size }) => {
      seen.delete(name);
      if (stopped || diskFull) return;
      // Left where the admin sees it, rather than claimed and stuck, while the spool's disk is full.
      if (!(await options.hasRoomFor(size))) {
        diskFull = true;
        logger.warn('pickup-waiting', {
          file: name,
          reason:
            'the disk of the data folder is nearly full; files stay in the pickup folder until there is room',
        });
        return;
      }
      const token = await claim(name);
      if (token) await handleClaimed(token, name, join(claimedDir, `${token}.${name}`));
    });
    if (ready.length > 0 && !diskFull) return 0;
    return Math.min(SCAN_INTERVAL_MS, Math.ceil(nextSettle));
  }

  /** The atomic step that makes a file ours; null when it is not to be taken now. */
  async function claim(name: string): Promise<string | null> {
    const token = newMessageId();
    try {
      // Not retried: on Windows a refusal means the writer still holds the file; the next scan looks again.
      await rawFs.rename(join(dir, name), join(claimedDir, `${token}.${name}`));
      return token;
    } catch (error) {
      if (isLocked(error) || (error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      logger.error('pickup-error', { file: name, error: (error as Error).message });
      return null;
    }
  }

  /** Files in `.claimed/` left by a crash, a failed write to the spool, or another program's hold. */
  async function tidyClaimed(): Promise<void> {
    const names = await readdir(claimedDir);
    const markers = new Set(names.filter((n) => /^[0-9A-Z]+\+[0-9A-Z]+$/.test(n)));
    const files = new Set<string>();
    for (const name of names) {
      // A marker's temporary file, left by a crash while it was written.
      if (name.startsWith('.') && name.endsWith('.tmp')) {
        await unlinkIfPresent(fs, join(claimedDir, name)).catch(() => undefined);
        continue;
      }
      const match = CLAIMED_NAME.exec(name);
      if (!match?.[3] || inFlight.has(match[1]!)) continue;
      const [, token, id, original] = match as unknown as [string, string, string | undefined, string];
      if (id) files.add(`${token}+${id}`);
      const path = join(claimedDir, name);
      if (id && (markers.has(`${token}+${id}`) || knownQueued.has(id))) {
        await deleteQueuedFile(token, id, path, markers.has(`${token}+${id}`));
      } else {
        await handleClaimed(token, original, path);
      }
    }
    // A marker whose file is gone has done its work.
    for (const marker of markers) {
      if (!files.has(marker)) await unlinkIfPresent(fs, join(claimedDir, marker)).catch(() => undefined);
    }
  }

  async function deleteQueuedFile(token: string, id: string, path: string, marked: boolean): Promise<void> {
    try {
      await unlinkIfPresent(fs, path);
    } catch {
      if (!marked) await mark(token, id);
      return;
    }
    if (marked) await unlinkIfPresent(fs, join(claimedDir, `${token}+${id}`)).catch(() => undefined);
    knownQueued.delete(id);
    release(id);
  }

  /** When even the marker cannot be written, the message stays parked and the next scan tries again. */
  async function mark(token: string, id: string): Promise<void> {
    try {
      await replaceFile(fs, join(claimedDir, `${token}+${id}`), '', 0o644);
    } catch {
      return;
    }
    release(id);
  }

  function release(id: string): void {
    const waiting = parked.get(id);
    if (!waiting) return;
    parked.delete(id);
    announce(waiting.message, waiting.name);
  }

  function announce(message: SpooledMessage, name: string): void {
    const { envelope } = message;
    logger.info('pickup-queued', {
      queueId: envelope.id,
      file: name,
      mailFrom: envelope.mailFrom,
      rcptTo: envelope.rcptTo,
      size: message.size,
    });
    options.queued(message);
  }

  async function handleClaimed(token: string, name: string, claimedPath: string): Promise<void> {
    inFlight.add(token);
    try {
      await queueClaimed(token, name, claimedPath);
    } catch (error) {
      logger.error('pickup-error', {
        file: name,
        error: (error as Error).message,
        reason: isLocked(error)
          ? 'another program (antivirus, backup) holds the file; RelayDesk tries again shortly'
          : 'the file stays in the .claimed folder and is tried again at the next scan',
      });
    } finally {
      inFlight.delete(token);
    }
  }

  async function queueClaimed(token: string, name: string, claimedPath: string): Promise<void> {
    let handle = await fs.open(claimedPath, 'r');
    let size: number;
    let reading;
    let eightBit: boolean;
    try {
      size = (await handle.stat()).size;
      const sizeProblem = checkPickupSize(size, limits);
      if (sizeProblem) {
        await handle.close();
        return toBadmail(token, name, claimedPath, sizeProblem);
      }
      const head = await readAt(handle, 0, Math.min(size, PICKUP_HEADER_BYTES));
      reading = readPickupMessage(head, size, limits);
      eightBit = !isAscii(head) || !(await restIsAscii(handle, head.length, size));
    } finally {
      await handle.close().catch(() => undefined);
    }
    if (!reading.ok) return toBadmail(token, name, claimedPath, reading);
    if (!(await options.hasRoomFor(size))) {
      logger.warn('pickup-waiting', {
        file: name,
        reason: 'the disk of the data folder is nearly full; the file waits in the .claimed folder',
      });
      return;
    }
    const { envelope } = reading;
    const writer = await spool.begin({
      receivedAt: Date.now(),
      client: PICKUP_CLIENT,
      mailFrom: envelope.mailFrom,
      rcptTo: envelope.rcptTo,
      eightBit,
      smtpUtf8: envelope.smtpUtf8,
    });
    const queuedPath = join(claimedDir, `${token}+${writer.id}.${name}`);
    let message: SpooledMessage;
    try {
      await fs.rename(claimedPath, queuedPath);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    try {
      handle = await fs.open(queuedPath, 'r');
      try {
        await writer.write(envelope.header);
        for (let offset = envelope.bodyOffset; offset < size;) {
          const chunk = await readAt(handle, offset, Math.min(COPY_CHUNK_BYTES, size - offset));
          if (chunk.length === 0) break;
          await writer.write(chunk);
          offset += chunk.length;
        }
      } finally {
        await handle.close().catch(() => undefined);
      }
      message = await writer.commit();
    } catch (error) {
      await writer.abort();
      // Back to "claimed, not queued"; if even that fails, the id not being in the spool says the same.
      await fs.rename(queuedPath, claimedPath).catch(() => undefined);
      throw error;
    }
    // Queued: from here on the file must go before the message may be delivered (see the top).
    knownQueued.add(message.envelope.id);
    parked.set(message.envelope.id, { message, name });
    await deleteQueuedFile(token, message.envelope.id, queuedPath, false);
    if (parked.has(message.envelope.id)) {
      logger.warn('pickup-file-held', {
        file: name,
        queueId: message.envelope.id,
        reason:
          'another program holds the picked-up file; the message is queued and is sent once RelayDesk can delete the file',
      });
    }
  }

  async function toBadmail(
    token: string,
    name: string,
    claimedPath: string,
    { problem, fix }: PickupProblem,
  ): Promise<void> {
    const taken = await stat(join(badmailDir, name)).then(
      () => true,
      () => false,
    );
    const badName = taken ? `${token}.${name}` : name;
    const badPath = join(badmailDir, badName);
    const reason =
      `RelayDesk did not send ${name}, found in the pickup folder ${dir} on ${new Date().toISOString()}.\r\n\r\n` +
      `Problem: ${problem}.\r\n` +
      `Fix: ${fix}.\r\n`;
    // The reason first: a crash before the move leaves the file claimed, and it is judged again.
    await replaceFile(fs, `${badPath}.reason`, reason, 0o644);
    try {
      await fs.rename(claimedPath, badPath);
    } catch (error) {
      // A badmail folder on another volume than the pickup folder.
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      await copyFile(claimedPath, badPath);
      await fs.unlink(claimedPath);
    }
    logger.warn('pickup-badmail', { file: name, badmail: badPath, reason: problem, fix });
  }

  async function stop(): Promise<void> {
    stopped = true;
    if (debounce) clearTimeout(debounce);
    watcher?.close();
    watcher = null;
    wake?.();
    await loop;
  }

  return { start, stop };
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** Whether the body has raw 8-bit bytes: the message is then queued as 8BITMIME, like a device declaring it. */
async function restIsAscii(handle: FileHandle, from: number, size: number): Promise<boolean> {
  for (let offset = from; offset < size;) {
    const chunk = await readAt(handle, offset, Math.min(COPY_CHUNK_BYTES, size - offset));
    if (chunk.length === 0) break;
    if (!isAscii(chunk)) return false;
    offset += chunk.length;
  }
  return true;
}

async function eachLimited<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
}

async function unlinkIfPresent(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
