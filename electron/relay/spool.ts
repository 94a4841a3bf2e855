/**
 * The on-disk spool (docs/spool.md). A message up to 256 KB is appended, with the messages of every
 * other session that completed meanwhile, to the segment log (spool-segments.ts): one fdatasync per
 * batch before any of them hears 250, and its delivery state follows as records in the same log.
 *
 * A larger message (or one whose envelope alone is over 64 KB), and every message a version before
 * the segment log left, keeps a file of its own, `queue/<id>.eml`: one JSON line with the envelope,
 * then the device's bytes exactly as received. It is fsynced (file, then directory) before the
 * client sees 250. Delivery progress lives beside it in `<id>.state.json`, replaced atomically.
 * Files still in `incoming/` after a crash were never acknowledged and are discarded on start.
 *
 * On Windows another program (antivirus, indexer, backup) may hold any of these files for a while:
 * every file operation goes through fs-retry.ts, and what is still refused after its retries is
 * handled here without losing or duplicating a message (see commit, remove).
 */
import { randomFillSync } from 'node:crypto';
import { constants as fsConstants, createReadStream, type ReadStream } from 'node:fs';
import { mkdir, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canSyncDirectory,
  isLocked,
  nodeFileSystem,
  replaceFile,
  retrying,
  retryLocked,
  type FileSystem,
} from '../platform/fs-retry.ts';
import { redactSecrets } from './redact.ts';
import { createSegmentStore, readSegments } from './spool-segments.ts';

export interface EnvelopeClient {
  ip: string;
  port: number;
  helo: string;
  /** `host:port` of the listener that took the message. */
  listener: string;
  tls: boolean;
  /** The LAN AUTH user name, when the device authenticated. */
  authUser: string | null;
}

export interface Envelope {
  id: string;
  receivedAt: number;
  client: EnvelopeClient;
  /** The envelope sender as the device gave it (`''` for the null sender). */
  mailFrom: string;
  rcptTo: string[];
  /** BODY=8BITMIME or SMTPUTF8 were declared. */
  eightBit: boolean;
  smtpUtf8: boolean;
}

export type RecipientStatus = 'pending' | 'delivered' | 'failed';

export interface RecipientState {
  address: string;
  status: RecipientStatus;
  attempts: number;
  firstAttemptAt: number | null;
  lastAttemptAt: number | null;
  /** The upstream's reply (or the network/TLS failure) of the last attempt for this recipient. */
  response: string | null;
}

export interface MessageState {
  /** Earliest time of the next attempt (ms); 0 means now. */
  nextAttemptAt: number;
  attempts: number;
  recipients: RecipientState[];
  /** Diagnosis id of the last failure, for status and the app. */
  lastDiagnosis: string | null;
  lastError: string | null;
}

export interface SpooledMessage {
  envelope: Envelope;
  state: MessageState;
  /** Byte length of the device's message (without the envelope line). */
  size: number;
  /** Where the device's bytes start inside `file`. */
  bodyOffset: number;
  /** The segment holding the message; absent for a message with a file of its own (`queue/<id>.eml`). */
  file?: string;
}

export interface SpoolLoadReport {
  messages: SpooledMessage[];
  discardedIncoming: string[];
  quarantined: { file: string; reason: string }[];
  /** Messages another program held open (Windows): left as they are, loaded at a later start. */
  held: { file: string; code: string }[];
}

const SPOOL_MAGIC = 'RDQ1 ';
const DIRECTORY_HANDLE_IDLE_MS = 2000;
/**
 * The envelope line is read whole, however long: 10,000 recipients (the most `maxRecipients` allows)
 * of up to 256 bytes, JSON-escaped, stay well below this. Beyond it the file is not ours.
 */
const MAX_ENVELOPE_LINE_BYTES = 64 * 1024 * 1024;
/** Beside `<id>.eml`: the message was delivered or deleted, but another program still holds its file. */
const REMOVED_SUFFIX = '.removed';
/** How soon a file another program held is tried again, doubling up to the maximum. */
const REMOVAL_RETRY_MS = { first: 1000, max: 60_000 };
/**
 * Up to this, a message goes to the segment log; beyond it, to a file of its own. A message in the
 * log also keeps an in-memory copy of its bytes until its first delivery attempt, so that attempt
 * reads nothing back from disk (the batch is still fsynced before the 250: the copy only saves
 * reading it again).
 */
