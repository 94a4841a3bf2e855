/**
 * status.json and the log on Windows file semantics (issue 11, rows 6 and 7): another program holds
 * the file open without delete sharing (an editor, `Get-Content -Wait`, a backup). Real files in a
 * temporary folder; only Windows' refusals are injected (test/fixtures/windows-files.ts). Nothing
 * thrown in a timer or at a caller: the status file is written once the file is free, the log line
 * is written and rotation waits.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../electron/relay/log.ts';
import { createStatusTracker, readPersistedStatus } from '../../electron/relay/status.ts';
import { windowsFiles } from '../fixtures/windows-files.ts';
import { cleanup, eventually, tempDir } from '../integration/harness.ts';

const dirs: string[] = [];
/** What reached the process's last-resort handlers: each would have ended `relaydesk serve`. */
const escaped: unknown[] = [];
const onEscaped = (error: unknown) => void escaped.push(error);
beforeEach(() => {
  escaped.length = 0;
  process.on('uncaughtException', onEscaped);
  process.on('unhandledRejection', onEscaped);
});
afterEach(async () => {
  process.off('uncaughtException', onEscaped);
  process.off('unhandledRejection', onEscaped);
  for (const dir of dirs.splice(0)) await cleanup(dir);
});

async function folder(): Promise<string> {
  const dir = await tempDir('relaydesk-winfs-');
  dirs.push(dir);
  return dir;
}

describe('status.json held open by another program (row 6)', () => {
  it('skips the write while the file is held, without ending the process, and writes it once free', async () => {
    const dir = await folder();
    const files = windowsFiles({ platform: 'win32' });
    const status = createStatusTracker(dir, 'smtp.office365.com:587', files.fs);
    status.count('accepted');
    await eventually(() => readPersistedStatus(dir)?.today.accepted === 1);

    files.hold(join(dir, 'status.json'));
    status.count('accepted');
    status.count('delivered');
    await eventually(() => files.refusals.some((r) => r.startsWith('rename EPERM')));
    // A shutdown while it is still held: nothing thrown either.
    await status.flush();
    expect(readPersistedStatus(dir)?.today.accepted).toBe(1);

    files.releaseAll();
    const written = await eventually(() => {
      const persisted = readPersistedStatus(dir);
      return persisted?.today.accepted === 2 ? persisted : null;
    });
    expect(written!.today.delivered).toBe(1);
    expect(escaped).toEqual([]);
  });
});

describe('log file held open at rotation (row 7)', () => {
  it('writes the line, postpones rotation while the file is held, and rotates once it is free', async () => {
    const dir = await folder();
    const files = windowsFiles({ platform: 'win32' });
    const logger = createLogger({ dir, console: false, maxFileBytes: 2000, keepFiles: 3, fs: files.fs });
    const line = (n: number) => logger.info('accepted', { queueId: `Q${n}`, padding: 'x'.repeat(100) });
    for (let n = 0; n < 8; n += 1) line(n);
    await new Promise((resolve) => setImmediate(resolve));

    files.hold(join(dir, 'relaydesk.log'));
    for (let n = 8; n < 30; n += 1) expect(() => line(n)).not.toThrow();
    await new Promise((resolve) => setImmediate(resolve));
    expect(files.refusals.some((r) => r.startsWith('rename EBUSY'))).toBe(true);
    expect(existsSync(join(dir, 'relaydesk.1.log'))).toBe(false);
    const whileHeld = await readFile(join(dir, 'relaydesk.log'), 'utf8');
    expect(whileHeld).toContain('"queueId":"Q29"');
    expect(whileHeld).toContain('"event":"log-rotation-postponed"');

    files.releaseAll();
    let n = 30;
    await eventually(
      () => {
        line(n++);
        return existsSync(join(dir, 'relaydesk.1.log'));
      },
      15_000,
      50,
    );
    await logger.close();
    const all =
      (await readFile(join(dir, 'relaydesk.1.log'), 'utf8')) +
      (await readFile(join(dir, 'relaydesk.log'), 'utf8'));
    // Every line written exactly once across the rotated and the current file.
    for (let k = 0; k < n; k += 1) expect(all.split(`"queueId":"Q${k}"`).length - 1).toBe(1);
    expect(escaped).toEqual([]);
  });
});
