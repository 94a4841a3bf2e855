/**
 * What the relay changes so that a device's message can cross SMTP to Microsoft 365 with its meaning
 * intact: raw 8-bit header text becomes RFC 2047 encoded-words (or plain UTF-8 when the upstream takes
 * SMTPUTF8), header lines over 998 characters are folded, and body lines over 998 octets (RFC 5321
 * §4.5.3.1.6, RFC 5322 §2.1.1) are re-wrapped in a way the recipient cannot see.
 *
 * Header text is handled as a binary string: one character per byte (latin1), the way headers.ts
 * reads it and prepare.ts writes it back. Everything returned here is in that form too.
 *
 * Limits, on purpose:
 * - 8-bit bytes in structured fields other than address lists (Content-Type parameters, Message-ID,
 *   Received) are left as they are without SMTPUTF8: encoded-words are not allowed there.
 * - 8-bit bytes in the headers of MIME parts are left as they are (they travel in the body, under 8BITMIME).
 * - Long lines in a part whose encoding is neither 7bit/8bit (re-encoded), base64 (re-wrapped) nor
 *   absent stay as they are: quoted-printable that is already broken, `binary`, or unknown encodings.
 * - MIME structure deeper than MAX_NESTING, or part headers over MAX_PART_HEADER, go through unchanged.
 */
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { noteStreamed } from '../spent-buffers.ts';
import { fieldValue, parseHeaderBlock, splitOutsideQuotes, type HeaderField } from './headers.ts';
import { CarriageReturnRuns } from './line-ends.ts';

/** RFC 5322 §2.1.1: at most 998 characters on a line, without the CRLF. */
const MAX_LINE = 998;
/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters. */
const FOLD_AT = 78;
/** RFC 2047 §2: an encoded-word is at most 75 characters. */
const MAX_ENCODED_WORD = 75;
const ENCODED_WORD_OVERHEAD = '=?UTF-8?Q?'.length + '?='.length;
/** Fits one code point of four UTF-8 bytes in Q (`=XX` four times) with the overhead. */
const MIN_ENCODED_WORD = ENCODED_WORD_OVERHEAD + 12;

const EIGHT_BIT = /[\x80-\xff]/;
const ENCODED_WORD = /^=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=$/;

type Charset = 'utf-8' | 'windows-1252';
export type BodyCharset = 'us-ascii' | Charset;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Windows-1252 0x80-0x9F as the WHATWG Encoding Standard maps them (0xA0-0xFF equal Unicode).
 * Written out because Node's TextDecoder('windows-1252') decodes these as Latin-1 since 20.18.3
 * (nodejs/node#60888): 0x80 would come out as U+0080 instead of the euro sign.
 */
const WINDOWS_1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d,
  0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a,
  0x153, 0x9d, 0x17e, 0x178,
];

function decodeWindows1252(bytes: Buffer): string {
  let text = '';
  for (const byte of bytes) {
    text += String.fromCharCode(byte >= 0x80 && byte < 0xa0 ? WINDOWS_1252_HIGH[byte - 0x80]! : byte);
  }
  return text;
}

export interface HeaderOptions {
  /** The upstream takes SMTPUTF8 and the message goes with it: UTF-8 header text may stay as it is. */
  smtpUtf8: boolean;
}

/**
 * Header text that is not valid UTF-8 is taken as windows-1252: what old Windows software and devices
 * write. Every byte decodes in windows-1252, so no text is lost.
 */
function detectCharset(binary: string): Charset {
  try {
    strictUtf8.decode(Buffer.from(binary, 'latin1'));
    return 'utf-8';
  } catch {
    return 'windows-1252';
  }
}

function decodeBinary(binary: string, charset: Charset): string {
  const bytes = Buffer.from(binary, 'latin1');
  return charset === 'utf-8' ? bytes.toString('utf8') : decodeWindows1252(bytes);
}

type FieldKind = 'address' | 'unstructured' | 'structured';

const ADDRESS_FIELDS = new Set([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'bcc',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-bcc',
  'disposition-notification-to',
  'return-receipt-to',
  'mail-followup-to',
  'mail-reply-to',
]);
const UNSTRUCTURED_FIELDS = new Set([
  'subject',
  'comments',
  'content-description',
  'thread-topic',
  'organization',
]);

/** `head` is the field up to and including its colon. */
function fieldKind(head: string): FieldKind {
  const name = head.slice(0, -1).trim().toLowerCase();
  if (ADDRESS_FIELDS.has(name)) return 'address';
  if (UNSTRUCTURED_FIELDS.has(name) || name.startsWith('x-')) return 'unstructured';
  return 'structured';
}

function splitField(raw: string): { head: string; value: string } {
  const colon = raw.indexOf(':');
  return { head: raw.slice(0, colon + 1), value: raw.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '') };
}

/**
 * A run of header text to lay out: `ws` is the white space before it (a fold may go there), `text`
 * goes out as it is, or, when `encode` is set, as encoded-words of that (decoded) text.
 */
interface Piece {
  ws: string;
  text: string;
  encode: boolean;
}

/** A word of header text: `raw` as written, `text` what it means (a quoted-string without its quotes). */
interface Word {
  ws: string;
  raw: string;
  text: string;
  encode: boolean;
}

/** Text already laid out (a comment) that sits between words. */
interface Group {
  ws: string;
  pieces: Piece[];
}

type Element = Word | Group;

function isWord(element: Element | undefined): element is Word {
  return element !== undefined && 'raw' in element;
}

function isEncodedWord(element: Element | undefined): boolean {
  return isWord(element) && !element.encode && ENCODED_WORD.test(element.raw);
}

/**
 * Turns words into pieces. Adjacent words to encode become one run, white space included: RFC 2047
 * §6.2 drops white space between encoded-words, so the space between "Grüße" and "Müller" must be
 * inside an encoded-word to survive.
 */
