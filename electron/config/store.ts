import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { defaultConfig } from './defaults.ts';
import { findJsonSyntaxError } from './json-syntax.ts';
import type { ConfigProblem, RelayConfig } from './types.ts';
import { parseConfig } from './validate.ts';

export interface LoadedConfig {
  config: RelayConfig;
  problems: ConfigProblem[];
  /** False when there is no file yet: the config is the defaults, and that is not a problem. */
  exists: boolean;
}

function fileProblem(message: string): ConfigProblem {
  return { path: '(file)', message };
}

export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { config: defaultConfig(), problems: [], exists: false };
    const reason = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (code ?? 'unknown error');
    return {
      config: defaultConfig(),
      problems: [fileProblem(`${file} cannot be read (${reason})`)],
      exists: true,
    };
  }
  // Notepad saves UTF-8 with a byte order mark, which JSON does not allow.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const syntaxError = findJsonSyntaxError(text);
  if (syntaxError) {
    const { line, column, expected } = syntaxError;
    return {
      config: defaultConfig(),
      problems: [fileProblem(`not valid JSON at line ${line}, column ${column}: expected ${expected}`)],
      exists: true,
    };
  }
  return { ...parseConfig(JSON.parse(text)), exists: true };
}

/**
 * Writes the config so that a crash or power cut leaves either the old file or the new one, never a
 * torn one: a temp file in the same folder, fsynced, renamed over the old, then the folder fsynced.
 * Mode 0600: the file names the mailbox and the devices, which is nobody else's business.
 */
export async function saveConfigFile(file: string, config: RelayConfig): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(config, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

/** Makes the rename durable. Windows cannot open a folder to fsync it; NTFS journals the rename itself. */
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** One problem per line, indented, for the CLI and logs: `  upstream.port: must be an integer ...`. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((problem) => `  ${problem.path}: ${problem.message}`).join('\n');
}
