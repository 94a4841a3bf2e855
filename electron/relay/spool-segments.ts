/**
 * The spool's messages that live in the segment log (segment-log.ts, docs/spool.md): every message up
 * to 256 KB. Which segment holds which message, the delivery state of each, when a segment can go
 * (every message in it done; oldest first, so that a `done` record never goes before the message it
 * cancels) and when one is compacted (a few messages a held queue keeps waiting pin an old segment:
 * they are copied forward and the segment goes).
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileSystem } from '../platform/fs-retry.ts';
import { redactSecrets } from './redact.ts';
import {
  decodeRecord,
  encodeRecord,
  RECORD_HEADER_BYTES,
  scanSegment,
  SegmentWriter,
  segmentName,
  segmentSeq,
  syncDirectory,
} from './segment-log.ts';
import {
  initialState,
  parseEnvelope,
  type Envelope,
  type MessageState,
  type SpooledMessage,
} from './spool.ts';

/** Compaction starts when this many full segments wait to be reclaimed... */
const COMPACT_AFTER_SEGMENTS = 4;
/** ...and the oldest of them holds at most this share of its size in messages still waiting. */
const COMPACT_LIVE_SHARE = 0.25;
/** How soon a segment another program held is tried again, doubling up to the maximum (Windows). */
const RECLAIM_RETRY_MS = { first: 1000, max: 60_000 };
/** Before the envelope JSON in a message record: its byte length. */
const ENVELOPE_LENGTH_BYTES = 4;

interface Entry {
  message: SpooledMessage;
  seq: number;
  /** Where the message record starts in its segment, and its length (header and payload). */
  offset: number;
  length: number;
}

interface Segment {
  file: string;
  /** False when another program held the file at start: it and every later segment stay. */
  readable: boolean;
  /** Messages whose record is in this segment and that are not done yet. */
  live: Set<string>;
  liveBytes: number;
}

export interface SegmentLoad {
  messages: SpooledMessage[];
  held: { file: string; code: string }[];
  damaged: { file: string; reason: string }[];
}

export interface SegmentStore {
  has(id: string): boolean;
  /** The file holding the message's bytes (at its bodyOffset). */
  fileOf(id: string): string | undefined;
  /** Resolves once the message is on stable storage; its bytes are `body`. */
  commit(envelope: Envelope, body: Buffer[]): Promise<{ message: SpooledMessage; body: Buffer }>;
  saveState(id: string, state: MessageState): Promise<void>;
  /** Writes the message's `done` record; the process may crash after this, a power cut may repeat it. */
  remove(id: string): Promise<void>;
  /** The message's envelope and bytes, for quarantine. */
  readMessage(id: string): Promise<{ envelope: Envelope; body: Buffer }>;
  load(): Promise<SegmentLoad>;
  close(): Promise<void>;
}

export function envelopeRecord(envelope: Envelope, body: Buffer[]): { record: Buffer; bodyStart: number } {
  const json = Buffer.from(JSON.stringify(envelope), 'utf8');
  const length = Buffer.alloc(ENVELOPE_LENGTH_BYTES);
  length.writeUInt32LE(json.length);
  return {
    record: encodeRecord('message', [length, json, ...body]),
    bodyStart: RECORD_HEADER_BYTES + ENVELOPE_LENGTH_BYTES + json.length,
  };
}

const idRecord = (type: 'done', id: string) =>
  encodeRecord(type, Buffer.from(JSON.stringify({ id }), 'utf8'));
const stateRecord = (id: string, state: MessageState) =>
  encodeRecord('state', Buffer.from(redactSecrets(JSON.stringify({ id, state })), 'utf8'));

/** A message record's envelope and where its body is; throws when the envelope is not ours. */
function decodeMessage(
  payload: Buffer,
  recordOffset: number,
): { envelope: Envelope; bodyOffset: number; size: number } {
  const jsonLength = payload.readUInt32LE(0);
  const envelope = parseEnvelope(
    payload.subarray(ENVELOPE_LENGTH_BYTES, ENVELOPE_LENGTH_BYTES + jsonLength),
    'the envelope',
  );
  const bodyStart = ENVELOPE_LENGTH_BYTES + jsonLength;
  return {
    envelope,
    bodyOffset: recordOffset + RECORD_HEADER_BYTES + bodyStart,
    size: payload.length - bodyStart,
  };
}

interface SegmentRead {
  entries: Map<string, Entry>;
  segments: Map<number, Segment>;
  held: { file: string; code: string }[];
  damaged: { file: string; reason: string }[];
}

/**
 * Reads every segment, oldest first, and replays its records: what is left is the queue. Never
 * writes: a second process (`queue list` while the relay runs) may call it at any time; a batch being
 * written then is simply not complete yet and not counted.
 */