function renderWords(elements: readonly Element[], decode: (binary: string) => string): Piece[] {
  const pieces: Piece[] = [];
  let nextWs: string | null = null;
  for (let i = 0; i < elements.length; i++) {
    const element = elements[i]!;
    const ws = nextWs ?? element.ws;
    nextWs = null;
    if (!isWord(element)) {
      const [first, ...rest] = element.pieces;
      if (first) pieces.push({ ...first, ws }, ...rest);
      continue;
    }
    if (!element.encode) {
      pieces.push({ ws, text: element.raw, encode: false });
      continue;
    }
    let last = i;
    while (isWord(elements[last + 1]) && (elements[last + 1] as Word).encode) last++;
    let text = elements
      .slice(i, last + 1)
      .map((word, k) => (k === 0 ? '' : word.ws) + (word as Word).text)
      .join('');
    let runWs = ws;
    const after = elements[last + 1];
    // The device's own encoded-words next to this run would swallow the white space between them.
    if (isEncodedWord(elements[i - 1]) && runWs !== '') {
      text = runWs + text;
      runWs = ' ';
    }
    if (after && isEncodedWord(after) && after.ws !== '') {
      text += after.ws;
      nextWs = ' ';
    }
    // An encoded-word has to stand apart from the word before and after it (RFC 2047 §5).
    if (runWs === '' && i > 0) runWs = ' ';
    if (after && after.ws === '' && nextWs === null) nextWs = ' ';
    pieces.push({ ws: runWs, text: decode(text), encode: true });
    i = last;
  }
  return pieces;
}

function unstructuredPieces(
  value: string,
  shouldEncode: (word: string) => boolean,
  decode: (binary: string) => string,
): Piece[] {
  const words: Word[] = [];
  let ws = '';
  value.split(/([ \t]+)/).forEach((token, index) => {
    if (index % 2 === 1) ws += token;
    else if (token !== '') {
      words.push({ ws, raw: token, text: token, encode: shouldEncode(token) });
      ws = '';
    }
  });
  const pieces = renderWords(words, decode);
  if (ws !== '') pieces.push({ ws, text: '', encode: false });
  return pieces;
}

type AddressTokenKind = 'ws' | 'atom' | 'quoted' | 'comment' | 'angle' | 'special';

interface AddressToken {
  kind: AddressTokenKind;
  text: string;
}

function closingQuote(value: string, start: number): number {
  for (let i = start + 1; i < value.length; i++) {
    if (value[i] === '\\') i++;
    else if (value[i] === '"') return i + 1;
  }
  return value.length;
}

