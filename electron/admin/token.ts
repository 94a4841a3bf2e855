/**
 * The admin page's access token: 32 random bytes in `admin-token` in the data folder, readable by the
 * relay's user only. Created on first use, kept across restarts so a bookmarked tab keeps working.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem, replaceFile, retrying, type FileSystem } from '../platform/fs-retry.ts';

export const TOKEN_FILE = 'admin-token';
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export async function readOrCreateToken(dataDir: string, fs: FileSystem = nodeFileSystem): Promise<string> {
  const file = join(dataDir, TOKEN_FILE);
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (TOKEN_PATTERN.test(token)) {
      // A copy or restore may have widened the mode; the token is as good as a password.
      if (process.platform !== 'win32' && ((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
      return token;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  // Replaced whole, never half-written; an antivirus scanning the new file is waited for (fs-retry.ts).
  await replaceFile(retrying(fs), file, `${token}\n`);
  if (process.platform !== 'win32') await chmod(file, 0o600);
  return token;
}
