/**
 * Just enough MIME (RFC 2045, 2046, 2047, 2231) for the Graph upload path: the part tree of a message
 * with each part's byte range, so that large attachments can be cut out of the MIME and uploaded on
 * their own while every other byte reaches Graph exactly as the device wrote it.
 */
import {
  fieldValue,
  findField,
  parseHeaderBlock,
  rawHeaderText,
  splitOutsideQuotes,
  type HeaderField,
} from '../message/headers.ts';

export interface MimePart {
  /** Where the part's header starts and its content ends (exclusive), in the message. */
  start: number;
  end: number;
  bodyStart: number;
  fields: HeaderField[];
  /** `type/subtype` in lower case; `text/plain` when the part does not say (RFC 2045 §5.2). */
  contentType: string;
  children: MimePart[];
  /** For a part inside a multipart: its delimiter line, content and the line break before the next delimiter. */
  cut: { start: number; end: number; boundary: string } | null;
  parent: MimePart | null;
}

export interface MimeAttachment {
  name: string;
  contentType: string;
  content: Buffer;
  isInline: boolean;
  /** Without the angle brackets; null when the part has no Content-ID. */
  contentId: string | null;
}

/** Nothing legitimate nests deeper; a hostile message could otherwise exhaust the stack. */
const MAX_DEPTH = 32;
const MAX_PART_HEADER_BYTES = 256 * 1024;
const CR = 0x0d;
const LF = 0x0a;

/**
 * Every bare LF and bare CR becomes CRLF, as the SMTP path does (Exchange Online no longer repairs
 * them). As in headers.ts and line-ends.ts, CRs before an LF are one line end (busybox sendmail's
 * `\r\r\n`) and a CR inside a header line is a space: Graph reads To, Cc and Bcc from these lines,
 * so a CR must not make one that sender rewriting and Bcc removal did not see.
 */
export function toCrlf(message: Buffer): Buffer {
  let bare = false;
  for (let i = 0; i < message.length && !bare; i++) {
    const byte = message[i];
    if (byte === LF && message[i - 1] !== CR) bare = true;
    if (byte === CR && message[i + 1] !== LF) bare = true;
  }
  if (!bare) return message;
  const out = Buffer.alloc(message.length * 2);
  let length = 0;
  let inHeader = true;
  let lineStart = 0;
  const endLine = () => {
    if (inHeader && length === lineStart) inHeader = false;
    out[length++] = CR;
    out[length++] = LF;
    lineStart = length;
  };
  for (let i = 0; i < message.length; i++) {
    const byte = message[i]!;
    if (byte === CR) {
      let after = i;
      while (message[after] === CR) after++;
      if (message[after] === LF) {
        endLine();
        i = after;
      } else if (inHeader) {
        out.fill(0x20, length, length + after - i);
        length += after - i;
        i = after - 1;
      } else {
        endLine();
      }
    } else if (byte === LF) {
      endLine();
    } else {
      out[length++] = byte;
    }
  }
  return out.subarray(0, length);
}

export function parseMime(message: Buffer): MimePart {
  return parsePart(message, 0, message.length, null, null, 0);
}

function parsePart(
  message: Buffer,
  start: number,
  end: number,
  cut: MimePart['cut'],
  parent: MimePart | null,
  depth: number,
): MimePart {
  const head = message.subarray(start, Math.min(end, start + MAX_PART_HEADER_BYTES));
  const block = parseHeaderBlock(head, end - start);
  const typeField = findField(block.fields, 'Content-Type');
  const type = typeField ? parseParameterized(fieldValue(typeField)) : null;
  const part: MimePart = {
    start,
    end,
    bodyStart: start + block.bodyOffset,
    fields: block.fields,
    contentType: type && type.value.includes('/') ? type.value : 'text/plain',
    children: [],
    cut,
    parent,
  };
  const boundary = type?.params.get('boundary');
  if (part.contentType.startsWith('multipart/') && boundary && depth < MAX_DEPTH) {
    part.children = splitMultipart(message, part, boundary, depth);
  }
  return part;
}

