/**
 * Graph has no envelope: it sends to whoever the MIME header names in To, Cc and Bcc. SMTP sends to
 * the envelope (RCPT TO) and nobody else. This file makes the header say what the envelope says:
 * envelope recipients missing from To and Cc go into a new Bcc (Exchange strips it from the copies it
 * delivers), and header recipients that are not in the envelope come out, because Graph would
 * otherwise send to them too.
 */
import { fieldValue, parseHeaderBlock, rawHeaderText } from '../message/headers.ts';

export interface EnvelopeFit {
  /** The message as Graph should get it; the same Buffer when nothing had to change. */
  message: Buffer;
  /** Envelope recipients written into the new Bcc header. */
  bcc: string[];
  /** To, Cc or Bcc addresses of the original header that are not in the envelope and were taken out. */
  omitted: string[];
}

export interface HeaderMailbox {
  address: string;
  /** The mailbox as written in the header (`"Doe, John" <john@contoso.com>`), latin1 like the header. */
  raw: string;
}

const MAX_HEADER_BYTES = 256 * 1024;
const FOLD_AT = 76;

export function fitRecipientsToEnvelope(message: Buffer, rcptTo: readonly string[]): EnvelopeFit {
  const block = parseHeaderBlock(message.subarray(0, MAX_HEADER_BYTES), message.length);
  const envelope = new Map<string, string>();
  for (const address of rcptTo) {
    if (!envelope.has(address.toLowerCase())) envelope.set(address.toLowerCase(), address);
  }
  const visible = new Set<string>();
  const omitted: string[] = [];
  const fields: Buffer[] = [];
  let changed = false;

  for (const field of block.fields) {
    const name = field.name.toLowerCase();
    if (name !== 'to' && name !== 'cc' && name !== 'bcc') {
      fields.push(Buffer.from(field.raw, 'latin1'));
      continue;
    }
    const mailboxes = parseAddressList(fieldValue(field));
    const kept = name === 'bcc' ? [] : mailboxes.filter((m) => envelope.has(m.address.toLowerCase()));
    for (const mailbox of mailboxes) {
      if (!envelope.has(mailbox.address.toLowerCase())) omitted.push(mailbox.address);
    }
    for (const mailbox of kept) visible.add(mailbox.address.toLowerCase());
    if (kept.length === mailboxes.length && name !== 'bcc') {
      fields.push(Buffer.from(field.raw, 'latin1'));
      continue;
    }
    // A Bcc written by the device is replaced by ours, which names exactly the envelope's hidden recipients.
    changed = true;
    if (kept.length > 0)
      fields.push(
        Buffer.from(
          foldList(
            field.name,
            kept.map((m) => m.raw),
          ),
          'latin1',
        ),
      );
  }

  const bcc = [...envelope.entries()].filter(([lower]) => !visible.has(lower)).map(([, address]) => address);
  if (bcc.length > 0) {
    changed = true;
    fields.push(Buffer.from(foldList('Bcc', bcc), 'utf8'));
  }
  if (!changed) return { message, bcc, omitted };
  const lines: Buffer[] = [];
  for (const field of fields) lines.push(field, Buffer.from('\r\n'));
  lines.push(Buffer.from('\r\n'), message.subarray(block.bodyOffset));
  return { message: Buffer.concat(lines), bcc, omitted };
}

/** `Name: a, b, c`, folded between addresses so that lines stay short (RFC 5322 §2.2.3). */
function foldList(name: string, items: readonly string[]): string {
  let text = `${name}:`;
  let lineLength = text.length;
  items.forEach((item, i) => {
    const piece = ` ${item}${i < items.length - 1 ? ',' : ''}`;
    if (i > 0 && lineLength + piece.length > FOLD_AT) {
      text += '\r\n';
      lineLength = 0;
    }
    text += piece;
    lineLength += piece.length;
  });
  return text;
}

/**
 * An RFC 5322 address-list: mailboxes separated by commas, display names that may be quoted and
 * contain commas, comments, and groups (`Team: a@x, b@y;`, `undisclosed-recipients:;`), whose
 * members count as mailboxes. Addresses come back as they would be compared: UTF-8 decoded.
 */
export function parseAddressList(value: string): HeaderMailbox[] {
  const out: HeaderMailbox[] = [];
  let current = '';
  let quoted = false;
  let comment = 0;
  let angle = false;
  const flush = () => {
    const mailbox = parseOneMailbox(current);
    if (mailbox) out.push(mailbox);
    current = '';
  };
  for (let i = 0; i < value.length; i++) {
    const char = value[i]!;
    if ((quoted || comment > 0) && char === '\\') {
      current += char + (value[i + 1] ?? '');
      i++;
      continue;
    }
    if (!quoted && char === '(') comment++;
    else if (!quoted && char === ')' && comment > 0) comment--;
    else if (comment === 0 && char === '"') quoted = !quoted;
    else if (!quoted && comment === 0 && char === '<') angle = true;
    else if (!quoted && comment === 0 && char === '>') angle = false;
    else if (!quoted && comment === 0 && !angle && char === ':') {
      // The group's display name is not a mailbox; its members follow.
      current = '';
      continue;
    } else if (!quoted && comment === 0 && !angle && (char === ',' || char === ';')) {
      flush();
      continue;
    }
    current += char;
  }
  flush();
  return out;
}

function parseOneMailbox(text: string): HeaderMailbox | null {
  const raw = text.trim();
  if (!raw) return null;
  const angle = /<([^<>]*)>/.exec(stripQuotedAndComments(raw));
  let address = angle ? angle[1]! : stripQuotedAndComments(raw);
  // An obsolete source route (`<@relay.example:john@contoso.com>`) precedes the address.
  address = address.replace(/^(?:@[^:]*:)/, '').replace(/\s+/g, '');
  if (!address.includes('@')) return null;
  return { address: rawHeaderText(address), raw };
}

/** The text with comments removed and quoted strings kept only as far as an address can contain them. */
function stripQuotedAndComments(text: string): string {
  let out = '';
  let quoted = false;
  let comment = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if ((quoted || comment > 0) && char === '\\') {
      if (quoted) out += text[i + 1] ?? '';
      i++;
      continue;
    }
    if (!quoted && char === '(') comment++;
    else if (!quoted && char === ')' && comment > 0) comment--;
    else if (comment === 0 && char === '"') {
      quoted = !quoted;
      out += char;
    } else if (comment === 0) out += quoted && (char === '<' || char === '>') ? ' ' : char;
  }
  return out;
}