export async function readSegments(dir: string, fs: FileSystem): Promise<SegmentRead> {
  const result: SegmentRead = { entries: new Map(), segments: new Map(), held: [], damaged: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return result;
  }
  const seqs = names
    .map((name) => segmentSeq(name))
    .filter((seq): seq is number => seq !== null)
    .sort((a, b) => a - b);
  for (const seq of seqs) {
    const name = segmentName(seq);
    const file = join(dir, name);
    const segment: Segment = { file, readable: true, live: new Set(), liveBytes: 0 };
    result.segments.set(seq, segment);
    let data: Buffer;
    try {
      const handle = await fs.open(file, 'r');
      try {
        data = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (error) {
      // Reclaimed by the relay meanwhile (a reader in another process): nothing of it is waiting.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        result.segments.delete(seq);
        continue;
      }
      segment.readable = false;
      result.held.push({ file: name, code: (error as NodeJS.ErrnoException).code ?? 'EIO' });
      continue;
    }
    const scan = scanSegment(data, seq);
    if (scan.damagedBatches.length > 0) {
      result.damaged.push({
        file: name,
        reason: `damaged batch(es) at offset ${scan.damagedBatches.join(', ')}: their records do not match their CRC`,
      });
    }
    for (const record of scan.records) {
      try {
        if (record.type === 'message') {
          const decoded = decodeMessage(record.payload, record.offset);
          const id = decoded.envelope.id;
          const earlier = result.entries.get(id);
          // A second record of the same message is a compaction's copy: the copy is where it lives now.
          if (earlier) forget(result, id);
          const message: SpooledMessage = {
            envelope: decoded.envelope,
            state: earlier?.message.state ?? initialState(decoded.envelope.rcptTo),
            size: decoded.size,
            bodyOffset: decoded.bodyOffset,
            file,
          };
          result.entries.set(id, { message, seq, offset: record.offset, length: record.length });
          segment.live.add(id);
          segment.liveBytes += record.length;
        } else {
          const parsed = JSON.parse(record.payload.toString('utf8')) as { id: string; state?: MessageState };
          const entry = result.entries.get(parsed.id);
          if (!entry) continue;
          if (record.type === 'done') forget(result, parsed.id);
          else if (parsed.state?.recipients?.length === entry.message.envelope.rcptTo.length)
            entry.message.state = parsed.state;
        }
      } catch (error) {
        result.damaged.push({
          file: name,
          reason: `record at offset ${record.offset}: ${(error as Error).message}`,
        });
      }
    }
  }
  return result;
}

function forget(read: { entries: Map<string, Entry>; segments: Map<number, Segment> }, id: string): void {
  const entry = read.entries.get(id);
  if (!entry) return;
  read.entries.delete(id);
  const segment = read.segments.get(entry.seq);
  if (segment?.live.delete(id)) segment.liveBytes -= entry.length;
}

export interface SegmentStoreOptions {
  fs: FileSystem;
  segmentBytes?: number;
}

export async function createSegmentStore(dir: string, options: SegmentStoreOptions): Promise<SegmentStore> {
  const { fs } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = (await readdir(dir)).map((name) => segmentSeq(name) ?? 0);
  const state: { entries: Map<string, Entry>; segments: Map<number, Segment> } = {
    entries: new Map(),
    segments: new Map(),
  };
  /** Until load() has read every segment, nothing is reclaimed (the offline commands never load). */
  let loaded = false;
  const writer = new SegmentWriter({
    dir,
    fs,
    firstSeq: Math.max(0, ...existing) + 1,
    segmentBytes: options.segmentBytes,
    created(seq, file) {
      state.segments.set(seq, { file, readable: true, live: new Set(), liveBytes: 0 });
    },
  });

  let reclaiming = false;
  let reclaimAgain = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let retryDelayMs = RECLAIM_RETRY_MS.first;

  /** A segment another program held: deleted in the background once it lets go, even if no mail comes. */
  function reclaimLater(): void {
    if (retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      retryDelayMs = Math.min(retryDelayMs * 2, RECLAIM_RETRY_MS.max);
      scheduleReclaim();
    }, retryDelayMs);
    retryTimer.unref();
  }
  function scheduleReclaim(): void {
    if (!loaded) return;
    if (reclaiming) {
      reclaimAgain = true;
      return;
    }
    reclaiming = true;
    setImmediate(() => {
      void reclaim().finally(() => {
        reclaiming = false;
        if (reclaimAgain) {
          reclaimAgain = false;
          scheduleReclaim();
        }
      });
    });
  }

  const sealedSeqs = () =>
    [...state.segments.keys()].filter((seq) => seq < writer.lowestUnsealedSeq).sort((a, b) => a - b);

  /**
   * Oldest first, and only while every message in the segment is done: a `done` record can only be
   * in the segment of its message or a later one, so it goes with or after the message it cancels.
   */
  async function reclaim(): Promise<void> {
    let removed = false;
    for (const seq of sealedSeqs()) {
      const segment = state.segments.get(seq)!;
      if (!segment.readable || segment.live.size > 0) break;
      try {
        await fs.unlink(segment.file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          // Another program holds it past fs-retry's retries (Windows): it and the later ones wait.
          reclaimLater();
          break;
        }
      }
      retryDelayMs = RECLAIM_RETRY_MS.first;
      state.segments.delete(seq);
      removed = true;
    }
    // A reclaimed segment that came back after a power cut would bring its messages back.
    if (removed) await syncDirectory(fs, dir).catch(() => undefined);
    await compact().catch(() => undefined);
  }

  /** Copies the few messages still waiting in the oldest full segment forward, so that it can go. */
  async function compact(): Promise<void> {
    const sealed = sealedSeqs();
    if (sealed.length < COMPACT_AFTER_SEGMENTS) return;
    const oldest = state.segments.get(sealed[0]!)!;
    if (!oldest.readable || oldest.live.size === 0) return;
    if (oldest.liveBytes > writer.segmentBytes * COMPACT_LIVE_SHARE) return;
    const copies: { id: string; entry: Entry; record: Buffer }[] = [];
    const handle = await fs.open(oldest.file, 'r');
    try {
      for (const id of oldest.live) {
        const entry = state.entries.get(id)!;
        const record = Buffer.alloc(entry.length);
        await handle.read(record, 0, entry.length, entry.offset);
        if (!decodeRecord(record, 0))
          throw new Error(`record of ${id} in ${oldest.file} no longer matches its CRC`);
        copies.push({ id, entry, record });
      }
    } finally {
      await handle.close();
    }
    // Decided and queued in one step: a message delivered meanwhile is not copied (its `done` record
    // would come before the copy and the copy would bring it back).
    const moving = copies.filter((c) => state.entries.get(c.id) === c.entry);
    if (moving.length === 0) return;
    const locations = await writer.append(
      moving.flatMap((c) => [c.record, stateRecord(c.id, c.entry.message.state)]),
      true,
    );
    moving.forEach((copy, i) => {
      if (state.entries.get(copy.id) !== copy.entry) return;
      const location = locations[i * 2]!;
      const { entry } = copy;
      oldest.live.delete(copy.id);
      oldest.liveBytes -= entry.length;
      const target = state.segments.get(location.seq)!;
      target.live.add(copy.id);
      target.liveBytes += entry.length;
      entry.message.bodyOffset += location.offset - entry.offset;
      entry.message.file = location.file;
      entry.seq = location.seq;
      entry.offset = location.offset;
    });
    scheduleReclaim();
  }

  return {
    has: (id) => state.entries.has(id),
    fileOf: (id) => state.entries.get(id)?.message.file,
    async commit(envelope, body) {
      const { record, bodyStart } = envelopeRecord(envelope, body);
      let location;
      try {
        [location] = await writer.append([record], true);
      } catch (error) {
        // The record may still reach the disk: a `done` after it keeps a message the device was told
        // 451 about from being delivered after a restart. If even that cannot be written, the device
        // sends again and a copy may go out twice: never one lost.
        await writer.append([idRecord('done', envelope.id)], true).catch(() => undefined);
        throw error;
      }
      const message: SpooledMessage = {
        envelope,
        state: initialState(envelope.rcptTo),
        size: record.length - bodyStart,
        bodyOffset: location!.offset + bodyStart,
        file: location!.file,
      };
      state.entries.set(envelope.id, {
        message,
        seq: location!.seq,
        offset: location!.offset,
        length: record.length,
      });
      const segment = state.segments.get(location!.seq)!;
      segment.live.add(envelope.id);
      segment.liveBytes += record.length;
      return { message, body: record.subarray(bodyStart) };
    },
    async saveState(id, messageState) {
      // The offline commands hand in a new object; a compaction copies whatever is current.
      const entry = state.entries.get(id);
      if (entry) entry.message.state = messageState;
      await writer.append([stateRecord(id, messageState)], false);
    },
    async remove(id) {
      forget(state, id);
      await writer.append([idRecord('done', id)], false);
      scheduleReclaim();
    },
    async readMessage(id) {
      const entry = state.entries.get(id);
      if (!entry) throw new Error(`no message ${id} in the segments`);
      const handle = await fs.open(entry.message.file!, 'r');
      try {
        const body = Buffer.alloc(entry.message.size);
        await handle.read(body, 0, body.length, entry.message.bodyOffset);
        return { envelope: entry.message.envelope, body };
      } finally {
        await handle.close();
      }
    },
    async load() {
      const read = await readSegments(dir, fs);
      for (const [seq, segment] of read.segments) state.segments.set(seq, segment);
      for (const [id, entry] of read.entries) state.entries.set(id, entry);
      loaded = true;
      scheduleReclaim();
      return {
        messages: [...read.entries.values()].map((e) => e.message),
        held: read.held,
        damaged: read.damaged,
      };
    },
    close: async () => {
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
      loaded = false;
      await writer.close();
    },
  };
}