const SEGMENT_MESSAGE_MAX_BYTES = 256 * 1024;
/** An envelope over this (thousands of recipients) makes a message go to a file of its own. */
const SEGMENT_ENVELOPE_MAX_BYTES = 64 * 1024;
/** All in-memory copies together stay under this; beyond it (an upstream outage), messages wait on disk only. */
const MEMORY_COPY_BUDGET_BYTES = 16 * 1024 * 1024;
/** Node reports a full disk as ENOSPC, a quota as EDQUOT: both become 452 4.3.1 at the device. */
export const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);

/** Sortable, unique, short: time in base 36 plus 40 random bits, uppercase like Postfix ids. */
/** Random bytes for queue ids, drawn in batches: one system call per 800 messages, not one each. */
const idRandom = Buffer.alloc(4000);
let idRandomOffset = idRandom.length;

export function newMessageId(now = Date.now()): string {
  if (idRandomOffset + 5 > idRandom.length) {
    randomFillSync(idRandom);
    idRandomOffset = 0;
  }
  const random = idRandom.toString('hex', idRandomOffset, idRandomOffset + 5);
  idRandomOffset += 5;
  return (now.toString(36) + random).toUpperCase();
}

/**
 * A stored envelope (a file's first line or a segment record's JSON), checked for what delivery
 * needs; throws, naming `what`, when it is not one of ours.
 */
export function parseEnvelope(json: Buffer, what: string): Envelope {
  const envelope = JSON.parse(json.toString('utf8')) as Envelope;
  if (
    typeof envelope.id !== 'string' ||
    typeof envelope.mailFrom !== 'string' ||
    !Array.isArray(envelope.rcptTo) ||
    envelope.rcptTo.length === 0 ||
    typeof envelope.client?.ip !== 'string'
  ) {
    throw new Error(`${what} is incomplete`);
  }
  return envelope;
}

export function initialState(rcptTo: string[]): MessageState {
  return {
    nextAttemptAt: 0,
    attempts: 0,
    recipients: rcptTo.map((address) => ({
      address,
      status: 'pending',
      attempts: 0,
      firstAttemptAt: null,
      lastAttemptAt: null,
      response: null,
    })),
    lastDiagnosis: null,
    lastError: null,
  };
}

/**
 * Coalesces directory fsyncs: every caller gets a sync that started after its call, and
 * concurrent callers share one. This is what lets many devices commit at once without
 * paying one directory fsync each.
 */
class DirectorySync {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  /** Kept open while syncs keep coming: an open and a close less per message under load. */
  private handle: FileHandle | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly dir: string,
    private readonly fs: FileSystem,
  ) {}

  sync(): Promise<void> {
    if (!canSyncDirectory(this.fs.platform)) return Promise.resolve();
    if (!this.running) {
      this.running = this.syncNow().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    this.next ??= this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    return this.next;
  }

  private startQueued(): Promise<void> {
    this.next = null;
    return this.sync();
  }

  private async syncNow(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.handle ??= await this.fs.open(this.dir, fsConstants.O_RDONLY);
    const handle = this.handle;
    try {
      await handle.sync();
    } catch (error) {
      this.handle = null;
      await handle.close().catch(() => undefined);
      throw error;
    }
    // Closed once the spool is quiet, so an idle relay holds no directory handle.
    this.idleTimer = setTimeout(() => {
      if (this.running || this.handle !== handle) return;
      this.handle = null;
      void handle.close().catch(() => undefined);
    }, DIRECTORY_HANDLE_IDLE_MS);
    this.idleTimer.unref();
  }
}

/**
 * One message being received: bytes go straight to disk; a small message's are also kept in memory
 * for its first delivery attempt (bounded, see MEMORY_COPY_BUDGET_BYTES).
 */
export interface SpoolWriter {
  readonly id: string;
  readonly bytesWritten: number;
  write(chunk: Buffer): Promise<void>;
  /**
   * Makes the message durable (a batch of the segment log, or its own file moved into queue/). After
   * this resolves the message is safe: the device may hear 250. After it rejects the message will not
   * be delivered: the device hears 451.
   */
  commit(): Promise<SpooledMessage>;
  /** Drop a half-received or refused message. Never throws. */
  abort(): Promise<void>;
}

