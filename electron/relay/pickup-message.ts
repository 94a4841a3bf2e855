/**
 * A file from the pickup folder read as IIS's SMTP service read it: the envelope from IIS's
 * `X-Sender:`/`X-Receiver:` lines when the file starts with them (what CDOSYS and IIS's own queue
 * files carry), otherwise from the header: From (or Sender) for MAIL FROM, every To, Cc and Bcc for
 * RCPT TO. Those leading lines and Bcc are taken out of what is queued. No file system here: bytes
 * in, an envelope and the message to queue (or what is wrong and how to fix it) out.
 */
import { isAscii } from 'node:buffer';
import { parseAddressList } from './graph/recipients.ts';
import { isQualifiedAddress } from './lan/address.ts';
import { fieldValue, parseHeaderBlock, parseMailbox, type HeaderField } from './message/headers.ts';

/** As in prepare.ts: a header block longer than this is not one a program meant to write. */
export const PICKUP_HEADER_BYTES = 256 * 1024;

/** Only at the top of the file, as IIS read them: elsewhere `X-Sender:` is an ordinary header (Eudora writes one). */
const ENVELOPE_FIELDS = new Set(['x-sender', 'x-receiver']);
const BLIND_COPY_FIELDS = new Set(['bcc', 'resent-bcc']);
const RECIPIENT_FIELDS = new Set(['to', 'cc', 'bcc']);
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface PickupLimits {
  maxMessageBytes: number;
  maxRecipients: number;
}

export interface PickupEnvelope {
  mailFrom: string;
  rcptTo: string[];
  /** The header block to queue (CRLF line ends, blank line included), without Bcc and IIS's envelope lines. */
  header: Buffer;
  /** Where the body starts in the file: bytes from here on are queued as they are. */
  bodyOffset: number;
  smtpUtf8: boolean;
}

/** Why a file goes to the badmail folder, and what the admin or the program that wrote it should change. */
export interface PickupProblem {
  problem: string;
  fix: string;
}

export type PickupReading = { ok: true; envelope: PickupEnvelope } | ({ ok: false } & PickupProblem);

const REDROP = 'then move the file back into the pickup folder';

/** Decides from the file's size alone (before reading it) whether it can be sent at all. */
export function checkPickupSize(size: number, limits: PickupLimits): PickupProblem | null {
  if (size === 0) return { problem: 'the file is empty', fix: `write a whole message into it, ${REDROP}` };
  if (size <= limits.maxMessageBytes) return null;
  return {
    problem: `the file is ${size} bytes; the largest message RelayDesk sends is ${limits.maxMessageBytes} bytes`,
    fix: 'send the attachment another way (a link to a shared folder), or raise limits.maxMessageBytes if the mailbox takes larger messages',
  };
}