function closingComment(value: string, start: number): number {
  let depth = 0;
  for (let i = start; i < value.length; i++) {
    const c = value[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return value.length;
}

function closingAngle(value: string, start: number): number {
  for (let i = start + 1; i < value.length; i++) {
    if (value[i] === '"') i = closingQuote(value, i) - 1;
    else if (value[i] === '>') return i + 1;
  }
  return value.length;
}

/** RFC 5322 §3.2 lexical tokens, loosely: dots and `@` stay inside atoms, addresses are not taken apart. */
function tokenizeAddress(value: string): AddressToken[] {
  const tokens: AddressToken[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    let end = i + 1;
    let kind: AddressTokenKind;
    if (c === ' ' || c === '\t') {
      kind = 'ws';
      while (end < value.length && (value[end] === ' ' || value[end] === '\t')) end++;
    } else if (c === '"') {
      kind = 'quoted';
      end = closingQuote(value, i);
    } else if (c === '(') {
      kind = 'comment';
      end = closingComment(value, i);
    } else if (c === '<') {
      kind = 'angle';
      end = closingAngle(value, i);
    } else if (c === ',' || c === ';' || c === ':') {
      kind = 'special';
    } else {
      kind = 'atom';
      while (end < value.length && !' \t"(<,;:'.includes(value[end]!)) end++;
    }
    tokens.push({ kind, text: value.slice(i, end) });
    i = end;
  }
  return tokens;
}

function unquote(quoted: string): string {
  const inner = quoted.slice(1, quoted.length > 1 && quoted.endsWith('"') ? -1 : undefined);
  return inner.replace(/\\([\s\S])/g, '$1');
}

/** A comment's words with 8-bit text are encoded (RFC 2047 §5 (2)); nested comments likewise. */
function commentPieces(raw: string, decode: (binary: string) => string): Piece[] {
  const plain = [{ ws: '', text: raw, encode: false }];
  if (!EIGHT_BIT.test(raw)) return plain;
  const elements: Element[] = [];
  let ws = '';
  let i = 1;
  while (i < raw.length) {
    const c = raw[i]!;
    if (c === ')') {
      // Only a comment closed at its very end can be taken apart safely.
      if (i !== raw.length - 1) return plain;
      return [
        { ws: '', text: '(', encode: false },
        ...renderWords(elements, decode),
        { ws, text: ')', encode: false },
      ];
    }
    if (c === ' ' || c === '\t') {
      ws += c;
      i++;
    } else if (c === '(') {
      const end = closingComment(raw, i);
      elements.push({ ws, pieces: commentPieces(raw.slice(i, end), decode) });
      ws = '';
      i = end;
    } else {
      let end = i;
      let text = '';
      while (end < raw.length && !' \t()'.includes(raw[end]!)) {
        if (raw[end] === '\\' && end + 1 < raw.length) end++;
        text += raw[end];
        end++;
      }
      const word = raw.slice(i, end);
      elements.push({ ws, raw: word, text, encode: EIGHT_BIT.test(word) });
      ws = '';
      i = end;
    }
  }
  return plain;
}

interface Spaced {
  ws: string;
  token: AddressToken;
}

function addressElements(tokens: readonly Spaced[], phrase: boolean, decode: (binary: string) => string) {
  return tokens.map(({ ws, token }): Element => {
    if (token.kind === 'comment') return { ws, pieces: commentPieces(token.text, decode) };
    const text = token.kind === 'quoted' ? unquote(token.text) : token.text;
    return { ws, raw: token.text, text, encode: phrase && EIGHT_BIT.test(token.text) };
  });
}

/**
 * Only display names and group names (the phrase before `<` or `:`) and comments are encoded
 * (RFC 2047 §5 (3)); addresses, inside `<...>` or bare, are never touched.
 */
function addressPieces(value: string, decode: (binary: string) => string): Piece[] {
  const pieces: Piece[] = [];
  let pending: Spaced[] = [];
  let ws = '';
  for (const token of tokenizeAddress(value)) {
    if (token.kind === 'ws') {
      ws += token.text;
      continue;
    }
    if (token.kind === 'angle' || token.text === ':') {
      const phrase = renderWords(addressElements(pending, true, decode), decode);
      const encodedLast = phrase.at(-1)?.encode === true;
      pieces.push(...phrase, { ws: ws === '' && encodedLast ? ' ' : ws, text: token.text, encode: false });
      pending = [];
    } else if (token.kind === 'special') {
      pieces.push(...renderWords(addressElements(pending, false, decode), decode));
      pieces.push({ ws, text: token.text, encode: false });
      pending = [];
    } else {
      pending.push({ ws, token });
    }
    ws = '';
  }
  pieces.push(...renderWords(addressElements(pending, false, decode), decode));
  if (ws !== '') pieces.push({ ws, text: '', encode: false });
  return pieces;
}

function qEncoded(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    // RFC 2047 §5 (3): the characters a Q encoded-word may carry literally anywhere, phrases included.
    if (/[A-Za-z0-9!*+\-/]/.test(String.fromCharCode(byte))) out += String.fromCharCode(byte);
    else if (byte === 0x20) out += '_';
    else out += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Hands out a text as UTF-8 encoded-words of a given size, never splitting a code point. */
class EncodedWords {
  readonly #units: Buffer[];
  readonly #q: boolean;
  #index = 0;

  constructor(text: string) {
    this.#units = Array.from(text, (codePoint) => Buffer.from(codePoint, 'utf8'));
    const bytes = this.#units.reduce((sum, unit) => sum + unit.length, 0);
    const qLength = this.#units.reduce((sum, unit) => sum + qEncoded(unit).length, 0);
    // Q stays readable in a raw header; B wins when it is shorter.
    this.#q = qLength <= Math.ceil(bytes / 3) * 4;
  }

  get done(): boolean {
    return this.#index >= this.#units.length;
  }

  /** The next encoded-word, at most `maxLength` characters long (always at least one code point). */
  next(maxLength: number): string {
    const budget = maxLength - ENCODED_WORD_OVERHEAD;
    if (this.#q) {
      let out = '';
      while (!this.done) {
        const encoded = qEncoded(this.#units[this.#index]!);
        if (out !== '' && out.length + encoded.length > budget) break;
        out += encoded;
        this.#index++;
      }
      return `=?UTF-8?Q?${out}?=`;
    }
    const taken: Buffer[] = [];
    let length = 0;
    while (!this.done) {
      const unit = this.#units[this.#index]!;
      if (taken.length > 0 && Math.ceil((length + unit.length) / 3) * 4 > budget) break;
      taken.push(unit);
      length += unit.length;
      this.#index++;
    }
    return `=?UTF-8?B?${Buffer.concat(taken).toString('base64')}?=`;
  }
}

/**
 * Writes a field from pieces, folding before white space so lines stay within 78 characters where
 * the words allow. The first word stays on the field name's line.
 */
function layout(head: string, pieces: readonly Piece[]): string {
  const lines: string[] = [];
  let line = head;
  let foldable = false;
  const fold = () => {
    lines.push(line);
    line = '';
  };
  for (const piece of pieces) {
    if (!piece.encode) {
      const tooLong = line.length + piece.ws.length + piece.text.length > FOLD_AT;
      if (piece.ws !== '' && piece.text !== '' && foldable && tooLong) fold();
      line += piece.ws + piece.text;
      if (piece.text !== '') foldable = true;
      continue;
    }
    const words = new EncodedWords(piece.text);
    let ws = piece.ws;
    while (!words.done) {
      let room = FOLD_AT - line.length - ws.length;
      if (ws !== '' && foldable && room < MIN_ENCODED_WORD) {
        fold();
        room = FOLD_AT - ws.length;
      }
      line += ws + words.next(Math.min(MAX_ENCODED_WORD, Math.max(MIN_ENCODED_WORD, room)));
      foldable = true;
      ws = ' ';
    }
  }
  lines.push(line);
  return lines.join('\r\n');
}

/**
 * One header field (`raw`: its bytes as a binary string, continuation lines included) made safe for an
 * upstream without SMTPUTF8: 8-bit text in address phrases, comments and unstructured fields becomes
 * RFC 2047 encoded-words (UTF-8, B or Q, whichever is shorter), and the field is refolded. With
 * SMTPUTF8 (RFC 6532) UTF-8 stays as it is and windows-1252 text is transcoded to UTF-8.
 * A field without 8-bit bytes comes back unchanged.
 */
export function encodeHeaderField(raw: string, options: HeaderOptions): string {
  if (!EIGHT_BIT.test(raw)) return raw;
  const charset = detectCharset(raw);
  if (options.smtpUtf8) {
    if (charset === 'utf-8') return raw;
    return Buffer.from(decodeBinary(raw, charset), 'utf8').toString('latin1');
  }
  const { head, value } = splitField(raw);
  const kind = fieldKind(head);
  if (kind === 'structured') return raw;
  const decode = (binary: string) => decodeBinary(binary, charset);
  const pieces =
    kind === 'address'
      ? addressPieces(value, decode)
      : unstructuredPieces(value, (word) => EIGHT_BIT.test(word), decode);
  // 8-bit only inside addresses: nothing may be encoded, so the field stays as the device wrote it.
  if (!pieces.some((piece) => piece.encode)) return raw;
  return layout(head, pieces);
}

function isWsp(c: string | undefined): boolean {
  return c === ' ' || c === '\t';
}

/**
 * Splits one line before white space into lines of at most 78 characters where possible. Every line
 * keeps something besides white space, and a quoted-pair (`\ `) is never cut.
 */
function foldAtWhitespace(line: string, from: number): string[] {
  let lastContent = line.length - 1;
  while (lastContent >= 0 && isWsp(line[lastContent])) lastContent--;
  const breaks: number[] = [];
  for (let i = Math.max(from, 1); i < lastContent; i++) {
    if (isWsp(line[i]) && !isWsp(line[i - 1]) && line[i - 1] !== '\\') breaks.push(i);
  }
  const lines: string[] = [];
  let start = 0;
  let next = 0;
  while (line.length - start > FOLD_AT) {
    let pick = -1;
    while (next < breaks.length && breaks[next]! <= start + FOLD_AT) pick = breaks[next++]!;
    if (pick < 0 && next < breaks.length) pick = breaks[next++]!;
    if (pick < 0) break;
    lines.push(line.slice(start, pick));
    start = pick;
  }
  lines.push(line.slice(start));
  return lines;
}

/**
 * A field with a line over 998 characters, folded at white space (RFC 5322 §2.2.3: unfolding gives
 * back the same field). Lines within the limit are kept as they are. When white space is not enough,
 * an unstructured field gets its overlong words as encoded-words, which can be folded between.
 * A structured field (addresses, Message-ID, References, Received) has no such way out: encoded-words
 * are not allowed there, so a run of over 998 characters without white space is left as it is.
 */
export function foldHeaderField(raw: string): string {
  const lines = raw.split(/\r?\n/);
  if (lines.every((line) => line.length <= MAX_LINE)) return raw;
  const colon = raw.indexOf(':');
  const folded = lines.flatMap((line, index) =>
    line.length > MAX_LINE ? foldAtWhitespace(line, index === 0 ? colon + 1 : 1) : [line],
  );
  if (folded.every((line) => line.length <= MAX_LINE)) return folded.join('\r\n');
  const { head, value } = splitField(raw);
  if (fieldKind(head) !== 'unstructured') return raw;
  const charset = detectCharset(raw);
  const longest = MAX_LINE - head.length - 1;
  return layout(
    head,
    unstructuredPieces(
      value,
      (word) => word.length > longest,
      (binary) => decodeBinary(binary, charset),
    ),
  );
}

const CR = 0x0d;
const LF = 0x0a;
const TAB = 0x09;
const SPACE = 0x20;
const DASH = 0x2d;
const EQUALS = 0x3d;
const CRLF = Buffer.from('\r\n');
const HEX = Buffer.from('0123456789ABCDEF');
/** RFC 2045 §6.7: quoted-printable lines are at most 76 characters, the soft break's `=` included. */
const MAX_QP_LINE = 76;
/** Part headers beyond this are not parsed: the part goes through as it is. */
const MAX_PART_HEADER = 64 * 1024;
/** `--` + a boundary (RFC 2046 §5.1.1 allows 70 characters; some mailers write more) + `--` + padding. */
const MAX_DELIMITER_LINE = 512;
const MAX_BOUNDARY = 200;
const MAX_NESTING = 32;
/** After the first 998 octets, a split line goes on in lines of the length base64 uses (RFC 2045 §6.8). */
const SPLIT_WIDTH = 76;
/** Encodings under which a line is a line of the content, and quoted-printable may replace them. */
const IDENTITY_ENCODINGS = new Set(['', '7bit', '8bit']);
const CTE_QUOTED_PRINTABLE = 'Content-Transfer-Encoding: quoted-printable';

/** RFC 2045 §6.7 rule 2: printable ASCII except `=` goes as it is. */
const QP_LITERAL = new Uint8Array(256);
for (let byte = 33; byte <= 126; byte++) if (byte !== EQUALS) QP_LITERAL[byte] = 1;

/** Quoted-printable with hard line breaks where the content has its line ends. */
class QuotedPrintableEncoder {
  #column = 0;
  /** A space or tab not yet written: at the end of a line it has to be `=20`/`=09` (RFC 2045 §6.7 rule 3). */
  #heldSpace = -1;

  encode(buf: Buffer, start: number, end: number): Buffer {
    const out = Buffer.allocUnsafe((end - start) * 6 + 6);
    let n = 0;
    for (let k = start; k < end; k++) {
      const byte = buf[k]!;
      if (this.#heldSpace >= 0) {
        n = this.#put(out, n, this.#heldSpace, false);
        this.#heldSpace = -1;
      }
      if (byte === SPACE || byte === TAB) this.#heldSpace = byte;
      else n = this.#put(out, n, byte, QP_LITERAL[byte] === 0);
    }
    return out.subarray(0, n);
  }

  /** Ends the current line of the content, with a hard line break unless the content ends here. */
  endLine(hardBreak: boolean): Buffer {
    const out = Buffer.allocUnsafe(8);
    let n = 0;
    if (this.#heldSpace >= 0) {
      if (this.#column + 3 > MAX_QP_LINE) n = softBreak(out, n);
      n = escape(out, n, this.#heldSpace);
      this.#heldSpace = -1;
    }
    if (hardBreak) {
      out[n++] = CR;
      out[n++] = LF;
    }
    this.#column = 0;
    return out.subarray(0, n);
  }

  #put(out: Buffer, n: number, byte: number, escaped: boolean): number {
    const width = escaped ? 3 : 1;
    let at = n;
    // Leaves room for the `=` of a soft line break.
    if (this.#column + width > MAX_QP_LINE - 1) {
      at = softBreak(out, at);
      this.#column = 0;
    }
    this.#column += width;
    if (escaped) return escape(out, at, byte);
    out[at] = byte;
    return at + 1;
  }
}

function softBreak(out: Buffer, n: number): number {
  out[n] = EQUALS;
  out[n + 1] = CR;
  out[n + 2] = LF;
  return n + 3;
}

function escape(out: Buffer, n: number, byte: number): number {
  out[n] = EQUALS;
  out[n + 1] = HEX[byte >> 4]!;
  out[n + 2] = HEX[byte & 15]!;
  return n + 3;
}

interface EntityShape {
  type: string;
  boundary: string | null;
  encoding: string;
}

function entityShape(fields: readonly HeaderField[], defaultType: string): EntityShape {
  const find = (name: string) => fields.find((field) => field.name.toLowerCase() === name);
  const contentType = find('content-type');
  const encodingField = find('content-transfer-encoding');
  const encoding = encodingField
    ? (/^[^\s;(]*/.exec(fieldValue(encodingField))?.[0] ?? '').toLowerCase()
    : '';
  if (!contentType) return { type: defaultType, boundary: null, encoding };
  const [type = '', ...parameters] = splitOutsideQuotes(fieldValue(contentType), ';');
  let boundary: string | null = null;
  for (const parameter of parameters) {
    const eq = parameter.indexOf('=');
    if (eq < 0 || parameter.slice(0, eq).trim().toLowerCase() !== 'boundary') continue;
    const raw = parameter.slice(eq + 1).trim();
    boundary = raw.startsWith('"') ? unquote(raw) : raw;
  }
  if (boundary !== null && (boundary.length === 0 || boundary.length > MAX_BOUNDARY)) boundary = null;
  return { type: type.trim().toLowerCase() || defaultType, boundary, encoding };
}

interface HeaderFrame {
  kind: 'headers';
  lines: Buffer[];
  size: number;
  defaultType: string;
}

interface MultipartFrame {
  kind: 'multipart';
  /** `--` + boundary. */
  delimiter: Buffer;
  digest: boolean;
}

/**
 * `pass`: as it is; `split`: lines over 998 octets cut (base64, preamble, epilogue, where line breaks
 * carry no meaning); `qp`: re-encoded as quoted-printable.
 */
interface LeafFrame {
  kind: 'leaf';
  entity: number;
  /** 7bit, 8bit or no encoding: lines over 998 octets here need quoted-printable. */
  identity: boolean;
  mode: 'pass' | 'split' | 'qp';
}

type Frame = HeaderFrame | MultipartFrame | LeafFrame;

/** What happens to the LF of a CRLF whose CR ended the previous chunk. */
type LateLineFeed = 'emit' | 'drop' | 'collect';

export interface BodyScan {
  /** Some line would be changed: a part header, a base64 line, a preamble line, or a re-encoded part. */
  rewrap: boolean;
  /** Entities to re-encode as quoted-printable: 0 is the message's own body, then MIME parts in order. */
  reencode: ReadonlySet<number>;
  /** Lines over 998 octets in parts whose encoding cannot be changed (binary, broken quoted-printable). */
  unfixable: boolean;
  /** What the message's own body holds, when it is not multipart (for a Content-Type the device left out). */
  bodyCharset: BodyCharset;
  /** Lines ending in more than one CR before the LF (`\r\r\n`), which become plain CRLF (line-ends.ts). */
  carriageReturnRuns: boolean;
}

/**
 * Walks a body line by line through its MIME structure with bounded memory: a line is never held
 * whole (only its first octets when it may be a boundary), part headers up to MAX_PART_HEADER.
 * Lines end in CRLF, a bare LF or a bare CR, as the SMTP data encoder reads them. In scanning mode
 * (`reencode` null) it writes nothing and records which parts need re-encoding; otherwise it writes
 * the normalized body. Both modes parse the same way, so entity numbers agree.
 */
class MimeWalker {
  readonly #reencode: ReadonlySet<number> | null;
  readonly #stack: Frame[] = [];
  #entities = 1;
  #lineLength = 0;
  #peeked: Buffer[] | null = null;
  #peekedLength = 0;
  #lateLineFeed: LateLineFeed | null = null;
  readonly #qp = new QuotedPrintableEncoder();
  #pieces: Buffer[] = [];
  #lastBuffer: Buffer | null = null;
  #lastStart = 0;
  #lastEnd = 0;
  readonly #reencodeFound = new Set<number>();
  #rewrap = false;
  #unfixable = false;
  #bodyEightBit = false;
  #bodyUtf8 = true;
  readonly #bodyDecoder = new TextDecoder('utf-8', { fatal: true });

  constructor(fields: readonly HeaderField[], reencode: ReadonlySet<number> | null) {
    this.#reencode = reencode;
    this.#stack.push(this.#frameFor(0, entityShape(fields, 'text/plain')));
  }

  write(chunk: Buffer): void {
    let i = 0;
    if (this.#lateLineFeed !== null) {
      const late = this.#lateLineFeed;
      this.#lateLineFeed = null;
      if (chunk.length > 0 && chunk[0] === LF) {
        i = 1;
        if (late === 'emit') this.#emitRange(chunk, 0, 1);
        else if (late === 'collect') this.#collectLineFeed();
      }
    }
    // Where the next CR and LF are (-1: none left), found natively and looked for again only once passed.
    let nextCr = chunk.indexOf(CR, i);
    let nextLf = chunk.indexOf(LF, i);
    while (i < chunk.length) {
      if (nextCr >= 0 && nextCr < i) nextCr = chunk.indexOf(CR, i);
      if (nextLf >= 0 && nextLf < i) nextLf = chunk.indexOf(LF, i);
      const lineEnd = nextCr < 0 ? nextLf : nextLf < 0 ? nextCr : Math.min(nextCr, nextLf);
      const end = lineEnd < 0 ? chunk.length : lineEnd;
      if (end > i) this.#content(chunk, i, end);
      if (end === chunk.length) return;
      let after = end + 1;
      const crAtEnd = chunk[end] === CR && after === chunk.length;
      if (chunk[end] === CR && chunk[after] === LF) after++;
      const late = this.#lineEnd(chunk, end, after);
      if (crAtEnd) this.#lateLineFeed = late;
      i = after;
    }
  }

  end(): void {
    if (this.#peeked !== null) {
      const line = Buffer.concat(this.#peeked);
      this.#peeked = null;
      const match = this.#matchDelimiter(line);
      if (match) this.#delimiter(match.depth, match.close, line, line, 0, 0);
      else this.#dispatch(line, 0, line.length);
    }
    this.#recordLine();
    while (this.#stack.length > 0) this.#close(this.#stack.pop()!);
    if (this.#bodyEightBit && this.#bodyUtf8) {
      try {
        this.#bodyDecoder.decode();
      } catch {
        this.#bodyUtf8 = false;
      }
    }
  }

  /** The output written since the last call. */
  take(): Buffer {
    const pieces = this.#pieces;
    this.#pieces = [];
    this.#lastBuffer = null;
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  }

  scan(): Omit<BodyScan, 'carriageReturnRuns'> {
    return {
      rewrap: this.#rewrap,
      reencode: this.#reencodeFound,
      unfixable: this.#unfixable,
      bodyCharset: !this.#bodyEightBit ? 'us-ascii' : this.#bodyUtf8 ? 'utf-8' : 'windows-1252',
    };
  }

  get #scanning(): boolean {
    return this.#reencode === null;
  }

  #frameFor(entity: number, shape: EntityShape): Frame {
    const nested = this.#stack.length < MAX_NESTING;
    const composite = shape.type.startsWith('multipart/') || shape.type.startsWith('message/');
    if (shape.type.startsWith('multipart/') && shape.boundary !== null && nested) {
      return {
        kind: 'multipart',
        delimiter: Buffer.from(`--${shape.boundary}`, 'latin1'),
        digest: shape.type === 'multipart/digest',
      };
    }
    const identity = IDENTITY_ENCODINGS.has(shape.encoding);
    if ((shape.type === 'message/rfc822' || shape.type === 'message/global') && identity && nested) {
      return { kind: 'headers', lines: [], size: 0, defaultType: 'text/plain' };
    }
    // RFC 2045 §6.4: multipart and message entities cannot be given quoted-printable.
    const reencodable = identity && !composite;
    let mode: LeafFrame['mode'] = 'pass';
    if (reencodable && this.#reencode?.has(entity)) mode = 'qp';
    else if (shape.encoding === 'base64') mode = 'split';
    return { kind: 'leaf', entity, identity: reencodable, mode };
  }

  #top(): Frame {
    return this.#stack[this.#stack.length - 1]!;
  }

  #content(buf: Buffer, start: number, end: number): void {
    if (
      this.#peeked === null &&
      this.#lineLength === 0 &&
      buf[start] === DASH &&
      this.#stack.some((frame) => frame.kind === 'multipart')
    ) {
      this.#peeked = [];
      this.#peekedLength = 0;
    }
    if (this.#peeked === null) {
      this.#dispatch(buf, start, end);
      return;
    }
    this.#peeked.push(Buffer.from(buf.subarray(start, end)));
    this.#peekedLength += end - start;
    if (this.#peekedLength <= MAX_DELIMITER_LINE) return;
    const line = Buffer.concat(this.#peeked);
    this.#peeked = null;
    this.#dispatch(line, 0, line.length);
  }

  #dispatch(buf: Buffer, start: number, end: number): void {
    const column = this.#lineLength;
    this.#lineLength += end - start;
    const frame = this.#top();
    if (frame.kind === 'headers') {
      if (frame.size + (end - start) <= MAX_PART_HEADER) {
        frame.lines.push(Buffer.from(buf.subarray(start, end)));
        frame.size += end - start;
        return;
      }
      // Not a header block anyone writes: the part goes through unparsed.
      this.#emit(Buffer.concat(frame.lines));
      this.#stack[this.#stack.length - 1] = {
        kind: 'leaf',
        entity: this.#entities++,
        identity: false,
        mode: 'pass',
      };
      this.#emitRange(buf, start, end);
      return;
    }
    if (frame.kind === 'multipart' || frame.mode === 'split') {
      this.#split(buf, start, end, column);
    } else if (frame.mode === 'qp') {
      this.#emit(this.#qp.encode(buf, start, end));
    } else {
      this.#emitRange(buf, start, end);
    }
    if (this.#scanning && frame.kind === 'leaf' && frame.entity === 0) this.#trackCharset(buf, start, end);
  }

  #trackCharset(buf: Buffer, start: number, end: number): void {
    if (!this.#bodyEightBit) {
      let k = start;
      while (k < end && buf[k]! < 0x80) k++;
      if (k === end) return;
      this.#bodyEightBit = true;
    }
    if (!this.#bodyUtf8) return;
    try {
      this.#bodyDecoder.decode(buf.subarray(start, end), { stream: true });
    } catch {
      this.#bodyUtf8 = false;
    }
  }

  /** Octets up to 998 go as they are; past that, a line break every SPLIT_WIDTH octets. */
  #split(buf: Buffer, start: number, end: number, column: number): void {
    let k = start;
    let col = column;
    while (k < end) {
      const past = col - MAX_LINE;
      if (past >= 0 && past % SPLIT_WIDTH === 0) this.#emit(CRLF);
      const nextBreak = past < 0 ? MAX_LINE : col + SPLIT_WIDTH - (past % SPLIT_WIDTH);
      const take = Math.min(end - k, nextBreak - col);
      this.#emitRange(buf, k, k + take);
      k += take;
      col += take;
    }
  }

  #recordLine(): void {
    if (this.#lineLength <= MAX_LINE) return;
    const frame = this.#top();
    if (frame.kind !== 'leaf' || frame.mode === 'split') this.#rewrap = true;
    else if (frame.identity) {
      this.#rewrap = true;
      this.#reencodeFound.add(frame.entity);
    } else this.#unfixable = true;
  }

  #lineEnd(buf: Buffer, start: number, end: number): LateLineFeed {
    if (this.#peeked !== null) {
      const line = Buffer.concat(this.#peeked);
      this.#peeked = null;
      const match = this.#matchDelimiter(line);
      if (match) return this.#delimiter(match.depth, match.close, line, buf, start, end);
      this.#dispatch(line, 0, line.length);
    }
    this.#recordLine();
    const blank = this.#lineLength === 0;
    this.#lineLength = 0;
    const frame = this.#top();
    if (frame.kind === 'headers') {
      frame.lines.push(Buffer.from(buf.subarray(start, end)));
      frame.size += end - start;
      return blank ? this.#endHeaders(frame) : 'collect';
    }
    if (frame.kind === 'leaf' && frame.mode === 'qp') {
      this.#emit(this.#qp.endLine(true));
      return 'drop';
    }
    if (this.#scanning && frame.kind === 'leaf' && frame.entity === 0 && this.#bodyEightBit) {
      this.#trackCharset(CRLF, 1, 2);
    }
    this.#emitRange(buf, start, end);
    return 'emit';
  }

  #collectLineFeed(): void {
    const frame = this.#top();
    if (frame.kind !== 'headers') return;
    frame.lines.push(Buffer.from([LF]));
    frame.size++;
  }

  #matchDelimiter(line: Buffer): { depth: number; close: boolean } | null {
    for (let depth = this.#stack.length - 1; depth >= 0; depth--) {
      const frame = this.#stack[depth]!;
      if (frame.kind !== 'multipart') continue;
      const { delimiter } = frame;
      if (line.length < delimiter.length || !line.subarray(0, delimiter.length).equals(delimiter)) continue;
      let rest = line.subarray(delimiter.length);
      const close = rest.length >= 2 && rest[0] === DASH && rest[1] === DASH;
      if (close) rest = rest.subarray(2);
      // RFC 2046 §5.1.1: transport padding (white space) may follow a delimiter.
      if (rest.every((byte) => byte === SPACE || byte === TAB)) return { depth, close };
    }
    return null;
  }

  #delimiter(
    depth: number,
    close: boolean,
    line: Buffer,
    buf: Buffer,
    start: number,
    end: number,
  ): LateLineFeed {
    // A boundary of an enclosing multipart ends the parts inside it (RFC 2046 §5.1.2).
    while (this.#stack.length - 1 > depth) this.#close(this.#stack.pop()!);
    const frame = this.#stack[depth] as MultipartFrame;
    this.#emit(line);
    this.#emitRange(buf, start, end);
    this.#lineLength = 0;
    if (!close) {
      this.#stack.push({
        kind: 'headers',
        lines: [],
        size: 0,
        defaultType: frame.digest ? 'message/rfc822' : 'text/plain',
      });
    }
    return 'emit';
  }

  #close(frame: Frame): void {
    if (frame.kind === 'headers') this.#emit(Buffer.concat(frame.lines));
    else if (frame.kind === 'leaf' && frame.mode === 'qp') this.#emit(this.#qp.endLine(false));
  }

  #endHeaders(frame: HeaderFrame): LateLineFeed {
    const head = Buffer.concat(frame.lines);
    // A bare CR ends a line here as it does for the SMTP data encoder; headers.ts only knows LF.
    const lines = Buffer.from(head.toString('latin1').replace(/\r\n?/g, '\n'), 'latin1');
    const block = parseHeaderBlock(lines, lines.length);
    const entity = this.#entities++;
    if (block.bodyOffset !== lines.length) {
      this.#stack[this.#stack.length - 1] = { kind: 'leaf', entity, identity: false, mode: 'pass' };
      this.#emit(head);
      return 'emit';
    }
    const next = this.#frameFor(entity, entityShape(block.fields, frame.defaultType));
    this.#stack[this.#stack.length - 1] = next;
    if (this.#scanning) return 'emit';
    const fields = block.fields.map((field) => foldHeaderField(field.raw));
    let changed = fields.some((line, index) => line !== block.fields[index]!.raw);
    if (next.kind === 'leaf' && next.mode === 'qp') {
      setTransferEncoding(block.fields, fields);
      changed = true;
    }
    if (!changed) {
      this.#emit(head);
      return 'emit';
    }
    this.#emit(Buffer.from(`${fields.join('\r\n')}\r\n\r\n`, 'latin1'));
    return 'drop';
  }

  #emit(bytes: Buffer): void {
    if (this.#scanning || bytes.length === 0) return;
    this.#pieces.push(bytes);
    this.#lastBuffer = null;
  }

  /** Passes octets of an input chunk on, as one slice when they follow the previous ones. */
  #emitRange(buf: Buffer, start: number, end: number): void {
    if (this.#scanning || end <= start) return;
    if (this.#lastBuffer === buf && this.#lastEnd === start) {
      this.#pieces[this.#pieces.length - 1] = buf.subarray(this.#lastStart, end);
    } else {
      this.#pieces.push(buf.subarray(start, end));
      this.#lastBuffer = buf;
      this.#lastStart = start;
    }
    this.#lastEnd = end;
  }
}