export interface Spool {
  readonly root: string;
  load(): Promise<SpoolLoadReport>;
  begin(envelope: Omit<Envelope, 'id'>): Promise<SpoolWriter>;
  saveState(id: string, state: MessageState): Promise<void>;
  /** The file holding a queued message's bytes, from its `bodyOffset` on (a segment, or its own file). */
  emlPath(id: string): string;
  /** The message's bytes as the device sent them. */
  openBody(message: SpooledMessage, options?: { start?: number; end?: number }): ReadStream;
  /**
   * The message's bytes as the device sent them, when a copy is still in memory (small messages,
   * before their first attempt); null otherwise. The copy is handed over once: a retry reads the file.
   */
  takeMemoryCopy(id: string): Buffer | null;
  remove(id: string): Promise<void>;
  quarantine(id: string, reason: string): Promise<void>;
  /** Makes every record written so far durable and closes the segment (the offline commands call it). */
  close(): Promise<void>;
}

export interface SpoolOptions {
  /** Default: the real file system. Every operation is retried while another program holds the file. */
  fs?: FileSystem;
  /** Size of a new segment file (default 8 MB); the offline commands write a few records only. */
  segmentBytes?: number;
  /**
   * Messages over this go to a file of their own (default 256 KB). 0 sends every message there, as
   * before the segment log: bench/spool-ingest.ts compares the two.
   */
  segmentMessageMaxBytes?: number;
}

