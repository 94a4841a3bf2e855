/**
 * The segment log on a real disk (docs/spool.md): record encoding and its CRC, what recovery makes of
 * a batch torn at every 512-byte boundary, reclaiming segments whose messages are all done, compaction
 * of a segment a held message pins, the large-message path, and a data folder from before the log.
 */
import { randomFillSync } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BATCH_HEADER_BYTES,
  BLOCK_BYTES,
  decodeRecord,
  encodeBatchHeader,
  encodeRecord,
  scanSegment,
  segmentName,
} from '../../electron/relay/segment-log.ts';
import { inspectSpool, type Spool, type SpooledMessage } from '../../electron/relay/spool.ts';
import { writeLegacyMessage } from '../fixtures/legacy-spool.ts';
import { storeMessage, useTempSpools } from '../fixtures/temp-spools.ts';
import { windowsFiles } from '../fixtures/windows-files.ts';
import { eventually } from '../integration/harness.ts';

const spools = useTempSpools('relaydesk-segments-');

const open = (dir: string, segmentBytes?: number) => spools.open(dir, { segmentBytes });

function body(n: number, size = 3000): Buffer {
  const text = `Subject: message ${n}\r\n\r\n`;
  return Buffer.concat([Buffer.from(text), Buffer.alloc(size - text.length, 97 + (n % 26))]);
}

/** `bytes` in 1000-byte pieces, as a socket delivers them. */
function store(spool: Spool, bytes: Buffer, rcptTo = ['anna@contoso.com']): Promise<SpooledMessage> {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 1000) pieces.push(bytes.subarray(at, at + 1000));
  return storeMessage(spool, pieces, { rcptTo });
}

/** The message's bytes as the spool reads them back for delivery. */
async function readBack(spool: Spool, message: SpooledMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of spool.openBody(message)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const segmentFiles = async (root: string) =>
  (await readdir(join(root, 'segments'))).filter((n) => n.endsWith('.seg'));

describe('records', () => {
  it('decode as they were encoded, and not at all once any byte of header or payload changes', () => {
    const payload = Buffer.from(JSON.stringify({ id: 'ABC', state: { attempts: 2 } }));
    const record = encodeRecord('state', payload);
    expect(decodeRecord(record, 0)).toMatchObject({
      type: 'state',
      offset: 0,
      length: record.length,
      payload,
    });
    for (let i = 0; i < record.length; i += 1) {
      const damaged = Buffer.from(record);
      damaged.writeUInt8(damaged.readUInt8(i) ^ 0x01, i);
      expect(decodeRecord(damaged, 0)).toBeNull();
    }
    // A record cut short is not a record either.
    expect(decodeRecord(record.subarray(0, record.length - 1), 0)).toBeNull();
  });

  it('a batch whose records fail their CRC is skipped and reported when a valid batch follows it', () => {
    const first = [encodeRecord('done', Buffer.from('{"id":"A"}'))];
    const second = [encodeRecord('done', Buffer.from('{"id":"B"}'))];
    const segment = Buffer.alloc(4 * BLOCK_BYTES);
    Buffer.concat([encodeBatchHeader(7, first), ...first]).copy(segment, 0);
    Buffer.concat([encodeBatchHeader(7, second), ...second]).copy(segment, BLOCK_BYTES);
    expect(scanSegment(segment, 7).records.map((r) => r.payload.toString())).toEqual([
      '{"id":"A"}',
      '{"id":"B"}',
    ]);
    // Another segment's batches (a renamed or copied file) are not this segment's.
    expect(scanSegment(segment, 8).records).toEqual([]);

    segment.writeUInt8(segment.readUInt8(BATCH_HEADER_BYTES + 18) ^ 0xff, BATCH_HEADER_BYTES + 18);
    const scan = scanSegment(segment, 7);
    expect(scan.records.map((r) => r.payload.toString())).toEqual(['{"id":"B"}']);
    expect(scan.damagedBatches).toEqual([0]);
  });
});

describe('a batch torn at every 512-byte boundary', () => {
  it('recovers every acknowledged message intact, ignores the torn tail, and revives no garbage', async () => {
    const dir = await spools.folder();
    // A small segment: each of the hundreds of cuts below copies it.
    const spool = await open(dir, 128 * 1024);
    const acknowledged = new Map<string, Buffer>();
    for (let n = 0; n < 5; n += 1) {
      const bytes = body(n);
      acknowledged.set((await store(spool, bytes)).envelope.id, bytes);
    }
    const [name] = await segmentFiles(dir);
    const file = join(dir, 'segments', name!);
    const before = await readFile(file);
    const ackedEnd = scanSegment(before, 1).end;

    // The batch that was being written when the power went: several sessions at once.
    const torn = new Map<string, Buffer>();
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const bytes = body(100 + i, 2500 + i * 700);
        torn.set((await store(spool, bytes)).envelope.id, bytes);
      }),
    );
    await spool.close();
    const after = await readFile(file);
    const writtenEnd = scanSegment(after, 1).end;
    expect(writtenEnd).toBeGreaterThan(ackedEnd + 512 * 8);

    let cuts = 0;
    for (const fill of ['zeros', 'garbage'] as const) {
      for (let cut = ackedEnd; cut <= writtenEnd; cut += 512) {
        // What reached the disk: everything up to the cut; after it, the preallocated zeros, or, for a
        // disk that writes sectors out of order, bytes that are not what we wrote.
        const disk = Buffer.from(after);
        if (fill === 'zeros') disk.fill(0, cut, writtenEnd);
        else randomFillSync(disk, cut, writtenEnd - cut);
        const copy = await spools.folder();
        await mkdir(join(copy, 'segments'));
        await writeFile(join(copy, 'segments', name!), disk);

        const reopened = await open(copy);
        const loaded = await reopened.load();
        expect(loaded.quarantined).toEqual([]);
        const ids = loaded.messages.map((m) => m.envelope.id);
        for (const id of acknowledged.keys()) expect(ids).toContain(id);
        for (const message of loaded.messages) {
          const expected = acknowledged.get(message.envelope.id) ?? torn.get(message.envelope.id);
          expect(expected, `message ${message.envelope.id} at cut ${cut} (${fill})`).toBeDefined();
          expect((await readBack(reopened, message)).equals(expected!)).toBe(true);
        }
        if (cut === ackedEnd) expect(ids).toHaveLength(acknowledged.size);
        if (cut === writtenEnd) expect(ids).toHaveLength(acknowledged.size + torn.size);
        cuts += 1;
        await reopened.close();
      }
    }
    expect(cuts).toBeGreaterThan(16);
  });
});