/** Replaces the Content-Transfer-Encoding in `lines` (parallel to `fields`), or adds one. */
function setTransferEncoding(fields: readonly HeaderField[], lines: string[]): void {
  let replaced = false;
  for (let index = fields.length - 1; index >= 0; index--) {
    if (fields[index]!.name.toLowerCase() !== 'content-transfer-encoding') continue;
    const isFirst = !fields.slice(0, index).some((f) => f.name.toLowerCase() === 'content-transfer-encoding');
    if (isFirst) {
      lines[index] = CTE_QUOTED_PRINTABLE;
      replaced = true;
    } else lines.splice(index, 1);
  }
  if (!replaced) lines.push(CTE_QUOTED_PRINTABLE);
}

/**
 * Pass 1 over the body (the octets after the header block): which parts have lines over 998 octets,
 * and so whether the headers announce quoted-printable, and whether lines end in `\r\r\n`. Reads
 * the stream once, holds no content.
 */
export async function scanBody(
  fields: readonly HeaderField[],
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
): Promise<BodyScan> {
  const walker = new MimeWalker(fields, null);
  // The walker reads lines as they will go upstream, so a `\r\r\n` is one line end to it too.
  const runs = new CarriageReturnRuns();
  for await (const chunk of body) {
    noteStreamed(chunk.length);
    walker.write(runs.write(chunk));
  }
  walker.write(runs.end());
  walker.end();
  return { ...walker.scan(), carriageReturnRuns: runs.changed };
}

