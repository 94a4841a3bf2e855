/**
 * The Microsoft Graph upstream: each prepared message goes as MIME to `POST /users/{id}/sendMail`, or,
 * when it is too large for one Graph request or must stay out of Sent Items, as a draft with its large
 * attachments uploaded separately, then sent. Needs no SMTP AUTH; docs/graph.md explains the choices.
 */
import type { Readable } from 'node:stream';
import type { UpstreamConfig } from '../../config/types.ts';
import type { TokenProvider } from '../oauth-token.ts';
import type { AttemptOutcome, OutboundJob, Transport } from '../transport.ts';
import { UpstreamError } from '../upstream-failure.ts';
import { createGraphClient, protocolError, userPath, type GraphClient } from './client.ts';
import {
  isBodyText,
  leaves,
  parseMime,
  toAttachment,
  toCrlf,
  withoutParts,
  type MimeAttachment,
} from './mime.ts';
import { fitRecipientsToEnvelope } from './recipients.ts';

export interface GraphTransportOptions {
  /** Uses `mailbox`, `graphUrl`, `sendAs`, `saveToSentItems` and `timeoutSeconds`. */
  upstream: UpstreamConfig;
  /** Client-credentials tokens for GRAPH_SCOPE. */
  tokens: TokenProvider;
  fetch?: typeof fetch;
}

/**
 * The largest base64 MIME RelayDesk puts in one Graph request. Graph refuses requests over 4 MB with
 * 413; 4,000,000 stays under that whether Microsoft means 4,000,000 or 4,194,304 bytes.
 */
export const MAX_MIME_REQUEST_BYTES = 4_000_000;
/** Attachments under 3 MB go in one POST (base64 inside JSON, still under 4 MB); larger ones through an upload session. */
export const SMALL_ATTACHMENT_BYTES = 3_000_000;

/** The answers that mean "no mailbox here" for an address, so `sendAs: from` falls back to the configured mailbox. */
const NO_MAILBOX_CODES = new Set(
  [
    'ErrorInvalidUser',
    'ResourceNotFound',
    'Request_ResourceNotFound',
    'MailboxNotEnabledForRESTAPI',
    'ErrorMailboxNotEnabledForRESTAPI',
  ].map((code) => code.toLowerCase()),
);

interface Sent {
  mailbox: string;
  /** Attachments added to a draft outside its MIME; null when the message went through sendMail. */
  attachmentsAdded: number | null;
}

export function createGraphTransport(options: GraphTransportOptions): Transport {
  const { upstream } = options;
  const client = createGraphClient({
    graphUrl: upstream.graphUrl,
    tokens: options.tokens,
    fetch: options.fetch,
    timeoutMs: upstream.timeoutSeconds * 1000,
  });
  let closed = false;

  async function send(job: OutboundJob): Promise<AttemptOutcome> {
    const configured = upstream.mailbox;
    if (!configured) {
      return {
        ok: false,
        failure: { kind: 'config', code: 'NO_MAILBOX', message: 'upstream.mailbox is not set' },
      };
    }
    const fit = fitRecipientsToEnvelope(toCrlf(job.bytes ?? (await readAll(job.open()))), job.rcptTo);
    const notes: string[] = [];
    const own = senderMailbox(job, upstream);
    let sent: Sent;
    if (own && own.toLowerCase() !== configured.toLowerCase()) {
      try {
        sent = await deliver(client, upstream, own, fit.message);
      } catch (error) {
        const code = missingMailboxCode(error);
        if (code === null) throw error;
        notes.push(`${own} has no mailbox in Graph (${code}), sent through ${configured}`);
        sent = await deliver(client, upstream, configured, fit.message);
      }
    } else {
      sent = await deliver(client, upstream, configured, fit.message);
    }
    if (sent.attachmentsAdded !== null) {
      notes.push(`sent as a draft, ${sent.attachmentsAdded} attachment(s) added outside the MIME`);
    }
    if (fit.bcc.length > 0) notes.push(`${fit.bcc.length} envelope recipient(s) added as Bcc`);
    if (fit.omitted.length > 0) {
      notes.push(`header recipient(s) not in the envelope left out: ${fit.omitted.join(', ')}`);
    }
    const response = [`accepted by Microsoft Graph (202) from mailbox ${sent.mailbox}`, ...notes].join('; ');
    return {
      ok: true,
      dataResponse: response,
      recipients: job.rcptTo.map((address) => ({ address, accepted: true, response, failure: null })),
    };
  }

  return {
    kind: 'graph',
    async send(job) {
      if (closed) throw new Error('transport closed');
      try {
        return await send(job);
      } catch (error) {
        if (error instanceof UpstreamError) return { ok: false, failure: error.failure };
        throw error;
      }
    },
    async close() {
      closed = true;
    },
  };
}

/** `sendAs: from`: the mailbox named by the message's From; null when the mailbox itself sends. */
function senderMailbox(job: OutboundJob, upstream: UpstreamConfig): string | null {
  if (upstream.sendAs !== 'from' || !job.headerFrom) return null;
  return /^[^@\s]+@[^@\s]+$/.test(job.headerFrom) ? job.headerFrom : null;
}

function missingMailboxCode(error: unknown): string | null {
  if (!(error instanceof UpstreamError) || error.failure.kind !== 'graph') return null;
  return NO_MAILBOX_CODES.has(error.failure.code.toLowerCase()) ? error.failure.code : null;
}

function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

