/**
 * SMTP reply parsing (RFC 5321 §4.2), shared by everything that reads a server's replies: the upstream
 * client and the test drivers.
 */
import { StringDecoder } from 'node:string_decoder';
import type { SmtpReply } from './upstream-failure.ts';

const REPLY_LINE = /^([2-5]\d\d)(?:[ -]|$)/;
/** RFC 3463: class.subject.detail, the class repeating the reply code's first digit. */
const ENHANCED_CODE = /^([245])\.\d{1,3}\.\d{1,3}(?= |$)/;

/** RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; leave room for servers that overrun it. */
const MAX_LINE_LENGTH = 8192;
/** Bounds memory against a server that never ends a multi-line reply. */
const MAX_REPLY_LINES = 1000;

/** A server sent something that is not an SMTP reply. */
export class ReplySyntaxError extends Error {
  override readonly name = 'ReplySyntaxError';
}

function isLastLine(line: string): boolean {
  return line.charAt(3) !== '-';
}

/**
 * One reply from its lines (`250-first`, `250 last`): the code, the enhanced status code when the first
 * line carries one (`535 5.7.139 Authentication...` → `5.7.139`), and the text without either.
 */
export function parseReply(lines: string[]): SmtpReply {
  const first = lines[0];
  const match = first === undefined ? null : REPLY_LINE.exec(first);
  if (!match?.[1]) throw new ReplySyntaxError(`not an SMTP reply: ${JSON.stringify(first ?? '')}`);
  const code = Number(match[1]);
  const texts = lines.map((line) => line.slice(4));
  const enhancedMatch = ENHANCED_CODE.exec(texts[0] ?? '');
  const enhanced = enhancedMatch && enhancedMatch[1] === match[1].charAt(0) ? enhancedMatch[0] : null;
  const text = texts
    // RFC 2034 §4: each line of a multi-line reply repeats the enhanced code.
    .map((line) =>
      enhanced !== null && ENHANCED_CODE.exec(line)?.[0] === enhanced ? line.slice(enhanced.length) : line,
    )
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
  return { code, enhanced, text, raw: lines.join('\r\n') };
}

/**
 * Cuts a server's byte stream into replies, whatever the packet boundaries: one reply split over
 * several packets, or several replies in one packet (pipelining). Lines may end in CRLF or bare LF.
 */
export class ReplyReader {
  readonly #decoder = new StringDecoder('utf8');
  #partial = '';
  #lines: string[] = [];

  /** Feeds received bytes; returns the replies they complete, each as its lines. Throws ReplySyntaxError. */
  push(chunk: Buffer): string[][] {
    this.#partial += this.#decoder.write(chunk);
    const replies: string[][] = [];
    let newline = this.#partial.indexOf('\n');
    while (newline !== -1) {
      const line = this.#partial.slice(0, newline).replace(/\r$/, '');
      this.#partial = this.#partial.slice(newline + 1);
      const reply = this.#addLine(line);
      if (reply) replies.push(reply);
      newline = this.#partial.indexOf('\n');
    }
    if (this.#partial.length > MAX_LINE_LENGTH) {
      throw new ReplySyntaxError(`reply line longer than ${MAX_LINE_LENGTH} characters`);
    }
    return replies;
  }

  /** True when no part of a reply is waiting for more bytes. */
  get idle(): boolean {
    return this.#partial === '' && this.#lines.length === 0;
  }

  #addLine(line: string): string[] | null {
    // A blank line between replies is noise some servers send; other clients skip it, and so do we.
    if (line === '' && this.#lines.length === 0) return null;
    const code = REPLY_LINE.exec(line)?.[1];
    const expected = this.#lines[0]?.slice(0, 3);
    if (code === undefined || (expected !== undefined && code !== expected)) {
      throw new ReplySyntaxError(`not an SMTP reply line: ${JSON.stringify(line.slice(0, 200))}`);
    }
    this.#lines.push(line);
    if (!isLastLine(line)) {
      if (this.#lines.length >= MAX_REPLY_LINES) {
        throw new ReplySyntaxError(`multi-line reply longer than ${MAX_REPLY_LINES} lines`);
      }
      return null;
    }
    const reply = this.#lines;
    this.#lines = [];
    return reply;
  }
}