/**
 * Pass 2: the body with every `\r\r\n` made CRLF and lines over 998 octets re-wrapped. Parts in
 * `reencode` (numbered as in BodyScan) become quoted-printable, their part headers say so; base64
 * lines, preamble and epilogue are cut; part header lines over 998 characters are folded.
 * Everything else passes untouched. `fields` are the message's own header fields, which say whether
 * the body is multipart.
 */
export function createBodyNormalizer(
  fields: readonly HeaderField[],
  reencode: ReadonlySet<number>,
): Transform {
  const walker = new MimeWalker(fields, reencode);
  const runs = new CarriageReturnRuns();
  const run = (step: () => void, callback: (error?: Error | null, data?: Buffer) => void) => {
    try {
      step();
    } catch (error) {
      callback(error as Error);
      return;
    }
    const out = walker.take();
    callback(null, out.length > 0 ? out : undefined);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      run(() => walker.write(runs.write(chunk)), callback);
    },
    flush(callback) {
      run(() => {
        walker.write(runs.end());
        walker.end();
      }, callback);
    },
  });
}

export interface NormalizeOptions extends HeaderOptions {
  /** The result of scanBody; without it the body is left as it is. */
  body?: BodyScan;
}

export interface NormalizedHeaderBlock {
  /** The header fields to send, in order, each a binary string without its final CRLF. */
  fields: string[];
  /** A fresh transform for each reading of the body, or null when the body goes as it is. */
  bodyTransform: (() => Transform) | null;
  /** What was changed, for the log: field names and kinds of change, never header content. */
  changed: string[];
}

