/**
 * The segment log under the spool (docs/spool.md): records of every session appended to preallocated,
 * zero-filled segment files, written in batches. A batch is whatever was appended while the previous
 * batch was being written; it starts on a 4 KB boundary, is written with one positioned write and,
 * when any of its records needs it, made durable with one fdatasync. A later batch never touches a
 * block of an earlier one, so a torn write can only damage the batch being written, which nobody was
 * told about yet.
 *
 * Layout (little-endian):
 *   batch header, 24 bytes: magic 'RDB1', segment sequence, records' byte length, record count,
 *     CRC-32 of the records, CRC-32 of the header's first 20 bytes;
 *   records, back to back: magic 'RDR1', type (1 message, 2 state, 3 done), 3 zero bytes, payload
 *     length, CRC-32 of the header's first 12 bytes and the payload; then the payload.
 */
import { constants as fsConstants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { canSyncDirectory, retryLocked, type FileSystem } from '../platform/fs-retry.ts';

export const BLOCK_BYTES = 4096;
/** 8 MB: about 750 messages of 10 KB; small enough that one held message pins little. */
export const SEGMENT_BYTES = 8 * 1024 * 1024;
export const BATCH_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 16;
const BATCH_MAGIC = 0x31424452; // 'RDB1' as little-endian bytes
const RECORD_MAGIC = 0x31524452; // 'RDR1'
const SEGMENT_SUFFIX = '.seg';
const ZEROS = Buffer.alloc(1024 * 1024);

export type RecordType = 'message' | 'state' | 'done';
const TYPE_CODE: Record<RecordType, number> = { message: 1, state: 2, done: 3 };
const TYPE_OF: Record<number, RecordType> = { 1: 'message', 2: 'state', 3: 'done' };

export function segmentName(seq: number): string {
  return `${seq.toString(16).toUpperCase().padStart(8, '0')}${SEGMENT_SUFFIX}`;
}

/** The sequence number of a segment file name, or null for any other file. */
export function segmentSeq(name: string): number | null {
  const match = /^([0-9A-F]{8})\.seg$/.exec(name);
  return match ? Number.parseInt(match[1]!, 16) : null;
}

export function alignToBlock(offset: number): number {
  return Math.ceil(offset / BLOCK_BYTES) * BLOCK_BYTES;
}

export function encodeRecord(type: RecordType, payload: Buffer | Buffer[]): Buffer {
  const parts = Array.isArray(payload) ? payload : [payload];
  const length = parts.reduce((sum, p) => sum + p.length, 0);
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + length);
  record.writeUInt32LE(RECORD_MAGIC, 0);
  record.writeUInt32LE(TYPE_CODE[type], 4);
  record.writeUInt32LE(length, 8);
  let offset = RECORD_HEADER_BYTES;
  for (const part of parts) offset += part.copy(record, offset);
  record.writeUInt32LE(crc32(record.subarray(RECORD_HEADER_BYTES), crc32(record.subarray(0, 12))), 12);
  return record;
}

export function encodeBatchHeader(seq: number, records: Buffer[]): Buffer {
  let crc = 0;
  let length = 0;
  for (const record of records) {
    crc = crc32(record, crc);
    length += record.length;
  }
  const header = Buffer.alloc(BATCH_HEADER_BYTES);
  header.writeUInt32LE(BATCH_MAGIC, 0);
  header.writeUInt32LE(seq, 4);
  header.writeUInt32LE(length, 8);
  header.writeUInt32LE(records.length, 12);
  header.writeUInt32LE(crc, 16);
  header.writeUInt32LE(crc32(header.subarray(0, 20)), 20);
  return header;
}

export interface ScannedRecord {
  type: RecordType;
  /** Where the record starts in the segment file. */
  offset: number;
  /** Header and payload. */
  length: number;
  payload: Buffer;
}

export interface SegmentScan {
  records: ScannedRecord[];
  /** Batches whose records did not match their CRC although a valid batch follows them: damage, not a torn tail. */
  damagedBatches: number[];
  /** Where the valid part ends (the next batch of this segment would have started at this block). */
  end: number;
}

/** Decodes one record at `offset` of `data`; null when it is not a whole, intact record. */
export function decodeRecord(data: Buffer, offset: number, limit = data.length): ScannedRecord | null {
  if (offset + RECORD_HEADER_BYTES > limit) return null;
  if (data.readUInt32LE(offset) !== RECORD_MAGIC) return null;
  const type = TYPE_OF[data.readUInt32LE(offset + 4)];
  const length = data.readUInt32LE(offset + 8);
  if (!type || offset + RECORD_HEADER_BYTES + length > limit) return null;
  const payload = data.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + length);
  if (crc32(payload, crc32(data.subarray(offset, offset + 12))) !== data.readUInt32LE(offset + 12))
    return null;
  return { type, offset, length: RECORD_HEADER_BYTES + length, payload };
}

