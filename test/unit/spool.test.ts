/**
 * The spool on a real disk: what a message's first delivery attempt can take from memory, the bound
 * on that memory, and that removing and reloading agree with the files.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectSpool, newMessageId } from '../../electron/relay/spool.ts';
import { storeMessage, useTempSpools } from '../fixtures/temp-spools.ts';
import { windowsFiles } from '../fixtures/windows-files.ts';
import { eventually } from '../integration/harness.ts';

const spools = useTempSpools('relaydesk-spool-');

function bytes(size: number, fill: string): Buffer {
  return Buffer.alloc(size, fill);
}

/** Over 256 KB: a message with a file of its own in queue/, where Windows' file locks apply to it alone. */
const large = (subject: string) => [Buffer.from(`Subject: ${subject}\r\n\r\n`), bytes(300 * 1024, 'L')];

describe('spool memory copies', () => {
  it('hands a small message its bytes once, identical to the fsynced file', async () => {
    const spool = await spools.fresh();
    const chunks = [Buffer.from('Subject: scan\r\n\r\n'), bytes(10_000, 'a'), Buffer.from('\r\nend\r\n')];
    const message = await storeMessage(spool, chunks);
    const onDisk = (await readFile(spool.emlPath(message.envelope.id))).subarray(
      message.bodyOffset,
      message.bodyOffset + message.size,
    );

    const copy = spool.takeMemoryCopy(message.envelope.id);
    expect(copy).not.toBeNull();
    expect(copy!.equals(Buffer.concat(chunks))).toBe(true);
    expect(copy!.equals(onDisk)).toBe(true);
    // A retry reads the file.
    expect(spool.takeMemoryCopy(message.envelope.id)).toBeNull();
  });

  it('keeps no copy of a message over 256 KB, which still lands on disk whole', async () => {
    const spool = await spools.fresh();
    const chunks = Array.from({ length: 5 }, (_, i) => bytes(64 * 1024, String(i)));
    const message = await storeMessage(spool, chunks);
    expect(spool.takeMemoryCopy(message.envelope.id)).toBeNull();
    const onDisk = (await readFile(spool.emlPath(message.envelope.id))).subarray(message.bodyOffset);
    expect(onDisk.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('stops keeping copies at 16 MB in all (an upstream outage), and keeps them again once some are taken', async () => {
    const spool = await spools.fresh();
    const ids: string[] = [];
    for (let i = 0; i < 80; i += 1)
      ids.push((await storeMessage(spool, [bytes(250 * 1024, 'x')])).envelope.id);
    const withCopy = ids.filter((id) => spool.takeMemoryCopy(id) !== null);
    // 16 MB / 250 KB = 65.5: the first 65 messages keep a copy, the rest wait on disk only.
    expect(withCopy).toEqual(ids.slice(0, 65));
    const later = await storeMessage(spool, [bytes(250 * 1024, 'y')]);
    expect(spool.takeMemoryCopy(later.envelope.id)?.length).toBe(250 * 1024);
  });

  it('forgets a removed message, in memory and on disk, across a restart', async () => {
    const spool = await spools.fresh();
    const kept = await storeMessage(spool, [Buffer.from('Subject: kept\r\n\r\nbody\r\n')]);
    const removed = await storeMessage(spool, [Buffer.from('Subject: gone\r\n\r\nbody\r\n')]);
    await spool.remove(removed.envelope.id);
    expect(spool.takeMemoryCopy(removed.envelope.id)).toBeNull();

    const reopened = await spools.open(spool.root);
    const loaded = await reopened.load();
    expect(loaded.messages.map((m) => m.envelope.id)).toEqual([kept.envelope.id]);
    // Nothing in memory after a restart: the first attempt reads the file.
    expect(reopened.takeMemoryCopy(kept.envelope.id)).toBeNull();
  });
});

describe('spool removal', () => {
  it('removes the message before its state, so a crash in between never revives a half-delivered message', async () => {
    const spool = await spools.fresh();
    const message = await storeMessage(spool, large('two'));
    const id = message.envelope.id;
    await spool.saveState(id, { ...message.state, attempts: 1 });
    await spool.remove(id);
    expect(await readdir(join(spool.root, 'queue'))).toEqual([]);

    // What a crash between the two unlinks leaves: the state file alone. A restart drops it.
    const orphan = await storeMessage(spool, large('orphan'));
    await spool.saveState(orphan.envelope.id, { ...orphan.state, attempts: 1 });
    await unlink(spool.emlPath(orphan.envelope.id));
    const reopened = await spools.open(spool.root);
    expect((await reopened.load()).messages).toEqual([]);
    expect(await readdir(join(spool.root, 'queue'))).toEqual([]);
  });
});

describe('newMessageId', () => {
  it('gives distinct ids in the same millisecond, across refills of its random pool', () => {
    const now = Date.now();
    const ids = new Set(Array.from({ length: 5000 }, () => newMessageId(now)));
    expect(ids.size).toBe(5000);
    for (const id of ids) expect(id).toMatch(/^[0-9A-Z]{18,}$/);
  });
});

describe('spool acceptance is one step (issue 11 row 2)', () => {
  it('a message moved into queue/ that cannot be taken back is accepted (250), never refused and then delivered', async () => {
    const dir = await spools.folder();
    // A queue folder that cannot be flushed: only POSIX flushes folders (Windows cannot), so told linux.
    const files = windowsFiles({ platform: 'linux' });
    const spool = await spools.open(dir, { fs: files.fs });
    // The disk cannot flush the queue folder, and an indexer already holds the new .eml open, so the
    // spool cannot take the message back out of queue/: it is queued, so the device must hear 250.
    files.failFolderSync('EIO');
    files.hold(/\.eml$/);
    const message = await storeMessage(spool, large('kept'));
    files.failFolderSync(null);
    files.releaseAll();
    const loaded = await (await spools.open(dir)).load();
    expect(loaded.messages.map((m) => m.envelope.id)).toEqual([message.envelope.id]);
  });

  it('a message refused at commit leaves nothing in queue/', async () => {
    const dir = await spools.folder();
    const files = windowsFiles({ platform: 'linux' });
    const spool = await spools.open(dir, { fs: files.fs });
    files.failFolderSync('EIO');
    await expect(storeMessage(spool, large('refused'))).rejects.toMatchObject({
      code: 'EIO',
    });
    files.failFolderSync(null);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
    expect((await (await spools.open(dir)).load()).messages).toEqual([]);
  });
});

describe('spool removal of a file another program holds (issue 11 row 5)', () => {
  it('never loads a removed message again, and deletes its files once the other program lets go', async () => {
    const dir = await spools.folder();
    const files = windowsFiles();
    const spool = await spools.open(dir, { fs: files.fs });
    const kept = await storeMessage(spool, large('kept'));
    const removed = await storeMessage(spool, large('gone'));
    files.hold(spool.emlPath(removed.envelope.id));
    await spool.remove(removed.envelope.id);

    const restarted = await spools.open(dir, { fs: files.fs });
    expect((await restarted.load()).messages.map((m) => m.envelope.id)).toEqual([kept.envelope.id]);
    expect((await inspectSpool(dir)).map((m) => m.envelope.id)).toEqual([kept.envelope.id]);
    files.releaseAll();
    const left = await eventually(async () => {
      const names = await readdir(join(dir, 'queue'));
      return names.length === 1 && names;
    });
    expect(left).toEqual([`${kept.envelope.id}.eml`]);
  });
});

describe('spool envelope size (issue 12 defect 2)', () => {
  it('reloads a message with 10,000 recipients (an envelope line over 1 MiB) after a restart', async () => {
    const spool = await spools.fresh();
    const rcptTo = Array.from(
      { length: 10_000 },
      (_, i) => `recipient-${String(i).padStart(5, '0')}-${'x'.repeat(90)}@department.contoso.com`,
    );
    const message = await storeMessage(spool, [Buffer.from('Subject: everyone\r\n\r\nbody\r\n')], { rcptTo });
    expect(message.bodyOffset).toBeGreaterThan(1024 * 1024);

    const loaded = await (await spools.open(spool.root)).load();
    expect(loaded.quarantined).toEqual([]);
    expect(loaded.messages).toHaveLength(1);
    expect(loaded.messages[0]!.envelope.rcptTo).toEqual(rcptTo);
    expect(loaded.messages[0]!.bodyOffset).toBe(message.bodyOffset);
    expect(loaded.messages[0]!.size).toBe(message.size);
  });
});

describe('spool start while another program holds a queued message (issue 11)', () => {
  it('leaves a message it cannot open for now where it is, never quarantined, and loads it at the next start', async () => {
    const dir = await spools.folder();
    const files = windowsFiles({ platform: 'win32' });
    const spool = await spools.open(dir, { fs: files.fs });
    const message = await storeMessage(spool, large('scanned'));
    await spool.saveState(message.envelope.id, { ...message.state, attempts: 1 });

    // A backup opens the message's files without sharing them while the relay starts.
    files.fail('open', /\.(eml|state\.json)$/, 'EBUSY');
    const first = await (await spools.open(dir, { fs: files.fs })).load();
    expect(first.messages).toEqual([]);
    expect(first.quarantined).toEqual([]);
    expect(first.held).toEqual([{ file: `${message.envelope.id}.eml`, code: 'EBUSY' }]);
    expect(await readdir(join(dir, 'quarantine'))).toEqual([]);

    files.fail('open', /x/, null);
    const second = await (await spools.open(dir, { fs: files.fs })).load();
    expect(second.messages.map((m) => [m.envelope.id, m.state.attempts])).toEqual([[message.envelope.id, 1]]);
  });
});
