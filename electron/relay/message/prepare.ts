/**
 * Turns a spooled message into what goes upstream: one Received header for this hop, the sender
 * the upstream will accept (send-as handling), no Bcc, the headers Microsoft 365 insists on, and what
 * normalize.ts makes of raw 8-bit header text and lines over 998 characters. The device's original
 * bytes stay untouched in the spool; the header block is rebuilt here and the body streamed from
 * disk, through normalize.ts's re-wrap only when it has overlong lines.
 */
import { open } from 'node:fs/promises';
import { pipeline, Readable } from 'node:stream';
import type { SenderConfig } from '../../config/types.ts';
import { createClientMatcher } from '../access.ts';
import { isQualifiedAddress } from '../lan/address.ts';
import type { Spool, SpooledMessage } from '../spool.ts';
import type { OutboundJob } from '../transport.ts';
import {
  fieldValue,
  findField,
  formatDate,
  formatDisplayName,
  formatMailbox,
  isEncodedPhrase,
  parseHeaderBlock,
  parseMailbox,
  type HeaderField,
  type Mailbox,
} from './headers.ts';
import { normalizeMessage } from './normalize.ts';

export interface PrepareOptions {
  spool: Spool;
  /** This relay's name in Received and Message-ID. */
  hostname: string;
  /** The mailbox that authenticates upstream: the fallback sender. */
  mailbox: string | null;
  sender: SenderConfig;
}

/**
 * What preparing may add to a message at most in practice (Received, Date, Message-ID, a rewritten
 * From and Reply-To, re-encoded headers). Devices are told the upstream's limit less this, so that a
 * message the upstream would refuse is refused at the device instead.
 */
export const PREPARE_GROWTH_ALLOWANCE = 16 * 1024;

/** Headers beyond this are treated as body: nothing legitimate from a device comes close. */
const MAX_HEADER_BYTES = 256 * 1024;

const BLIND_COPY_FIELDS = new Set(['bcc', 'resent-bcc']);

export interface SenderDecision {
  envelopeSender: string;
  /** The address the header From gets, or null to leave the header From as it is. */
  headerFrom: string | null;
}

/**
 * Which sender goes upstream. A device mapped in `sender.byClient` sends as its own address;
 * `rewrite` sends everything as the mailbox; `keep` relays the device's sender, except that an
 * empty or unqualified one (`scanner`) cannot be relayed and becomes the mailbox.
 */
export function decideSender(
  envelopeSender: string,
  headerFromAddress: string | null,
  clientIp: string,
  sender: SenderConfig,
  mailbox: string | null,
  byClientMatch: (ip: string) => string | null,
): SenderDecision {
  const mapped = byClientMatch(clientIp);
  const forced = mapped ?? (sender.mode === 'rewrite' ? mailbox : null);
  if (forced) return { envelopeSender: forced, headerFrom: forced };
  const fallback = mailbox ?? envelopeSender;
  const envelope = isQualifiedAddress(envelopeSender) ? envelopeSender : fallback;
  const headerOk = headerFromAddress !== null && isQualifiedAddress(headerFromAddress);
  return { envelopeSender: envelope, headerFrom: headerOk ? null : envelope };
}