/**
 * The records of a segment, batch by batch from the start. The log ends at the first block that does
 * not hold a valid batch header of this segment (zeros, or a torn first block). A batch whose header
 * is intact but whose records are not is skipped whole: that is the torn tail of the last write, or,
 * if a valid batch follows it, damage that is reported.
 */
export function scanSegment(data: Buffer, seq: number): SegmentScan {
  const records: ScannedRecord[] = [];
  const skipped: number[] = [];
  const damagedBatches: number[] = [];
  let position = 0;
  let end = 0;
  while (position + BATCH_HEADER_BYTES <= data.length) {
    const header = data.subarray(position, position + BATCH_HEADER_BYTES);
    if (
      header.readUInt32LE(0) !== BATCH_MAGIC ||
      header.readUInt32LE(4) !== seq ||
      crc32(header.subarray(0, 20)) !== header.readUInt32LE(20)
    ) {
      break;
    }
    const start = position + BATCH_HEADER_BYTES;
    const length = header.readUInt32LE(8);
    const count = header.readUInt32LE(12);
    const next = alignToBlock(start + length);
    const whole =
      start + length <= data.length &&
      crc32(data.subarray(start, start + length)) === header.readUInt32LE(16);
    const batch: ScannedRecord[] = [];
    for (let offset = start; whole && offset < start + length;) {
      const record = decodeRecord(data, offset, start + length);
      if (!record) break;
      batch.push(record);
      offset += record.length;
    }
    if (whole && batch.length === count) {
      damagedBatches.push(...skipped);
      skipped.length = 0;
      records.push(...batch);
      end = next;
    } else {
      skipped.push(position);
    }
    position = next;
  }
  return { records, damagedBatches, end };
}

/** Where an appended record landed. */
export interface LogLocation {
  seq: number;
  file: string;
  offset: number;
}

interface Pending {
  records: Buffer[];
  sync: boolean;
  resolve(locations: LogLocation[]): void;
  reject(error: unknown): void;
}

interface OpenSegment {
  seq: number;
  file: string;
  handle: FileHandle;
  /** Where the next batch starts: always a block boundary. */
  position: number;
}

export interface SegmentWriterOptions {
  dir: string;
  fs: FileSystem;
  /** The first segment this writer creates: after every segment already on disk. */
  firstSeq: number;
  segmentBytes?: number;
  /** A segment was created (before any record is written to it). */
  created?(seq: number, file: string): void;
}

/**
 * Appends batches to the newest segment. One writer per process: a restarted spool starts a new
 * segment rather than appending after a tail it cannot vouch for.
 */
export class SegmentWriter {
  readonly segmentBytes: number;
  private pending: Pending[] = [];
  private running = false;
  private current: OpenSegment | null = null;
  /** The next segment, zero-filled in the background while the current one fills. */
  private spare: Promise<OpenSegment> | null = null;
  /** Segments filled during the batch being written: closed once that batch is synced. */
  private retired: OpenSegment[] = [];
  private nextSeq: number;
  private closed = false;

  constructor(private readonly options: SegmentWriterOptions) {
    this.segmentBytes = options.segmentBytes ?? SEGMENT_BYTES;
    this.nextSeq = options.firstSeq;
  }

  /** The segment being written, which is never reclaimed. */
  get currentSeq(): number | null {
    return this.current?.seq ?? null;
  }

  /** The sequence number the next created segment gets: segments at or above it are not reclaimed. */
  get lowestUnsealedSeq(): number {
    return this.current?.seq ?? this.nextSeq;
  }

  /**
   * Appends records in the next batch. With `sync`, resolves once they are on stable storage; without,
   * once they are written (a crash of the process keeps them, a power cut may not).
   */
  append(records: Buffer[], sync: boolean): Promise<LogLocation[]> {
    if (this.closed) return Promise.reject(new Error('the spool is closed'));
    const largest = BATCH_HEADER_BYTES + records.reduce((sum, r) => sum + r.length, 0);
    if (largest > this.segmentBytes) return Promise.reject(new Error('records larger than a segment'));
    return new Promise((resolve, reject) => {
      this.pending.push({ records, sync, resolve, reject });
      if (!this.running) void this.pump();
    });
  }

  /** Writes what is pending, makes it durable, and closes the files. */
  async close(): Promise<void> {
    await this.append([], true).catch(() => undefined);
    this.closed = true;
    const current = this.current;
    this.current = null;
    // Records written without a sync (states, deliveries) are made durable too.
    await current?.handle.datasync().catch(() => undefined);
    await current?.handle.close().catch(() => undefined);
    const spare = this.spare;
    this.spare = null;
    await spare?.then((s) => s.handle.close()).catch(() => undefined);
  }

