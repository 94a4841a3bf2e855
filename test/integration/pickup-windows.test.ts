/**
 * The pickup folder with Windows' file locking (test/fixtures/windows-files.ts refuses renames and
 * deletes of a held file as Windows does; the files, the spool and fsync are real): a file its writer
 * still holds is not taken, and a picked-up file another program holds once queued delays nothing
 * twice: the message is handed to delivery exactly once.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, type LogFields } from '../../electron/relay/log.ts';
import { createPickup, type Pickup } from '../../electron/relay/pickup.ts';
import { createSpool, type SpooledMessage } from '../../electron/relay/spool.ts';
import { windowsFiles } from '../fixtures/windows-files.ts';
import { createTeardown, eventually, tempDir } from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Report\r\n\r\ntext\r\n';

async function setup() {
  const root = teardown.dir(await tempDir('relaydesk-pickup-win-'));
  const files = windowsFiles({ platform: 'win32', windowsFolders: true });
  const spool = await createSpool(join(root, 'data', 'spool'), { fs: files.fs });
  const records: LogFields[] = [];
  const queued: SpooledMessage[] = [];
  const pickupDir = join(root, 'Pickup');
  const pickup: Pickup = createPickup({
    dir: pickupDir,
    badmailDir: join(root, 'Badmail'),
    settleMs: 200,
    spool,
    limits: { maxMessageBytes: 1024 * 1024, maxRecipients: 100 },
    logger: createLogger({ dir: null, console: false, onRecord: (r) => void records.push(r) }),
    queuedAtStart: new Set(),
    hasRoomFor: async () => true,
    queued: (message) => void queued.push(message),
    files: files.fs,
  });
  await pickup.start();
  teardown.add(() => pickup.stop());
  return { files, pickupDir, records, queued, spool };
}

describe('pickup folder with Windows file locking', () => {
  it('leaves a file alone while its writer holds it, and takes it once it lets go', async () => {
    const { files, pickupDir, queued } = await setup();
    files.hold(/[\\/]Pickup[\\/]report\.eml$/);
    await writeFile(join(pickupDir, 'report.eml'), MESSAGE);
    await eventually(() => files.refusals.filter((r) => r.startsWith('rename EBUSY')).length >= 2);
    expect(queued).toHaveLength(0);
    expect(await readdir(pickupDir)).toContain('report.eml');

    files.releaseAll();
    await eventually(() => queued.length === 1);
    expect(queued[0]!.envelope.rcptTo).toEqual(['alice@contoso.com']);
    expect((await readdir(pickupDir)).sort()).toEqual(['.claimed']);
  });

  it('hands a message to delivery once even when its picked-up file cannot be deleted at first', async () => {
    const { files, pickupDir, queued, records } = await setup();
    // An antivirus scanner holds the file once it is in .claimed/ (Windows scans a file renamed in).
    files.hold(/[\\/]\.claimed[\\/][0-9A-Z]+\+[0-9A-Z]+\.report\.eml$/);
    await writeFile(join(pickupDir, 'report.eml'), MESSAGE);
    await eventually(() => queued.length === 1, 15_000);
    // Queued with a marker beside the file it could not delete: the marker says "already queued".
    const claimed = await readdir(join(pickupDir, '.claimed'));
    expect(claimed).toHaveLength(2);
    expect(claimed.some((name) => /^[0-9A-Z]+\+[0-9A-Z]+$/.test(name))).toBe(true);

    files.releaseAll();
    await eventually(async () => (await readdir(join(pickupDir, '.claimed'))).length === 0, 15_000);
    expect(queued).toHaveLength(1);
    expect(records.filter((r) => r.event === 'pickup-queued')).toHaveLength(1);
  });
});