export async function createSpool(root: string, options: SpoolOptions = {}): Promise<Spool> {
  const fs = retrying(options.fs ?? nodeFileSystem);
  const incomingDir = join(root, 'incoming');
  const queueDir = join(root, 'queue');
  const quarantineDir = join(root, 'quarantine');
  for (const dir of [incomingDir, queueDir, quarantineDir])
    await mkdir(dir, { recursive: true, mode: 0o700 });
  const segmentMessageMaxBytes = options.segmentMessageMaxBytes ?? SEGMENT_MESSAGE_MAX_BYTES;
  const segments = await createSegmentStore(join(root, 'segments'), {
    fs,
    segmentBytes: options.segmentBytes,
  });
  const queueSync = new DirectorySync(queueDir, fs);
  /** Messages that have a state file: most are delivered at the first try and never get one. */
  const withState = new Set<string>();
  /** In-memory copies of small messages' bytes, until their first delivery attempt takes them. */
  const memoryCopies = new Map<string, Buffer>();
  let memoryCopyBytes = 0;

  function dropMemoryCopy(id: string): Buffer | null {
    const copy = memoryCopies.get(id);
    if (!copy) return null;
    memoryCopies.delete(id);
    memoryCopyBytes -= copy.length;
    return copy;
  }

  const emlPath = (id: string) => segments.fileOf(id) ?? join(queueDir, `${id}.eml`);
  const statePath = (id: string) => join(queueDir, `${id}.state.json`);
  const removedPath = (id: string) => join(queueDir, `${id}${REMOVED_SUFFIX}`);

  /** Removed messages whose files another program still held; tried again in the background. */
  const leftovers = new Set<string>();
  let leftoverTimer: NodeJS.Timeout | null = null;
  let leftoverDelayMs = REMOVAL_RETRY_MS.first;

  function retryLeftoversLater(): void {
    if (leftoverTimer || leftovers.size === 0) return;
    leftoverTimer = setTimeout(() => {
      void removeLeftovers().then(() => {
        leftoverTimer = null;
        leftoverDelayMs =
          leftovers.size === 0 ? REMOVAL_RETRY_MS.first : Math.min(leftoverDelayMs * 2, REMOVAL_RETRY_MS.max);
        retryLeftoversLater();
      });
    }, leftoverDelayMs);
    // A CLI that deleted a message exits anyway: the marker finishes the job at the next start.
    leftoverTimer.unref();
  }

  /** The message's files, the marker last: while the .eml is there, the marker must be too. */
  async function removeFiles(id: string): Promise<void> {
    await unlinkIfPresent(fs, emlPath(id));
    await unlinkIfPresent(fs, statePath(id));
    await unlinkIfPresent(fs, removedPath(id));
  }

  async function removeLeftovers(): Promise<void> {
    for (const id of [...leftovers]) {
      try {
        await removeFiles(id);
        leftovers.delete(id);
      } catch {
        // Still held: the next round tries again.
      }
    }
    await queueSync.sync().catch(() => undefined);
  }

  function keepMemoryCopy(id: string, body: Buffer): void {
    if (memoryCopyBytes + body.length > MEMORY_COPY_BUDGET_BYTES) return;
    memoryCopies.set(id, body);
    memoryCopyBytes += body.length;
  }

  async function begin(partial: Omit<Envelope, 'id'>): Promise<SpoolWriter> {
    const envelope: Envelope = { id: newMessageId(partial.receivedAt), ...partial };
    let bytesWritten = 0;
    /** The device's bytes so far, while the message may still go to the segment log. */
    let received: Buffer[] | null = [];
    /** Its own file, once the message is too large for the log. */
    let own: ReturnType<typeof ownFile> | null = null;

    const toOwnFile = async () => {
      own = ownFile(envelope);
      const kept = received!;
      received = null;
      await own.write(kept);
    };

    return {
      id: envelope.id,
      get bytesWritten() {
        return bytesWritten;
      },
      async write(chunk) {
        bytesWritten += chunk.length;
        if (received) {
          // Kept as received until the commit copies them into the record: the session holds at
          // most 256 KB per message this way, then the file takes over.
          received.push(chunk);
          if (bytesWritten > segmentMessageMaxBytes) await toOwnFile();
          return;
        }
        await own!.write([chunk]);
      },
      async commit() {
        if (
          received &&
          (bytesWritten > segmentMessageMaxBytes ||
            JSON.stringify(envelope).length > SEGMENT_ENVELOPE_MAX_BYTES)
        )
          await toOwnFile();
        if (received) {
          const body = received;
          received = null;
          const committed = await segments.commit(envelope, body);
          keepMemoryCopy(envelope.id, committed.body);
          return committed.message;
        }
        return own!.commit(bytesWritten);
      },
      async abort() {
        received = null;
        await own?.abort();
      },
    };
  }

  /** A message with a file of its own: written to incoming/, then moved into queue/. */
  function ownFile(envelope: Envelope) {
    const header = Buffer.from(`${SPOOL_MAGIC}${JSON.stringify(envelope)}\n`, 'utf8');
    const incomingPath = join(incomingDir, envelope.id);
    // A file that cannot be created fails the write or the commit, so the device gets 452/451, never 250.
    const opening = fs.open(incomingPath, 'wx', 0o600);
    opening.catch(() => undefined);
    let closed = false;
    // The envelope line goes out with the first body bytes: one write less per message.
    let headerPending = true;

    const closeOnce = async () => {
      if (closed) return;
      closed = true;
      await (await opening).close();
    };

    return {
      async write(chunks: Buffer[]) {
        const all = headerPending ? [header, ...chunks] : chunks;
        headerPending = false;
        await writeAll(await opening, all);
      },
      async commit(size: number): Promise<SpooledMessage> {
        const handle = await opening;
        if (headerPending) {
          headerPending = false;
          await writeAll(handle, [header]);
        }
        await handle.sync();
        await closeOnce();
        // The one step that accepts the message: once its file is in queue/, it will be delivered
        // (now or after a restart), so the device must hear 250. Every failure before this leaves
        // queue/ as it was, and the device hears 451 and sends again.
        await fs.rename(incomingPath, emlPath(envelope.id));
        try {
          await queueSync.sync();
        } catch (error) {
          // The move may not survive a power cut, so it is not yet safe to say 250: take the message
          // back out so that the 451 is true. If it cannot be taken back, it is queued, and a 451
          // would bring a second copy from the device: then it counts as accepted.
          const takenBack = await fs.unlink(emlPath(envelope.id)).then(
            () => true,
            () => false,
          );
          if (takenBack) throw error;
        }
        return {
          envelope,
          state: initialState(envelope.rcptTo),
          size,
          bodyOffset: header.length,
        };
      },
      async abort() {
        await closeOnce().catch(() => undefined);
        await fs.unlink(incomingPath).catch(() => undefined);
      },
    };
  }

  async function load(): Promise<SpoolLoadReport> {
    const report: SpoolLoadReport = { messages: [], discardedIncoming: [], quarantined: [], held: [] };
    for (const name of await readdir(incomingDir)) {
      // Never acknowledged. One another program still holds is discarded at a later start.
      const discarded = await retryLocked(() =>
        rm(join(incomingDir, name), { force: true, recursive: true }),
      ).then(
        () => true,
        () => false,
      );
      if (discarded) report.discardedIncoming.push(name);
    }
    const names = await readdir(queueDir);
    const present = new Set(names);
    const stateFiles = new Set(names.filter((n) => n.endsWith('.state.json')));
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        await unlinkIfPresent(fs, join(queueDir, name)).catch(() => undefined);
        continue;
      }
      if (name.endsWith(REMOVED_SUFFIX)) {
        leftovers.add(name.slice(0, -REMOVED_SUFFIX.length));
        continue;
      }
      if (!name.endsWith('.eml')) continue;
      const id = name.slice(0, -'.eml'.length);
      // Delivered or deleted before the last stop; another program held the file then.
      if (present.has(`${id}${REMOVED_SUFFIX}`)) continue;
      try {
        const message = await readSpooled(
          fs,
          emlPath(id),
          stateFiles.has(`${id}.state.json`) ? statePath(id) : null,
        );
        report.messages.push(message);
        if (stateFiles.has(`${id}.state.json`)) withState.add(id);
      } catch (error) {
        // Not damaged, only unreadable for now: quarantining it would lose an acknowledged message,
        // and starting over without its state would send again to recipients already delivered.
        if (isLocked(error)) {
          report.held.push({ file: name, code: (error as NodeJS.ErrnoException).code! });
          continue;
        }
        const reason = (error as Error).message;
        // A file another program holds is moved at a later start; meanwhile it is not delivered.
        const moved = await quarantine(id, reason).then(
          () => '',
          (moveError: NodeJS.ErrnoException) => ` (not moved yet: ${moveError.code ?? moveError.message})`,
        );
        report.quarantined.push({ file: name, reason: reason + moved });
      }
    }
    for (const stateName of stateFiles) {
      const id = stateName.slice(0, -'.state.json'.length);
      if (!present.has(`${id}.eml`))
        await unlinkIfPresent(fs, join(queueDir, stateName)).catch(() => undefined);
    }
    await removeLeftovers();
    retryLeftoversLater();
    const logged = await segments.load();
    report.messages.push(...logged.messages);
    report.held.push(...logged.held);
    // A damaged batch in the middle of a segment (a bad disk, not a crash) cannot be moved aside like
    // a file: its records are skipped, and the admin is told which segment to look at.
    report.quarantined.push(...logged.damaged);
    report.messages.sort((a, b) => a.envelope.receivedAt - b.envelope.receivedAt);
    return report;
  }

  async function saveState(id: string, state: MessageState): Promise<void> {
    if (segments.has(id)) return segments.saveState(id, state);
    await replaceFile(fs, statePath(id), redactSecrets(JSON.stringify(state)));
    withState.add(id);
    await queueSync.sync();
  }

  async function remove(id: string): Promise<void> {
    dropMemoryCopy(id);
    if (segments.has(id)) return segments.remove(id);
    // (unlink, not rm: rm stats first.) Until the file is gone, a crash means sending the delivered
    // message again; the queue announces the delivery only after this resolves. The message first:
    // a crash between the two leaves an orphan state file (dropped at start), never a message
    // without its state (which would send again to recipients already delivered).
    try {
      await unlinkIfPresent(fs, emlPath(id));
      if (withState.delete(id)) await unlinkIfPresent(fs, statePath(id));
    } catch (error) {
      // Another program still holds a file after the retries (Windows). A marker beside it says the
      // message is done, so no start delivers it again; the files go once the program lets go.
      leftovers.add(id);
      retryLeftoversLater();
      await replaceFile(fs, removedPath(id), '').catch(() => {
        throw error;
      });
    }
    await queueSync.sync();
  }

  /** Throws when a file cannot be moved (another program holds it); the message is then left where it is. */
  async function quarantine(id: string, _reason: string): Promise<void> {
    dropMemoryCopy(id);
    if (segments.has(id)) {
      // Out of the log into a file of its own, in the format of queue/, which an admin can look into.
      const { envelope, body } = await segments.readMessage(id);
      const header = Buffer.from(`${SPOOL_MAGIC}${JSON.stringify(envelope)}\n`, 'utf8');
      await replaceFile(fs, join(quarantineDir, `${id}.eml`), Buffer.concat([header, body]));
      await segments.remove(id);
      return;
    }
    withState.delete(id);
    for (const suffix of ['.eml', '.state.json']) {
      await fs.rename(join(queueDir, id + suffix), join(quarantineDir, id + suffix)).catch((error) => {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      });
    }
    await queueSync.sync();
  }

  return {
    root,
    load,
    begin,
    saveState,
    remove,
    quarantine,
    emlPath,
    takeMemoryCopy: dropMemoryCopy,
    close: () => segments.close(),
    openBody(message, options = {}) {
      const start = message.bodyOffset + (options.start ?? 0);
      // Always bounded: an open-ended stream reads in full 256 KB buffers even for a 10 KB message.
      // (At the end of the file `start` may pass the last byte; reading there gives nothing.)
      const end =
        options.end === undefined
          ? Math.max(start, message.bodyOffset + message.size - 1)
          : message.bodyOffset + options.end - 1;
      return createReadStream(message.file ?? emlPath(message.envelope.id), {
        start,
        end,
        highWaterMark: 256 * 1024,
      });
    },
  };
}