  private async pump(): Promise<void> {
    this.running = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      try {
        const locations = await this.writeBatch(batch);
        batch.forEach((item, i) => item.resolve(locations[i]!));
      } catch (error) {
        // What this write left behind cannot be vouched for: later batches go to a new segment.
        const abandoned = this.current;
        this.current = null;
        void abandoned?.handle.close().catch(() => undefined);
        for (const item of batch) item.reject(error);
      }
    }
    this.running = false;
  }

  private async writeBatch(batch: Pending[]): Promise<LogLocation[][]> {
    if (batch.every((item) => item.records.length === 0)) {
      // Only close() waiting for what came before: no segment is created for nothing.
      if (this.current && batch.some((item) => item.sync)) await this.current.handle.datasync();
      return batch.map(() => []);
    }
    const locations: LogLocation[][] = [];
    const touched = new Set<OpenSegment>();
    let records: Buffer[] = [];
    let bytes = BATCH_HEADER_BYTES;
    let segment = await this.segmentWithRoom(0);
    const flush = async () => {
      if (records.length === 0) return;
      const header = encodeBatchHeader(segment.seq, records);
      const at = segment.position;
      await writeAllAt(segment.handle, [header, ...records], at);
      segment.position = alignToBlock(at + bytes);
      touched.add(segment);
      records = [];
      bytes = BATCH_HEADER_BYTES;
    };
    for (const item of batch) {
      const itemBytes = item.records.reduce((sum, r) => sum + r.length, 0);
      if (segment.position + bytes + itemBytes > this.segmentBytes) {
        await flush();
        segment = await this.segmentWithRoom(BATCH_HEADER_BYTES + itemBytes);
      }
      const here: LogLocation[] = [];
      let offset = segment.position + bytes;
      for (const record of item.records) {
        here.push({ seq: segment.seq, file: segment.file, offset });
        offset += record.length;
      }
      locations.push(here);
      records.push(...item.records);
      bytes += itemBytes;
    }
    try {
      await flush();
      if (batch.some((item) => item.sync)) {
        for (const written of touched) await written.handle.datasync();
      }
    } finally {
      for (const full of this.retired.splice(0)) await full.handle.close().catch(() => undefined);
    }
    return locations;
  }

  /** The current segment if `bytes` more fit in it, else the next one (the full one is closed). */
  private async segmentWithRoom(bytes: number): Promise<OpenSegment> {
    if (this.current && this.current.position + Math.max(bytes, BATCH_HEADER_BYTES) <= this.segmentBytes)
      return this.current;
    // Its last batch is synced with the batch that needed the room (or was written without a sync).
    if (this.current) this.retired.push(this.current);
    this.current = null;
    const next = this.spare ?? this.createSegment();
    this.spare = null;
    try {
      this.current = await next;
    } catch {
      // A spare that could not be made (a full disk then): try once more now, and fail the batch if not.
      this.current = await this.createSegment();
    }
    const spare = this.createSegment();
    spare.catch(() => undefined);
    this.spare = spare;
    return this.current;
  }

  /** A new segment, zero-filled to its full size, durable (data and name) before it is used. */
  private async createSegment(): Promise<OpenSegment> {
    const seq = this.nextSeq;
    this.nextSeq += 1;
    const file = join(this.options.dir, segmentName(seq));
    const handle = await this.options.fs.open(file, 'wx+', 0o600);
    try {
      // Written, not only extended: the blocks are allocated now, so each batch's fdatasync later
      // flushes data only, never the file system's allocation metadata.
      for (let offset = 0; offset < this.segmentBytes; offset += ZEROS.length) {
        const length = Math.min(ZEROS.length, this.segmentBytes - offset);
        await writeAllAt(handle, [ZEROS.subarray(0, length)], offset);
      }
      await handle.sync();
      await syncDirectory(this.options.fs, this.options.dir);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await this.options.fs.unlink(file).catch(() => undefined);
      throw error;
    }
    this.options.created?.(seq, file);
    return { seq, file, handle, position: 0 };
  }
}

/** Writes every byte at `position`; a write refused by another program's lock is tried again (fs-retry). */
async function writeAllAt(handle: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let remaining = chunks.filter((c) => c.length > 0);
  let at = position;
  while (remaining.length > 0) {
    let { bytesWritten } = await retryLocked(() => handle.writev(remaining, at));
    at += bytesWritten;
    const rest: Buffer[] = [];
    for (const chunk of remaining) {
      if (bytesWritten >= chunk.length) bytesWritten -= chunk.length;
      else {
        rest.push(chunk.subarray(bytesWritten));
        bytesWritten = 0;
      }
    }
    remaining = rest;
  }
}

/** Makes a created or removed segment's name durable; Windows (NTFS journals names) has nothing to flush. */
export async function syncDirectory(fs: FileSystem, dir: string): Promise<void> {
  if (!canSyncDirectory(fs.platform)) return;
  const handle = await fs.open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
