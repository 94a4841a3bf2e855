import { StringDecoder } from 'node:string_decoder';
import type { Readable, Writable } from 'node:stream';

/** Why no secret was read: Ctrl-C on the terminal, or nothing typed or piped. */
export class SecretInputError extends Error {
  readonly code: 'aborted' | 'empty';

  constructor(code: 'aborted' | 'empty') {
    super(code === 'aborted' ? 'Cancelled.' : 'No secret given: the input was empty.');
    this.name = 'SecretInputError';
    this.code = code;
  }
}

interface TerminalInput extends Readable {
  isTTY: true;
  setRawMode(mode: boolean): unknown;
}

function isTerminal(stdin: Readable): stdin is TerminalInput {
  const candidate = stdin as Partial<TerminalInput>;
  return candidate.isTTY === true && typeof candidate.setRawMode === 'function';
}

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = '\u0008';
const DELETE = '\u007f';

/**
 * Reads one secret. On a terminal: shows `prompt` on `stderr`, echoes nothing (raw mode), Backspace
 * deletes, Enter ends, Ctrl-C cancels. From a pipe (`echo "$PW" | relaydesk password set`): the first
 * line, without a prompt. Only the line ending is removed: spaces can be part of a password.
 */
export function readSecretFromStdin(
  stdin: NodeJS.ReadStream | Readable,
  stderr: Writable,
  prompt: string,
): Promise<string> {
  return isTerminal(stdin) ? readFromTerminal(stdin, stderr, prompt) : readLine(stdin);
}

function readFromTerminal(stdin: TerminalInput, stderr: Writable, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    // Code points, so Backspace removes a whole character, not half of a surrogate pair.
    const typed: string[] = [];

    const finish = (outcome: () => void): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
      outcome();
    };

    const onData = (chunk: Buffer | string): void => {
      const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
      for (const char of text) {
        if (char === CTRL_C) return finish(() => reject(new SecretInputError('aborted')));
        if (char === '\r' || char === '\n' || char === CTRL_D) {
          const secret = typed.join('');
          return finish(() => (secret ? resolve(secret) : reject(new SecretInputError('empty'))));
        }
        if (char === DELETE || char === BACKSPACE) typed.pop();
        else if (char >= ' ') typed.push(char);
      }
    };

    stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

function readLine(stdin: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    let received = '';

    const done = (): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.pause();
      const newline = received.indexOf('\n');
      const line = newline === -1 ? received : received.slice(0, newline).replace(/\r$/, '');
      if (line) resolve(line);
      else reject(new SecretInputError('empty'));
    };
    const onData = (chunk: Buffer | string): void => {
      received += typeof chunk === 'string' ? chunk : decoder.write(chunk);
      if (received.includes('\n')) done();
    };
    const onEnd = (): void => {
      received += decoder.end();
      done();
    };
    const onError = (error: Error): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      reject(error);
    };

    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onError);
    stdin.resume();
  });
}