/**
 * Reads the queue without changing anything (no discarding, no quarantine): for `status` and
 * `queue list` while no relay is running. Damaged files are skipped.
 */
export async function inspectSpool(root: string): Promise<SpooledMessage[]> {
  const queueDir = join(root, 'queue');
  let names: string[];
  try {
    names = await readdir(queueDir);
  } catch {
    names = [];
  }
  const messages: SpooledMessage[] = [
    ...(await readSegments(join(root, 'segments'), nodeFileSystem)).entries.values(),
  ].map((entry) => entry.message);
  const present = new Set(names);
  for (const name of names.filter((n) => n.endsWith('.eml'))) {
    const id = name.slice(0, -'.eml'.length);
    if (present.has(`${id}${REMOVED_SUFFIX}`)) continue;
    const stateName = `${id}.state.json`;
    try {
      messages.push(
        await readSpooled(
          nodeFileSystem,
          join(queueDir, name),
          present.has(stateName) ? join(queueDir, stateName) : null,
        ),
      );
    } catch {
      // Quarantined by the relay when it next starts.
    }
  }
  return messages.sort((a, b) => a.envelope.receivedAt - b.envelope.receivedAt);
}

/** A write refused by a lock (another program's byte-range lock) writes nothing, so it is tried again. */
async function writeAll(handle: FileHandle, chunks: Buffer[]): Promise<void> {
  let { bytesWritten: done } = await retryLocked(() => handle.writev(chunks));
  // A short write (rare on a file) is finished chunk by chunk.
  for (const chunk of chunks) {
    let offset = Math.min(done, chunk.length);
    done -= offset;
    while (offset < chunk.length) {
      const { bytesWritten } = await retryLocked(() => handle.write(chunk, offset, chunk.length - offset));
      offset += bytesWritten;
    }
  }
}