describe('segments', () => {
  it('keeps messages up to 256 KB in segments and larger ones in files of their own, both read back whole', async () => {
    const dir = await spools.folder();
    const spool = await open(dir);
    const small = body(1, 256 * 1024);
    const large = body(2, 256 * 1024 + 1);
    const inLog = await store(spool, small);
    const own = await store(spool, large);
    expect(inLog.file).toMatch(/\.seg$/);
    expect(own.file).toBeUndefined();
    expect(await readdir(join(dir, 'queue'))).toEqual([`${own.envelope.id}.eml`]);
    expect((await readBack(spool, inLog)).equals(small)).toBe(true);
    expect((await readBack(spool, own)).equals(large)).toBe(true);
    const offline = await inspectSpool(dir);
    expect(offline.map((m) => [m.envelope.id, m.size])).toEqual([
      [inLog.envelope.id, small.length],
      [own.envelope.id, large.length],
    ]);
  });

  it('writes delivery state as records: a restart knows the attempts and forgets what was delivered', async () => {
    const dir = await spools.folder();
    const spool = await open(dir);
    const delivered = await store(spool, body(1));
    const deferred = await store(spool, body(2), ['anna@contoso.com', 'ben@contoso.com']);
    const state = structuredClone(deferred.state);
    state.attempts = 2;
    state.nextAttemptAt = Date.now() + 60_000;
    state.recipients[0]!.status = 'delivered';
    await spool.saveState(deferred.envelope.id, state);
    await spool.remove(delivered.envelope.id);
    await spool.close();

    const loaded = await (await open(dir)).load();
    expect(loaded.messages.map((m) => m.envelope.id)).toEqual([deferred.envelope.id]);
    expect(loaded.messages[0]!.state).toEqual(state);
    // Nothing about the message is in a file of its own.
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
  });

  it('reclaims segments once every message in them is done: the number of files stays flat', async () => {
    const dir = await spools.folder();
    const spool = await open(dir, 64 * 1024);
    await spool.load();
    const counts: number[] = [];
    for (let round = 0; round < 8; round += 1) {
      const messages = await Promise.all(
        Array.from({ length: 40 }, (_, i) => store(spool, body(round * 40 + i))),
      );
      for (const message of messages) await spool.remove(message.envelope.id);
      await eventually(async () => (await segmentFiles(dir)).length <= 3);
      counts.push((await segmentFiles(dir)).length);
    }
    // 320 messages of 3 KB went through 64 KB segments: about 16 of them were written.
    expect(counts.every((n) => n <= 3)).toBe(true);
    await spool.close();
    expect((await (await open(dir)).load()).messages).toEqual([]);
  });

  it('deletes a segment another program held (Windows) once it lets go, with no more mail coming', async () => {
    const dir = await spools.folder();
    const files = windowsFiles({ platform: 'win32' });
    const spool = await spools.open(dir, { fs: files.fs, segmentBytes: 64 * 1024 });
    await spool.load();
    const first = await store(spool, body(0));
    const firstName = first.file!.split(/[\\/]/).pop()!;
    files.hold(first.file!);
    const messages = [first];
    for (let n = 1; n < 60; n += 1) messages.push(await store(spool, body(n)));
    for (const message of messages) await spool.remove(message.envelope.id);
    await eventually(() => files.refusals.some((r) => r.includes(firstName)), 15_000);
    expect(await segmentFiles(dir)).toContain(firstName);

    files.releaseAll();
    await eventually(async () => !(await segmentFiles(dir)).includes(firstName), 15_000);
    // And the empty ones after it, in the same pass.
    await eventually(async () => (await segmentFiles(dir)).length <= 2);
  });

  it('compacts a segment pinned by a message a held queue keeps: the message moves, the segment goes', async () => {
    const dir = await spools.folder();
    const spool = await open(dir, 64 * 1024);
    await spool.load();
    const held = await store(spool, body(0));
    const heldBytes = body(0);
    const state = structuredClone(held.state);
    state.attempts = 3;
    await spool.saveState(held.envelope.id, state);
    const firstSegment = held.file!;
    for (let n = 1; n <= 150; n += 1) {
      const message = await store(spool, body(n));
      await spool.remove(message.envelope.id);
    }
    // Only the held message kept its first segment; it was copied forward and that segment went.
    await eventually(async () => !(await segmentFiles(dir)).includes(firstSegment.split(/[\\/]/).pop()!));
    expect(held.file).not.toBe(firstSegment);
    expect((await readBack(spool, held)).equals(heldBytes)).toBe(true);
    expect((await segmentFiles(dir)).length).toBeLessThanOrEqual(6);
    await spool.close();

    const reopened = await open(dir);
    const loaded = await reopened.load();
    expect(loaded.messages.map((m) => [m.envelope.id, m.state.attempts])).toEqual([[held.envelope.id, 3]]);
    expect((await readBack(reopened, loaded.messages[0]!)).equals(heldBytes)).toBe(true);
  });

  it('a segment name says its sequence number, and nothing else in the folder is read as one', async () => {
    expect(segmentName(1)).toBe('00000001.seg');
    expect(segmentName(0xabc)).toBe('00000ABC.seg');
    const dir = await spools.folder();
    const spool = await open(dir);
    await store(spool, body(1));
    await writeFile(join(dir, 'segments', 'notes.txt'), 'an admin was here');
    expect((await inspectSpool(dir)).length).toBe(1);
  });
});