/** Graph's refusals do not say which mailbox they concern; with `sendAs: from` the admin needs to know. */
async function deliver(
  client: GraphClient,
  upstream: UpstreamConfig,
  mailbox: string,
  message: Buffer,
): Promise<Sent> {
  try {
    return await deliverFrom(client, upstream, mailbox, message);
  } catch (error) {
    if (!(error instanceof UpstreamError) || error.failure.kind !== 'graph') throw error;
    throw new UpstreamError({ ...error.failure, message: `${error.failure.message} (mailbox ${mailbox})` });
  }
}

async function deliverFrom(
  client: GraphClient,
  upstream: UpstreamConfig,
  mailbox: string,
  message: Buffer,
): Promise<Sent> {
  // sendMail with MIME always keeps a copy in Sent Items: it has no saveToSentItems for MIME.
  if (upstream.saveToSentItems && base64Length(message.length) <= MAX_MIME_REQUEST_BYTES) {
    try {
      await client.call('POST', `${userPath(mailbox)}/sendMail`, { mime: message });
      return { mailbox, attachmentsAdded: null };
    } catch (error) {
      // Graph's limit turned out lower than RelayDesk's estimate: a draft with every attachment taken out.
      if (!(
        error instanceof UpstreamError &&
        error.failure.kind === 'graph' &&
        error.failure.status === 413
      )) {
        throw error;
      }
      return deliverAsDraft(client, upstream, mailbox, message, 0);
    }
  }
  return deliverAsDraft(client, upstream, mailbox, message, MAX_MIME_REQUEST_BYTES);
}

/**
 * Graph's steps for a message of any size: create a draft from the MIME without its largest
 * attachments, add them (POST under 3 MB, an upload session above), then send the draft.
 * `draftLimit`: the largest the draft's base64 MIME may be; 0 takes every attachment out.
 */
async function deliverAsDraft(
  client: GraphClient,
  upstream: UpstreamConfig,
  mailbox: string,
  message: Buffer,
  draftLimit: number,
): Promise<Sent> {
  const { draftMime, attachments } = splitForDraft(message, draftLimit);
  const user = userPath(mailbox);
  const created = await client.call('POST', `${user}/messages`, { mime: draftMime });
  const id = created.json?.id;
  if (typeof id !== 'string' || !id)
    throw protocolError(`creating a draft answered ${created.status} without an id`);
  const draft = `${user}/messages/${encodeURIComponent(id)}`;
  try {
    if (!upstream.saveToSentItems) {
      // PidTagDeleteAfterSubmit (MS-OXOMSG 2.2.3.8): Exchange deletes the message once it is sent.
      await client.call('PATCH', draft, {
        json: { singleValueExtendedProperties: [{ id: 'Boolean 0x0E01', value: 'true' }] },
      });
    }
    for (const attachment of attachments) await attach(client, draft, attachment);
    await client.call('POST', `${draft}/send`);
  } catch (error) {
    // A retry creates a new draft; this one would only clutter the mailbox. Failing to delete it changes nothing.
    await client.call('DELETE', draft).catch(() => undefined);
    throw error;
  }
  return { mailbox, attachmentsAdded: attachments.length };
}

/** Takes attachments out of the MIME, largest first, until the rest is at most `limit` as base64. */
function splitForDraft(message: Buffer, limit: number): { draftMime: Buffer; attachments: MimeAttachment[] } {
  const root = parseMime(message);
  const candidates = leaves(root)
    .map((part, index) => ({ part, index }))
    .filter(({ part }) => !isBodyText(part))
    .sort((a, b) => b.part.end - b.part.start - (a.part.end - a.part.start));
  const removed = new Set<(typeof candidates)[number]['part']>();
  const taken: typeof candidates = [];
  let draftMime = message;
  for (const candidate of candidates) {
    if (base64Length(draftMime.length) <= limit) break;
    removed.add(candidate.part);
    taken.push(candidate);
    draftMime = withoutParts(message, root, removed);
  }
  if (base64Length(draftMime.length) > MAX_MIME_REQUEST_BYTES) {
    throw new UpstreamError({
      kind: 'graph',
      status: 413,
      code: 'ErrorMessageSizeExceeded',
      message:
        `RelayDesk: without its attachments the message is still ${draftMime.length} bytes, more than ` +
        'Microsoft Graph takes in one request (4 MB as base64)',
      retryAfterSeconds: null,
    });
  }
  taken.sort((a, b) => a.index - b.index);
  return { draftMime, attachments: taken.map(({ part, index }) => toAttachment(message, part, index + 1)) };
}

async function attach(client: GraphClient, draft: string, attachment: MimeAttachment): Promise<void> {
  const inline = attachment.contentId
    ? { isInline: attachment.isInline, contentId: attachment.contentId }
    : {};
  if (attachment.content.length < SMALL_ATTACHMENT_BYTES) {
    await client.call('POST', `${draft}/attachments`, {
      json: {
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: attachment.name,
        contentType: attachment.contentType,
        contentBytes: attachment.content.toString('base64'),
        ...inline,
      },
    });
    return;
  }
  const session = await client.call('POST', `${draft}/attachments/createUploadSession`, {
    json: {
      AttachmentItem: {
        attachmentType: 'file',
        name: attachment.name,
        size: attachment.content.length,
        contentType: attachment.contentType,
        ...inline,
      },
    },
  });
  const uploadUrl = session.json?.uploadUrl;
  if (typeof uploadUrl !== 'string' || !uploadUrl) {
    throw protocolError(`createUploadSession answered ${session.status} without an uploadUrl`);
  }
  await client.upload(uploadUrl, attachment.content);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