async function unlinkIfPresent(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** The file's first line, without its LF, however long it is (up to MAX_ENVELOPE_LINE_BYTES). */
async function readEnvelopeLine(handle: FileHandle, fileSize: number): Promise<Buffer> {
  const limit = Math.min(fileSize, MAX_ENVELOPE_LINE_BYTES + 1);
  let head = Buffer.alloc(Math.min(limit, 64 * 1024));
  let filled = 0;
  while (filled < limit) {
    if (filled === head.length) head = Buffer.concat([head], Math.min(limit, head.length * 4));
    const { bytesRead } = await handle.read(head, filled, head.length - filled, filled);
    if (bytesRead === 0) break;
    const newline = head.subarray(0, filled + bytesRead).indexOf(0x0a, filled);
    filled += bytesRead;
    if (newline >= 0) return head.subarray(0, newline);
  }
  throw new Error('no envelope line at the start of the file');
}

/** Reads and checks a spooled message; throws with a reason when it is damaged. */
async function readSpooled(
  fs: FileSystem,
  emlFile: string,
  stateFile: string | null,
): Promise<SpooledMessage> {
  const handle = await fs.open(emlFile, 'r');
  let envelope: Envelope;
  let bodyOffset: number;
  let size: number;
  try {
    const { size: fileSize } = await handle.stat();
    const line = await readEnvelopeLine(handle, fileSize);
    if (!line.subarray(0, SPOOL_MAGIC.length).equals(Buffer.from(SPOOL_MAGIC))) {
      throw new Error('no envelope line at the start of the file');
    }
    const newline = line.length;
    envelope = parseEnvelope(line.subarray(SPOOL_MAGIC.length), 'the envelope line');
    bodyOffset = newline + 1;
    size = fileSize - bodyOffset;
  } finally {
    await handle.close();
  }
  let state = initialState(envelope.rcptTo);
  if (stateFile) {
    const stateHandle = await fs.open(stateFile, 'r');
    try {
      const parsed = JSON.parse(await stateHandle.readFile('utf8')) as MessageState;
      if (Array.isArray(parsed.recipients) && parsed.recipients.length === envelope.rcptTo.length)
        state = parsed;
    } catch {
      // A torn state file only loses delivery progress; the message itself is intact, so start over.
    } finally {
      await stateHandle.close();
    }
  }
  return { envelope, state, size, bodyOffset };
}