/**
 * The header block made fit for the upstream: every field through encodeHeaderField and
 * foldHeaderField; when the body scan found a plain body with lines over 998 octets, the
 * Content-Transfer-Encoding becomes quoted-printable (with MIME-Version, and a Content-Type naming the
 * body's charset when the device sent none).
 */
export function normalizeHeaderBlock(
  fields: readonly HeaderField[],
  options: NormalizeOptions,
): NormalizedHeaderBlock {
  const changed: string[] = [];
  const lines = fields.map((field) => {
    const encoded = encodeHeaderField(field.raw, options);
    if (encoded !== field.raw) {
      changed.push(
        options.smtpUtf8
          ? `${field.name}: windows-1252 text transcoded to UTF-8`
          : `${field.name}: 8-bit text encoded as RFC 2047 encoded-words`,
      );
    }
    const folded = foldHeaderField(encoded);
    if (folded !== encoded) changed.push(`${field.name}: line over 998 characters folded`);
    return folded;
  });
  const scan = options.body;
  if (scan?.unfixable) changed.push('body: lines over 998 octets in a part whose encoding cannot change');
  if (scan?.carriageReturnRuns) changed.push('body: CRs before line ends (\\r\\r\\n) taken out');
  if (!scan?.rewrap) {
    const bodyTransform = scan?.carriageReturnRuns ? () => createBodyNormalizer(fields, new Set()) : null;
    return { fields: lines, bodyTransform, changed };
  }

  const has = (name: string) => fields.some((field) => field.name.toLowerCase() === name);
  if (scan.reencode.has(0)) {
    setTransferEncoding(fields, lines);
    // Without MIME-Version a reader need not honour Content-Transfer-Encoding (RFC 2045 §4).
    if (!has('mime-version')) lines.push('MIME-Version: 1.0');
    if (!has('content-type') && scan.bodyCharset !== 'us-ascii') {
      lines.push(`Content-Type: text/plain; charset=${scan.bodyCharset}`);
    }
    changed.push('body: lines over 998 octets, re-encoded as quoted-printable');
  } else if (scan.reencode.size > 0) {
    changed.push(
      `body: ${scan.reencode.size} part(s) with lines over 998 octets re-encoded as quoted-printable`,
    );
  } else {
    changed.push('body: lines over 998 octets re-wrapped');
  }
  const reencode = new Set(scan.reencode);
  return { fields: lines, bodyTransform: () => createBodyNormalizer(fields, reencode), changed };
}

export interface NormalizedMessage extends NormalizedHeaderBlock {
  /** Octets of the body after bodyTransform (for SIZE=), or null when the body goes as it is. */
  bodySize: number | null;
}

/**
 * The entry point for delivery: scans the body (`openBody` gives a fresh stream of the octets after
 * the header block each call), normalizes the header block, and when the body changes measures it
 * with one more read. Memory stays bounded whatever the message size.
 */
export async function normalizeMessage(
  fields: readonly HeaderField[],
  openBody: () => Readable | Iterable<Buffer>,
  options: HeaderOptions,
): Promise<NormalizedMessage> {
  const scan = await scanBody(fields, openBody());
  const block = normalizeHeaderBlock(fields, { ...options, body: scan });
  if (!block.bodyTransform) return { ...block, bodySize: null };
  let bodySize = 0;
  await pipeline(openBody(), block.bodyTransform(), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      noteStreamed(chunk.length);
      bodySize += chunk.length;
    }
  });
  return { ...block, bodySize };
}