/** RFC 2046 §5.1.1: a delimiter is `--boundary` at the start of a line, then `--` or padding and CRLF. */
function splitMultipart(message: Buffer, part: MimePart, boundary: string, depth: number): MimePart[] {
  const dash = Buffer.from(`--${boundary}`, 'latin1');
  const delimiters: { start: number; contentStart: number; close: boolean }[] = [];
  let pos = part.bodyStart;
  while (pos < part.end) {
    const found = message.indexOf(dash, pos);
    if (found < 0 || found >= part.end) break;
    pos = found + dash.length;
    if (found !== part.bodyStart && message[found - 1] !== LF) continue;
    const close = message[pos] === 0x2d && message[pos + 1] === 0x2d;
    let lineEnd = close ? pos + 2 : pos;
    while (message[lineEnd] === 0x20 || message[lineEnd] === 0x09) lineEnd++;
    if (lineEnd < part.end && message[lineEnd] !== CR && message[lineEnd] !== LF) continue;
    const next = message.indexOf(LF, lineEnd);
    const contentStart = next < 0 || next >= part.end ? part.end : next + 1;
    delimiters.push({ start: found, contentStart, close });
    if (close) break;
    pos = contentStart;
  }
  const children: MimePart[] = [];
  for (let i = 0; i < delimiters.length; i++) {
    const delimiter = delimiters[i]!;
    if (delimiter.close) break;
    const nextStart = delimiters[i + 1]?.start ?? part.end;
    // The line break before the next delimiter belongs to that delimiter, not to this part's content.
    let contentEnd = nextStart;
    if (delimiters[i + 1] && message[contentEnd - 1] === LF) contentEnd--;
    if (delimiters[i + 1] && message[contentEnd - 1] === CR) contentEnd--;
    contentEnd = Math.max(contentEnd, delimiter.contentStart);
    const cut = { start: delimiter.start, end: nextStart, boundary };
    children.push(parsePart(message, delimiter.contentStart, contentEnd, cut, part, depth + 1));
  }
  return children;
}

export function leaves(part: MimePart): MimePart[] {
  return part.children.length === 0 ? [part] : part.children.flatMap(leaves);
}

function disposition(part: MimePart): { value: string; params: Map<string, string> } | null {
  const field = findField(part.fields, 'Content-Disposition');
  return field ? parseParameterized(fieldValue(field)) : null;
}

/** The message text a reader sees (not a file): a text part that is neither an attachment nor named. */
export function isBodyText(part: MimePart): boolean {
  if (!part.contentType.startsWith('text/')) return false;
  const disp = disposition(part);
  return disp?.value !== 'attachment' && attachmentName(part) === null;
}

function attachmentName(part: MimePart): string | null {
  const fromDisposition = disposition(part)?.params.get('filename');
  if (fromDisposition) return fromDisposition;
  const typeField = findField(part.fields, 'Content-Type');
  return (typeField && parseParameterized(fieldValue(typeField)).params.get('name')) || null;
}

export function toAttachment(message: Buffer, part: MimePart, index: number): MimeAttachment {
  const encodingField = findField(part.fields, 'Content-Transfer-Encoding');
  const encoding = encodingField ? fieldValue(encodingField).toLowerCase() : '7bit';
  const raw = message.subarray(part.bodyStart, part.end);
  const content =
    encoding === 'base64'
      ? Buffer.from(raw.toString('latin1'), 'base64')
      : encoding === 'quoted-printable'
        ? decodeQuotedPrintable(raw)
        : Buffer.from(raw);
  const idField = findField(part.fields, 'Content-ID');
  const contentId = idField ? fieldValue(idField).replace(/^<|>$/g, '') || null : null;
  const fallbackName = part.contentType === 'message/rfc822' ? `message-${index}.eml` : `attachment-${index}`;
  return {
    name: attachmentName(part) ?? fallbackName,
    contentType: part.contentType,
    content,
    isInline: disposition(part)?.value === 'inline' && contentId !== null,
    contentId,
  };
}

const PLACEHOLDER_TYPE = 'Content-Type: text/plain; charset=us-ascii';

/**
 * The message without the given leaf parts. A multipart left with no parts gets an empty text part
 * (RFC 2046 wants at least one); a message that is a single attachment becomes an empty text message
 * with the same header otherwise.
 */
