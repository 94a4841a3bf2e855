import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  canSyncDirectory,
  nodeFileSystem,
  replaceFile,
  retrying,
  type FileSystem,
} from '../platform/fs-retry.ts';
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
 * Mode 0600: the file names the mailbox and the devices, which is nobody else's business. An editor
 * or a backup holding the file open (Windows) is waited for briefly (fs-retry.ts), then reported.
 */
export async function saveConfigFile(
  file: string,
  config: RelayConfig,
  fs: FileSystem = nodeFileSystem,
): Promise<void> {
  const files = retrying(fs);
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await replaceFile(files, file, `${JSON.stringify(config, null, 2)}\n`);
  await syncDirectory(files, dir);
}

/** Makes the rename durable where a folder can be flushed (not on Windows: see fs-retry.ts). */
async function syncDirectory(fs: FileSystem, dir: string): Promise<void> {
  if (!canSyncDirectory(fs.platform)) return;
  const handle = await fs.open(dir, 'r');
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