export function createPreparer(options: PrepareOptions): (message: SpooledMessage) => Promise<OutboundJob> {
  const byClientEntries = Object.keys(options.sender.byClient);
  const byClientMatcher = createClientMatcher(byClientEntries);
  const byClientMatch = (ip: string) => {
    const entry = byClientMatcher.find(ip);
    return entry ? (options.sender.byClient[entry] ?? null) : null;
  };

  return async function prepare(message) {
    const { envelope } = message;
    // A small message's first attempt finds its bytes still in memory from receiving.
    const head =
      options.spool.takeMemoryCopy(envelope.id) ??
      (await readHead(
        options.spool.emlPath(envelope.id),
        message.bodyOffset,
        Math.min(message.size, MAX_HEADER_BYTES),
      ));
    const block = parseHeaderBlock(head, message.size);
    const fromField = findField(block.fields, 'From');
    const original = fromField ? parseMailbox(fieldValue(fromField)) : null;
    const decision = decideSender(
      envelope.mailFrom,
      original?.address ?? null,
      envelope.client.ip,
      options.sender,
      options.mailbox,
      byClientMatch,
    );

    const fields: HeaderField[] = [added(receivedHeader(message, options.hostname))];
    let replyToAdded = false;
    for (const field of block.fields) {
      // The envelope already carries these recipients; the header would show them to everyone (RFC
      // 5322 §3.6.3). Postfix's cleanup takes Bcc out the same way; the Graph path names the
      // envelope's hidden recipients in a Bcc of its own (graph/recipients.ts).
      if (BLIND_COPY_FIELDS.has(field.name.toLowerCase())) continue;
      if (field.name.toLowerCase() === 'from' && decision.headerFrom) {
        fields.push({ name: field.name, raw: rewrittenFrom(field, original, decision.headerFrom) });
        if (
          original &&
          isQualifiedAddress(original.address) &&
          !findField(block.fields, 'Reply-To') &&
          !replyToAdded
        ) {
          // Replies still reach the device's address, not the mailbox that relayed it.
          fields.push(added(`Reply-To: ${formatMailbox(original)}`));
          replyToAdded = true;
        }
        continue;
      }
      fields.push(field);
    }
    if (!fromField) fields.push(added(`From: <${decision.headerFrom ?? decision.envelopeSender}>`));
    // Exchange Online and many recipients' filters want both; old printers send neither.
    if (!findField(block.fields, 'Date')) fields.push(added(`Date: ${formatDate(envelope.receivedAt)}`));
    if (!findField(block.fields, 'Message-ID'))
      fields.push(added(`Message-ID: <${envelope.id}@${options.hostname}>`));

    const bodyStart = block.bodyOffset;
    // A message that fits in the header read (most device mail) is not read from disk again: the
    // normalizer's scan and the upstream stream both come from that one buffer.
    const wholeBody = head.length === message.size ? head.subarray(bodyStart) : null;
    const openBody = wholeBody
      ? () => Readable.from(wholeBody.length > 0 ? [wholeBody] : [], { objectMode: false })
      : () => options.spool.openBody(message, { start: bodyStart });
    const normalized = await normalizeMessage(fields, wholeBody ? () => [wholeBody] : openBody, {
      smtpUtf8: envelope.smtpUtf8,
    });
    const header = Buffer.from(`${normalized.fields.join('\r\n')}\r\n\r\n`, 'latin1');
    const { bodyTransform } = normalized;
    const body = bodyTransform ? () => pipeline(openBody(), bodyTransform(), () => undefined) : openBody;
    const rcptTo = message.state.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
    return {
      // Small and untouched: the prepared message as one buffer, sent without a stream.
      bytes: wholeBody && !bodyTransform ? Buffer.concat([header, wholeBody]) : undefined,
      message,
      mailFrom: decision.envelopeSender,
      rcptTo,
      headerFrom: decision.headerFrom ?? original?.address ?? null,
      size: header.length + (normalized.bodySize ?? Math.max(0, message.size - bodyStart)),
      eightBit: envelope.eightBit,
      smtpUtf8: envelope.smtpUtf8,
      open: () => Readable.from(concatStreams(header, body), { objectMode: false }),
    };
  };
}

function added(raw: string): HeaderField {
  return { name: raw.slice(0, raw.indexOf(':')), raw };
}

function rewrittenFrom(field: HeaderField, original: Mailbox | null, address: string): string {
  if (!original) return `${field.name}: <${address}>`;
  // People still see which device sent it: "Scanner 2F (scanner@contoso.com)" <john@contoso.com>.
  const phrase = !original.displayName
    ? formatDisplayName(original.address)
    : isEncodedPhrase(original.displayName)
      ? `${original.displayName} ${formatDisplayName(`(${original.address})`)}`
      : formatDisplayName(`${original.displayName} (${original.address})`);
  return `${field.name}: ${phrase} <${address}>`;
}

function receivedHeader(message: SpooledMessage, hostname: string): string {
  const { client, id, receivedAt } = message.envelope;
  const protocol = `ESMTP${client.tls ? 'S' : ''}${client.authUser ? 'A' : ''}`;
  const helo = client.helo.replace(/[^\x21-\x7e]/g, '') || 'unknown';
  return `Received: from ${helo} ([${client.ip}])\r\n\tby ${hostname} (RelayDesk) with ${protocol} id ${id};\r\n\t${formatDate(receivedAt)}`;
}

async function* concatStreams(first: Buffer, rest: () => Readable): AsyncGenerator<Buffer> {
  yield first;
  const stream = rest();
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } finally {
    stream.destroy();
  }
}

async function readHead(path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