export function withoutParts(message: Buffer, root: MimePart, removed: ReadonlySet<MimePart>): Buffer {
  if (removed.has(root)) {
    const kept = root.fields.filter((field) => !field.name.toLowerCase().startsWith('content-'));
    const header = [...kept.map((field) => field.raw), PLACEHOLDER_TYPE].join('\r\n');
    return Buffer.from(`${header}\r\n\r\n`, 'latin1');
  }
  const edits: { start: number; end: number; replacement: Buffer }[] = [];
  const parents = new Set([...removed].map((part) => part.parent!));
  for (const parent of parents) {
    const gone = parent.children.filter((child) => removed.has(child));
    gone.forEach((child, i) => {
      const cut = child.cut!;
      const emptied = gone.length === parent.children.length && i === gone.length - 1;
      const replacement = emptied
        ? Buffer.from(`--${cut.boundary}\r\n${PLACEHOLDER_TYPE}\r\n\r\n\r\n`, 'latin1')
        : Buffer.alloc(0);
      edits.push({ start: cut.start, end: cut.end, replacement });
    });
  }
  edits.sort((a, b) => a.start - b.start);
  const pieces: Buffer[] = [];
  let pos = 0;
  for (const edit of edits) {
    pieces.push(message.subarray(pos, edit.start), edit.replacement);
    pos = edit.end;
  }
  pieces.push(message.subarray(pos));
  return Buffer.concat(pieces);
}

function decodeQuotedPrintable(raw: Buffer): Buffer {
  const out = Buffer.alloc(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte !== 0x3d) {
      out[length++] = byte;
      continue;
    }
    if (raw[i + 1] === CR && raw[i + 2] === LF) {
      i += 2;
      continue;
    }
    const hex = raw.toString('latin1', i + 1, i + 3);
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out[length++] = parseInt(hex, 16);
      i += 2;
    } else {
      out[length++] = byte;
    }
  }
  return out.subarray(0, length);
}

/**
 * `type/subtype; name="value"; ...` with RFC 2231 extended and continued parameters
 * (`filename*=utf-8''Scan%20001.pdf`, `filename*0*=...; filename*1*=...`) and RFC 2047 encoded words
 * in quoted values, which many mail programs and devices write although RFC 2047 §5 forbids it.
 */
export function parseParameterized(value: string): { value: string; params: Map<string, string> } {
  const pieces = splitOutsideQuotes(value, ';');
  const main = (pieces.shift() ?? '').trim().toLowerCase();
  const simple = new Map<string, string>();
  const continued = new Map<string, { index: number; text: string; encoded: boolean }[]>();
  for (const piece of pieces) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    const key = piece.slice(0, eq).trim().toLowerCase();
    const rawValue = unquote(piece.slice(eq + 1).trim());
    const extended = /^([^*]+)\*(?:(\d+)\*?|)$/.exec(key);
    const encoded = key.endsWith('*');
    if (extended) {
      const name = extended[1]!;
      const list = continued.get(name) ?? [];
      list.push({ index: Number(extended[2] ?? 0), text: rawValue, encoded });
      continued.set(name, list);
    } else {
      simple.set(key, decodeWords(rawValue));
    }
  }
  for (const [name, list] of continued) {
    list.sort((a, b) => a.index - b.index);
    let charset = 'utf-8';
    const bytes: Buffer[] = [];
    list.forEach((segment, i) => {
      let text = segment.text;
      if (segment.encoded && i === 0) {
        const parts = /^([^']*)'[^']*'(.*)$/.exec(text);
        if (parts) {
          charset = parts[1] || charset;
          text = parts[2]!;
        }
      }
      bytes.push(segment.encoded ? percentDecode(text) : Buffer.from(text, 'latin1'));
    });
    simple.set(name, decodeCharset(Buffer.concat(bytes), charset));
  }
  return { value: main, params: simple };
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return value;
}

function percentDecode(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

function decodeCharset(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset.toLowerCase()).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

function decodeWords(text: string): string {
  const words = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g;
  return rawHeaderText(text)
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(words, (_match, charset: string, encoding: string, encodedText: string) => {
      const bytes =
        encoding.toUpperCase() === 'B'
          ? Buffer.from(encodedText, 'base64')
          : decodeQuotedPrintable(Buffer.from(encodedText.replace(/_/g, ' '), 'latin1'));
      return decodeCharset(bytes, charset.replace(/\*.*$/, ''));
    });
}
