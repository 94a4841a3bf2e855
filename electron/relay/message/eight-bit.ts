/**
 * RFC 6152 downgrade: an upstream that does not offer 8BITMIME must get 7-bit data only. As Postfix
 * does for the same bytes, every MIME leaf whose body carries 8-bit bytes (declared `8bit`, `binary`,
 * or not declared at all) is re-encoded as quoted-printable, multiparts and attached messages are
 * walked part by part, and their own `8bit` labels become `7bit`. Parts already in base64 or
 * quoted-printable, and header fields, are left as they are.
 */
import { encode as encodeQuotedPrintable, wrap as wrapQuotedPrintable } from 'nodemailer/lib/qp';

const CRLF = '\r\n';
const EIGHT_BIT = /[\x80-\xff]/;
/** RFC 2045 §6.7: encoded lines of at most 76 characters. */
const QP_LINE_LENGTH = 76;

/** Whether any byte of the message has the high bit set. */
export function hasEightBitBytes(message: Buffer): boolean {
  return EIGHT_BIT.test(message.toString('latin1'));
}

/** The message with every 8-bit body part re-encoded as quoted-printable; line ends become CRLF. */
export function downgradeToSevenBit(message: Buffer): Buffer {
  // latin1 maps each byte to one character and back, so no byte is lost or reinterpreted.
  const text = message.toString('latin1').replace(/\r\n|\r|\n/g, CRLF);
  return Buffer.from(convertEntity(text, true), 'latin1');
}

interface Entity {
  /** The header lines, without the empty line that ends them. */
  header: string;
  body: string;
}

function splitEntity(text: string): Entity | null {
  if (text.startsWith(CRLF)) return { header: '', body: text.slice(CRLF.length) };
  const end = text.indexOf(CRLF + CRLF);
  if (end < 0) return null;
  return { header: text.slice(0, end), body: text.slice(end + 2 * CRLF.length) };
}

/** The unfolded value of the first field called `name`, or null. */
function fieldValue(header: string, name: string): string | null {
  const match = new RegExp(`(?:^|\\r\\n)${name}[ \\t]*:([^\\r\\n]*(?:\\r\\n[ \\t][^\\r\\n]*)*)`, 'i').exec(
    header,
  );
  return match ? match[1]!.replace(/\r\n/g, '').trim() : null;
}

/** The header with the field `name` set to `value` (replaced where it is, else added at the end). */
function withField(header: string, name: string, value: string): string {
  const field = new RegExp(`(^|\\r\\n)${name}[ \\t]*:[^\\r\\n]*(?:\\r\\n[ \\t][^\\r\\n]*)*`, 'i');
  if (field.test(header)) return header.replace(field, `$1${name}: ${value}`);
  return header === '' ? `${name}: ${value}` : `${header}${CRLF}${name}: ${value}`;
}

function boundaryOf(contentType: string): string | null {
  const match = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2] ?? null;
}

function convertEntity(text: string, topLevel: boolean): string {
  const entity = splitEntity(text);
  if (!entity) return text;
  let { header, body } = entity;
  const contentType = fieldValue(header, 'Content-Type') ?? 'text/plain';
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  const encoding = (fieldValue(header, 'Content-Transfer-Encoding') ?? '7bit').toLowerCase();
  const boundary = mediaType.startsWith('multipart/') ? boundaryOf(contentType) : null;

  if (boundary !== null || mediaType === 'message/rfc822') {
    const converted = boundary !== null ? convertParts(body, boundary) : convertEntity(body, false);
    if (converted === body) return text;
    body = converted;
    // RFC 2045 §6.4: a composite entity is labelled with the widest encoding of its parts.
    if (encoding === '8bit' || encoding === 'binary') {
      header = withField(header, 'Content-Transfer-Encoding', '7bit');
    }
    return `${header}${CRLF}${CRLF}${body}`;
  }

  if (encoding === 'base64' || encoding === 'quoted-printable' || !EIGHT_BIT.test(body)) return text;
  body = wrapQuotedPrintable(encodeQuotedPrintable(Buffer.from(body, 'latin1')), QP_LINE_LENGTH);
  header = withField(header, 'Content-Transfer-Encoding', 'quoted-printable');
  if (topLevel && fieldValue(header, 'MIME-Version') === null) {
    // A Content-Transfer-Encoding means something only in a MIME message.
    header = withField(header, 'MIME-Version', '1.0');
    if (fieldValue(header, 'Content-Type') === null) {
      // RFC 1428: 8-bit text of unknown charset; UTF-8 when it decodes as UTF-8.
      const utf8 = Buffer.from(entity.body, 'latin1').toString('utf8').includes('\ufffd') === false;
      header = withField(header, 'Content-Type', `text/plain; charset=${utf8 ? 'utf-8' : 'unknown-8bit'}`);
    }
  }
  return `${header}${CRLF}${CRLF}${body}`;
}

/** The body of a multipart with each part converted; preamble, delimiters and epilogue kept. */
function convertParts(body: string, boundary: string): string {
  const escaped = boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // RFC 2046 §5.1.1: the CRLF before a delimiter line belongs to the delimiter.
  const delimiter = new RegExp(`(?:^|\\r\\n)--${escaped}(--)?[ \\t]*(?:\\r\\n|$)`, 'g');
  let output = '';
  let last = 0;
  let inPart = false;
  for (let match = delimiter.exec(body); match; match = delimiter.exec(body)) {
    const segment = body.slice(last, match.index);
    output += inPart ? convertEntity(segment, false) : segment;
    output += match[0];
    last = match.index + match[0].length;
    inPart = match[1] === undefined;
    if (!inPart) break;
  }
  const rest = body.slice(last);
  return output + (inPart ? convertEntity(rest, false) : rest);
}
