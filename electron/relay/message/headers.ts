/**
 * A message's header block, split into fields with their raw bytes kept, so that what RelayDesk does
 * not change goes upstream exactly as the device wrote it.
 */

export interface HeaderField {
  /** Field name as written (`From`, `subject`). */
  name: string;
  /** The whole field, including continuation lines, without the final line break. */
  raw: string;
}

export interface HeaderBlock {
  fields: HeaderField[];
  /** Offset of the body inside the message (after the blank line); equals the message length when there is none. */
  bodyOffset: number;
}

const FIELD_START = /^([!-9;-~]+)[ \t]*:/;

/**
 * Splits the header block from the first bytes of a message. Lines may end in CRLF or a bare LF
 * (fax machines and old PHP send bare LF), or in several CRs and an LF (busybox sendmail). A CR
 * inside a line is read as a space, as Postfix does: the SMTP data encoder would otherwise make it
 * a line end, and so a header line nobody here saw (`Subject: x\rBcc: ...`). Header text is read
 * as latin1 so raw 8-bit bytes survive the round trip unchanged.
 */
export function parseHeaderBlock(head: Buffer, messageLength: number): HeaderBlock {
  const text = head.toString('latin1');
  const fields: HeaderField[] = [];
  let pos = 0;
  while (pos < text.length) {
    const newline = text.indexOf('\n', pos);
    const lineEnd = newline < 0 ? text.length : newline;
    const line = text.slice(pos, lineEnd).replace(/\r+$/, '').replace(/\r/g, ' ');
    const next = newline < 0 ? text.length : newline + 1;
    if (line === '') return { fields, bodyOffset: next };
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
      fields[fields.length - 1]!.raw += `\r\n${line}`;
    } else {
      const match = FIELD_START.exec(line);
      // The first line that is not a header starts the body (a device that forgot the blank line).
      if (!match) return { fields, bodyOffset: pos };
      fields.push({ name: match[1]!, raw: line });
    }
    pos = next;
  }
  return { fields, bodyOffset: Math.min(messageLength, head.length) };
}

export function findField(fields: HeaderField[], name: string): HeaderField | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower);
}

/**
 * Header text as `parseHeaderBlock` reads it (latin1, so that bytes survive), with raw UTF-8 read as
 * UTF-8: a device that wrote a UTF-8 file name or address gets it back; anything else stays as it was.
 */
export function rawHeaderText(latin1: string): string {
  if (!/[\x80-\xff]/.test(latin1)) return latin1;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return latin1;
  }
}

/** The unfolded value of a field (after the colon, continuation lines joined). */
export function fieldValue(field: HeaderField): string {
  return field.raw
    .slice(field.raw.indexOf(':') + 1)
    .replace(/\r\n([ \t])/g, '$1')
    .trim();
}

export interface Mailbox {
  displayName: string;
  address: string;
}

/** The first mailbox of an address header: `Name <a@b>`, `"Name" <a@b>`, `a@b (Name)`, `a@b`. */
/** Splits a header value at `separator`, except inside double quotes (where `\` escapes a character). */
export function splitOutsideQuotes(value: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i]!;
    if (quoted && char === '\\') {
      current += char + (value[i + 1] ?? '');
      i++;
      continue;
    }
    if (char === '"') quoted = !quoted;
    if (char === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

export function parseMailbox(value: string): Mailbox | null {
  const angle = /^(.*?)<([^<>]*)>/.exec(value);
  if (angle) {
    return { displayName: unquote(angle[1]!.trim()), address: angle[2]!.trim() };
  }
  const bare = /^\s*([^\s,;()<>]+)\s*(?:\((.*)\))?/.exec(value);
  if (!bare) return null;
  return { displayName: (bare[2] ?? '').trim(), address: bare[1]! };
}

function unquote(name: string): string {
  if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) {
    return name.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return name;
}

const ENCODED_WORD = /=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=/;

/** A display name the device already wrote as encoded-words, with nothing that needs quoting. */
export function isEncodedPhrase(name: string): boolean {
  return ENCODED_WORD.test(name) && /^[^"(),:;<>@[\\\]]*$/.test(name);
}

/**
 * A display name as a phrase (RFC 5322 §3.2.5): the device's own encoded-words as they are (inside
 * quotes no reader would decode them, RFC 2047 §5), anything else as a quoted-string. Raw 8-bit
 * text keeps the device's bytes; normalize.ts encodes it for the upstream, charset detected.
 */
export function formatDisplayName(name: string): string {
  if (isEncodedPhrase(name)) return name;
  return `"${name.replace(/(["\\])/g, '\\$1')}"`;
}

export function formatMailbox(mailbox: Mailbox): string {
  return mailbox.displayName
    ? `${formatDisplayName(mailbox.displayName)} <${mailbox.address}>`
    : `<${mailbox.address}>`;
}

/** RFC 5322 date-time, e.g. `Sun, 29 Nov 2026 19:25:50 +0000`. */
export function formatDate(ms: number): string {
  const d = new Date(ms);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
