/**
 * Structured logging: one JSON line per event, to stdout (for services and `journalctl`) and to
 * rotating files in the data folder. Callers pass fields, never preformatted secrets; as a second
 * line of defence, fields named like secrets are replaced before anything is written.
 *
 * Logging never throws at its caller: a rotation that another program's open handle prevents (on
 * Windows, `Get-Content -Wait`, an editor, a backup) is postponed and the line goes to the current
 * file; a file that cannot be written at all is opened again later, the console still gets the line.
 */
import { createWriteStream, mkdirSync, statSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { nodeFileSystem, type FileSystem } from '../platform/fs-retry.ts';
import { redactSecrets } from './redact.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Flushes and closes the file. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  /** Folder for `relaydesk.log`, `relaydesk.1.log`...; null logs to the console only. */
  dir: string | null;
  console: boolean;
  level?: LogLevel;
  maxFileBytes?: number;
  keepFiles?: number;
  /** Called with every record, after redaction (the app shows recent activity from it). */
  onRecord?: (record: LogFields) => void;
  /** Default: the real file system; tests hand in one that refuses like Windows. */
  fs?: FileSystem;
}

/**
 * After a refused rotation or a failed file, how long the current file goes on before trying again,
 * doubling up to the maximum. Rotation runs inside a synchronous log call, so this replaces the
 * short waits fs-retry.ts makes elsewhere: nothing here may block the relay.
 */
const FILE_RETRY_MS = { first: 1000, max: 5 * 60_000 };

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /pass(word)?|secret|token|authorization|credential/i;

export function redact(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (SECRET_FIELD.test(key)) out[key] = '<redacted>';
    else if (value && typeof value === 'object' && !Array.isArray(value))
      out[key] = redact(value as LogFields);
    else out[key] = value;
  }
  return out;
}

export function createLogger(options: LoggerOptions): Logger {
  const threshold = LEVELS[options.level ?? 'info'];
  const maxFileBytes = options.maxFileBytes ?? 10 * 1024 * 1024;
  const keepFiles = options.keepFiles ?? 5;
  const fs = options.fs ?? nodeFileSystem;
  let file: WriteStream | null = null;
  let fileBytes = 0;
  let closed = false;
  const filePath = options.dir ? join(options.dir, 'relaydesk.log') : null;
  /** Rotation and reopening wait until then after a failure. */
  let retryAt = 0;
  let retryDelayMs = FILE_RETRY_MS.first;

  function postpone(): number {
    retryAt = Date.now() + retryDelayMs;
    const delay = retryDelayMs;
    retryDelayMs = Math.min(retryDelayMs * 2, FILE_RETRY_MS.max);
    return delay;
  }

  function openFile(path: string): WriteStream {
    const stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
    // An unhandled stream error would end the process: the file waits, the console goes on.
    stream.on('error', () => {
      if (file !== stream) return;
      file = null;
      postpone();
    });
    return stream;
  }

  if (options.dir && filePath) {
    mkdirSync(options.dir, { recursive: true });
    fileBytes = safeSize(filePath);
    file = openFile(filePath);
  }

  const fileLines = perTurn((text) => file?.write(text));

  /** Moves the files along; returns the error when another program holds one (nothing is lost then). */
  function rotate(dir: string, current: string, stream: WriteStream): NodeJS.ErrnoException | null {
    const numbered = (i: number) => join(dir, `relaydesk.${i}.log`);
    try {
      removeIfPresent(fs, numbered(keepFiles));
      // A missing older file is the normal case for a young log.
      for (let i = keepFiles - 1; i >= 1; i -= 1) renameIfPresent(fs, numbered(i), numbered(i + 1));
      // A log file someone deleted is simply started afresh.
      renameIfPresent(fs, current, numbered(1));
    } catch (error) {
      return error as NodeJS.ErrnoException;
    }
    // The renamed file stays open: the lines of this turn still go into it, then it is closed.
    fileLines.flush();
    stream.end();
    file = openFile(current);
    fileBytes = 0;
    retryDelayMs = FILE_RETRY_MS.first;
    return null;
  }

  function write(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (LEVELS[level] < threshold) return;
    const record = { time: new Date().toISOString(), level, event, ...redact(fields) };
    const line = `${redactSecrets(JSON.stringify(record))}\n`;
    if (options.console) consoleLines.write(line);
    if (!file && filePath && !closed && Date.now() >= retryAt) {
      fileBytes = safeSize(filePath);
      file = openFile(filePath);
    }
    if (file && filePath && options.dir) {
      if (fileBytes + line.length > maxFileBytes && Date.now() >= retryAt) {
        const refused = rotate(options.dir, filePath, file);
        if (refused) {
          const retryInSeconds = postpone() / 1000;
          write('warn', 'log-rotation-postponed', {
            reason: 'another program has a log file open (or the folder refuses the change)',
            code: refused.code,
            file: refused.path,
            retryInSeconds,
          });
        }
      }
      fileLines.write(line);
      fileBytes += line.length;
    }
    options.onRecord?.(record);
  }

  return {
    debug: (event, fields) => write('debug', event, fields),
    info: (event, fields) => write('info', event, fields),
    warn: (event, fields) => write('warn', event, fields),
    error: (event, fields) => write('error', event, fields),
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        if (!file) {
          resolve();
          return;
        }
        fileLines.flush();
        file.end(() => resolve());
        file = null;
      }),
  };
}

/**
 * Lines written in one turn of the event loop go out in one write: a write per line cost measurable
 * time under load (stdout to a pipe or a file is even synchronous).
 */
function perTurn(output: (text: string) => void): { write(line: string): void; flush(): void } {
  let pending = '';
  const flush = () => {
    if (pending === '') return;
    const text = pending;
    pending = '';
    output(text);
  };
  return {
    write(line) {
      if (pending === '') setImmediate(flush);
      pending += line;
    },
    flush,
  };
}

const consoleLines = perTurn((text) => process.stdout.write(text));
process.on('exit', consoleLines.flush);

function removeIfPresent(fs: FileSystem, path: string): void {
  try {
    fs.unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function renameIfPresent(fs: FileSystem, from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function safeSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