describe('upgrading a data folder written by the file-per-message spool', () => {
  it('loads and delivers its messages with their state, next to new ones in segments', async () => {
    const dir = await spools.folder();
    const old = await writeLegacyMessage(dir, {
      id: 'MIGX0000000000001',
      rcptTo: ['anna@contoso.com', 'ben@contoso.com'],
      body: 'Subject: from before\r\n\r\nold body\r\n',
      receivedAt: Date.now() - 60_000,
      state: {
        nextAttemptAt: 0,
        attempts: 1,
        recipients: [
          {
            address: 'anna@contoso.com',
            status: 'delivered',
            attempts: 1,
            firstAttemptAt: 1,
            lastAttemptAt: 1,
            response: '250 OK',
          },
          {
            address: 'ben@contoso.com',
            status: 'pending',
            attempts: 1,
            firstAttemptAt: 1,
            lastAttemptAt: 1,
            response: '451 busy',
          },
        ],
        lastDiagnosis: null,
        lastError: '451 busy',
      },
    });
    expect((await inspectSpool(dir)).map((m) => m.envelope.id)).toEqual(['MIGX0000000000001']);

    const spool = await open(dir);
    const loaded = await spool.load();
    const fresh = await store(spool, body(1));
    expect(loaded.messages).toHaveLength(1);
    const [legacy] = loaded.messages;
    expect(legacy!.state.recipients.map((r) => r.status)).toEqual(['delivered', 'pending']);
    expect((await readBack(spool, legacy!)).toString()).toBe('Subject: from before\r\n\r\nold body\r\n');

    await spool.remove(legacy!.envelope.id);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
    expect(old).toMatch(/\.eml$/);
    await spool.close();
    expect((await (await open(dir)).load()).messages.map((m) => m.envelope.id)).toEqual([fresh.envelope.id]);
  });
});