/** `file` is the file's first PICKUP_HEADER_BYTES bytes (or all of it), `size` the whole file's. */
export function readPickupMessage(file: Buffer, size: number, limits: PickupLimits): PickupReading {
  // Notepad (before Windows 10 1903) starts a UTF-8 file with a byte order mark; a header cannot.
  const start = file.subarray(0, 3).equals(UTF8_BOM) ? UTF8_BOM.length : 0;
  const head = file.subarray(start);
  const parsed = parseHeaderBlock(head, size - start);
  const block = { fields: parsed.fields, bodyOffset: parsed.bodyOffset + start };
  if (block.fields.length === 0) {
    return {
      ok: false,
      problem: 'the file is not an RFC 5322 message: it does not start with header lines such as "From: ..."',
      fix: `write the header lines (From, To, Subject), a blank line, then the text, ${REDROP}`,
    };
  }
  if (block.bodyOffset >= file.length && size > file.length) {
    return {
      ok: false,
      problem: `no blank line ends the header within its first ${PICKUP_HEADER_BYTES} bytes`,
      fix: `put a blank line between the header lines and the text, ${REDROP}`,
    };
  }

  const leading: HeaderField[] = [];
  while (leading.length < block.fields.length && isEnvelopeField(block.fields[leading.length]!)) {
    leading.push(block.fields[leading.length]!);
  }
  const fields = block.fields.slice(leading.length);
  const iisSender = leading.filter((f) => f.name.toLowerCase() === 'x-sender');
  const iisReceivers = leading.filter((f) => f.name.toLowerCase() === 'x-receiver');

  let mailFrom: string | null;
  if (iisSender.length > 0) {
    // `X-Sender: <>` is IIS's way of writing the null sender (a notice that must not bounce).
    mailFrom = envelopeAddress(fieldValue(iisSender[0]!));
  } else {
    // Sender names the one who sent when From lists several authors (RFC 5322 §3.6.2).
    const from = fields.find((f) => f.name.toLowerCase() === 'from');
    const sender = fields.find((f) => f.name.toLowerCase() === 'sender');
    const mailbox = from ? parseMailbox(fieldValue(from)) : null;
    mailFrom = mailbox?.address ?? (sender ? (parseMailbox(fieldValue(sender))?.address ?? null) : null);
  }
  if (mailFrom === null) {
    return {
      ok: false,
      problem: 'no sender: the file has no From line (and no X-Sender line at the top)',
      fix: `add a line such as "From: scanner@contoso.com" at the top, ${REDROP}`,
    };
  }
  if (mailFrom !== '' && !isQualifiedAddress(mailFrom)) {
    return {
      ok: false,
      problem: `the sender "${mailFrom}" is not a mail address`,
      fix: `write a whole address such as scanner@contoso.com in the From line, ${REDROP}`,
    };
  }

  const rcptTo: string[] = [];
  const seen = new Set<string>();
  const recipientLines =
    iisReceivers.length > 0
      ? iisReceivers.map((f) => envelopeAddress(fieldValue(f)) ?? '')
      : fields
          .filter((f) => RECIPIENT_FIELDS.has(f.name.toLowerCase()))
          .flatMap((f) => parseAddressList(fieldValue(f)).map((m) => m.address));
  for (const address of recipientLines) {
    if (!isQualifiedAddress(address)) {
      return {
        ok: false,
        problem: `the recipient "${address}" is not a mail address`,
        fix: `correct it in the ${iisReceivers.length > 0 ? 'X-Receiver' : 'To, Cc or Bcc'} line, ${REDROP}`,
      };
    }
    if (seen.has(address.toLowerCase())) continue;
    seen.add(address.toLowerCase());
    rcptTo.push(address);
  }
  if (rcptTo.length === 0) {
    return {
      ok: false,
      problem: 'no recipients: the file has no To, Cc or Bcc line with an address (and no X-Receiver line)',
      fix: `add a line such as "To: alice@contoso.com", ${REDROP}`,
    };
  }
  if (rcptTo.length > limits.maxRecipients) {
    return {
      ok: false,
      problem: `${rcptTo.length} recipients; RelayDesk sends one message to at most ${limits.maxRecipients}`,
      fix: `split the recipients over several files, or raise limits.maxRecipients, ${REDROP}`,
    };
  }

  const kept = fields.filter((f) => !BLIND_COPY_FIELDS.has(f.name.toLowerCase()));
  const header = Buffer.from(`${kept.map((f) => f.raw).join('\r\n')}\r\n\r\n`, 'latin1');
  const smtpUtf8 = [mailFrom, ...rcptTo].some((address) => !isAscii(Buffer.from(address)));
  return { ok: true, envelope: { mailFrom, rcptTo, header, bodyOffset: block.bodyOffset, smtpUtf8 } };
}

function isEnvelopeField(field: HeaderField): boolean {
  return ENVELOPE_FIELDS.has(field.name.toLowerCase());
}

/** `<a@b>`, `a@b`, or `<>`; null when the line holds no address at all. */
function envelopeAddress(value: string): string | null {
  const trimmed = value.trim();
  if (trimmed === '<>') return '';
  const bracketed = /^<([^<>]*)>$/.exec(trimmed);
  const address = bracketed ? bracketed[1]!.trim() : trimmed;
  return address === '' ? null : address;
}
