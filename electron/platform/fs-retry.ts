/**
 * File operations as Windows has them. A program holding one of our files open without delete
 * sharing (antivirus scanning a fresh file, the search indexer, a backup, `Get-Content -Wait` on the
 * log) makes Windows refuse to rename over it (EPERM), to rename or delete it (EBUSY), or to open it
 * (EBUSY, EACCES), mostly for a few milliseconds, sometimes for as long as the program runs. Every
 * rename, unlink, open and write of the spool, status, log, config and admin-token files goes through
 * here and is tried again a few times on those codes; what is still refused after that is the
 * caller's to handle without losing anything (each caller says how).
 *
 * Not graceful-fs, which the issue suggests: it retries only `rename`, only when `process.platform`
 * is win32 at the moment it is loaded (so no test on Linux can reach that path), for up to 60 s (a
 * device waits for its reply meanwhile), for callbacks only (not fs/promises), and never `unlink`,
 * `open` or `write`. No maintained package retries fs/promises calls on these codes, hence this one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** What Windows answers while another program holds the file; on Linux and macOS they are permanent. */
export const LOCKED_CODES: ReadonlySet<string> = new Set(['EPERM', 'EACCES', 'EBUSY']);

export function isLocked(error: unknown): boolean {
  return LOCKED_CODES.has((error as NodeJS.ErrnoException | null)?.code ?? '');
}

/**
 * About 1.3 s in all: long enough for a virus scanner to let go of a file it just scanned, short
 * enough for a device waiting for its reply (and a log line waiting to be written).
 */
export const RETRY_DELAYS_MS: readonly number[] = [10, 20, 40, 80, 160, 320, 640];

/** Runs `operation`, again after each delay while it fails with a locked-file code; then throws the last error. */
export async function retryLocked<T>(
  operation: () => Promise<T>,
  delaysMs: readonly number[] = RETRY_DELAYS_MS,
): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await operation();
    } catch (error) {
      if (!isLocked(error) || attempt >= delaysMs.length) throw error;
      await new Promise((resolve) => setTimeout(resolve, delaysMs[attempt]));
    }
  }
}

/**
 * The file operations that Windows refuses while another program holds a file, and the platform
 * (which decides whether folders can be fsynced). Tests hand in one that refuses like Windows does.
 */
export interface FileSystem {
  readonly platform: NodeJS.Platform;
  open(path: string, flags: string | number, mode?: number): Promise<FileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** For the log, which rotates inside a synchronous call. */
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
}

export const nodeFileSystem: FileSystem = {
  platform: process.platform,
  open,
  rename,
  unlink,
  renameSync,
  unlinkSync,
};

/** The same operations, each tried again while the file is locked (the synchronous ones are not: see log.ts). */
export function retrying(fs: FileSystem, delaysMs: readonly number[] = RETRY_DELAYS_MS): FileSystem {
  return {
    platform: fs.platform,
    open: (path, flags, mode) => retryLocked(() => fs.open(path, flags, mode), delaysMs),
    rename: (from, to) => retryLocked(() => fs.rename(from, to), delaysMs),
    unlink: (path) => retryLocked(() => fs.unlink(path), delaysMs),
    renameSync: (from, to) => fs.renameSync(from, to),
    unlinkSync: (path) => fs.unlinkSync(path),
  };
}

/**
 * Windows opens a folder but refuses to flush it (EPERM: that needs write access to the folder);
 * NTFS journals a rename itself, so there is nothing to flush there.
 */
export function canSyncDirectory(platform: NodeJS.Platform): boolean {
  return platform !== 'win32';
}

/**
 * Replaces `file` so that a crash leaves the old content or the new, never a torn file: a temporary
 * file beside it, written and fsynced, renamed over it. The caller syncs the folder if the rename
 * itself must survive a power cut, and passes a `retrying` file system: on Windows the rename over a
 * file another program holds is what gets refused.
 */
export async function replaceFile(
  fs: FileSystem,
  file: string,
  data: string | Buffer,
  mode = 0o600,
): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await fs.open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, file);
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
}
