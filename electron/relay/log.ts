/**
 * Structured logging: one JSON line per event, to stdout (for services and `journalctl`) and to
 * rotating files in the data folder. Callers pass fields, never preformatted secrets; as a second
 * line of defence, fields named like secrets are replaced before anything is written.
 */
import { createWriteStream, mkdirSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
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
}

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
  let file: WriteStream | null = null;
  let fileBytes = 0;
  const filePath = options.dir ? join(options.dir, 'relaydesk.log') : null;

  if (options.dir && filePath) {
    mkdirSync(options.dir, { recursive: true });
    fileBytes = safeSize(filePath);
    file = createWriteStream(filePath, { flags: 'a', mode: 0o600 });
  }

  const fileLines = perTurn((text) => file?.write(text));

  function rotate(): void {
    if (!filePath || !options.dir || !file) return;
    fileLines.flush();
    file.end();
    rmSync(join(options.dir, `relaydesk.${keepFiles}.log`), { force: true });
    for (let i = keepFiles - 1; i >= 1; i -= 1) {
      try {
        renameSync(join(options.dir, `relaydesk.${i}.log`), join(options.dir, `relaydesk.${i + 1}.log`));
      } catch {
        // A missing older file is the normal case for a young log.
      }
    }
    renameSync(filePath, join(options.dir, 'relaydesk.1.log'));
    file = createWriteStream(filePath, { flags: 'a', mode: 0o600 });
    fileBytes = 0;
  }

  function write(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (LEVELS[level] < threshold) return;
    const record = { time: new Date().toISOString(), level, event, ...redact(fields) };
    const line = `${redactSecrets(JSON.stringify(record))}\n`;
    if (options.console) consoleLines.write(line);
    if (file) {
      if (fileBytes + line.length > maxFileBytes) rotate();
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

function safeSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
