/**
 * The email channel of the alerts, through the configured upstream: an alert mail to the admin
 * (`alerts.email`), and, for a message that failed for good, a delivery status notification to the
 * device's sender address as IIS SMTP's NDR did (RFC 3464 `multipart/report`, with the original
 * headers). Both go straight to the upstream, never into the queue: a notice that fails is logged
 * and dropped, so it can neither raise another alert nor another notice.
 */
import type MimeNode from 'nodemailer/lib/mime-node';
import type { Alert } from './alerts.ts';
import { failureOf } from './check.ts';
import type { Diagnosis } from './diagnosis.ts';
import { fieldValue, findField, parseHeaderBlock } from './message/headers.ts';
import { redactSecrets } from './redact.ts';
import { ownMessageJob } from './own-message.ts';
import { newMessageId, type Envelope } from './spool.ts';
import type { Transport } from './transport.ts';
import { createUpstreamTransport, type UpstreamDeps } from './upstream.ts';
import type { RelayConfig } from '../config/types.ts';
import { readSignedIn } from './oauth/signed-in.ts';
import { describeFailure } from './upstream-failure.ts';

export type MailResult = { ok: true; reply: string } | { ok: false; error: string };

export interface AlertMailer {
  /** The address RelayDesk's own mail is sent from (the upstream's mailbox); null when none is known. */
  from(): string | null;
  send(to: string, bytes: Buffer): Promise<MailResult>;
}

/** The first bytes of a failed message read for its notice: enough for any header block devices write. */
export const NOTICE_HEADER_BYTES = 64 * 1024;

/** RFC 3834: what RelayDesk sends on its own says so, and mail that says so gets no notice back. */
const AUTO_SUBMITTED = 'auto-replied';

/**
 * A mailer that hands each mail to the relay's upstream transport as its own one-recipient job, one
 * at a time: a burst of notices must not open connections beside the deliveries' (Exchange Online
 * answers a mailbox's 4th with 432 4.3.2).
 */
export function createTransportMailer(transport: Transport, from: () => string | null): AlertMailer {
  let previous: Promise<unknown> = Promise.resolve();
  return {
    from,
    send(to, bytes) {
      const sending = previous.then(() => sendOne(to, bytes));
      previous = sending;
      return sending;
    },
  };

  async function sendOne(to: string, bytes: Buffer): Promise<MailResult> {
    const sender = from();
    if (!sender) return { ok: false, error: 'no sending mailbox is known (sign in, or set upstream.user)' };
    const job = ownMessageJob({
      id: newMessageId(),
      from: sender,
      to,
      bytes,
      eightBit: false,
      origin: { helo: 'relaydesk-alerts', listener: 'alerts' },
    });
    try {
      const outcome = await transport.send(job);
      if (!outcome.ok) return { ok: false, error: describeFailure(outcome.failure) };
      const recipient = outcome.recipients[0];
      if (!recipient?.accepted)
        return { ok: false, error: recipient?.response ?? 'the upstream took no recipient' };
      return { ok: true, reply: recipient.response };
    } catch (error) {
      return { ok: false, error: describeFailure(failureOf(error)) };
    }
  }
}

/** The mailbox RelayDesk sends its own mail as: the configured user or Graph mailbox, else who signed in. */
export function sendingMailboxOf(config: RelayConfig, dataDir: string | undefined): string | null {
  const configured = config.upstream.type === 'graph' ? config.upstream.mailbox : config.upstream.user;
  return configured ?? (dataDir ? (readSignedIn(dataDir)?.username ?? null) : null);
}

/**
 * A mailer on a transport of its own, for a test alert sent outside the running relay (the command
 * line, the window without a relay): `close()` ends its connection.
 */
export function openConfigMailer(
  config: RelayConfig,
  deps: UpstreamDeps,
): { mailer: AlertMailer; close(): Promise<void> } {
  let opening: Promise<{ transport: Transport; mailer: AlertMailer }> | null = null;
  const from = () => sendingMailboxOf(config, deps.dataDir);
  return {
    mailer: {
      from,
      async send(to, bytes) {
        opening ??= createUpstreamTransport(config.upstream, deps).then((transport) => ({
          transport,
          mailer: createTransportMailer(transport, from),
        }));
        try {
          return await (await opening).mailer.send(to, bytes);
        } catch (error) {
          return { ok: false, error: describeFailure(failureOf(error)) };
        }
      },
    },
    async close() {
      await (await opening?.catch(() => null))?.transport.close();
    },
  };
}

interface Addresses {
  from: string;
  to: string;
  /** The relay computer's name, in the subject and the DSN's Reporting-MTA. */
  host: string;
}

/** nodemailer's MIME builder, loaded when the first alert mail is built (not at every start). */
async function mimeNode(): Promise<typeof MimeNode> {
  return (await import('nodemailer/lib/mime-node')).default;
}

async function baseNode(
  contentType: string,
  { from, to, host }: Addresses,
  subject: string,
  time: number,
): Promise<MimeNode> {
  const root = new (await mimeNode())(contentType, { hostname: host, newline: 'win' });
  root.setHeader({
    From: { name: `RelayDesk on ${host}`, address: from },
    To: to,
    Subject: subject,
    Date: new Date(time),
    'Auto-Submitted': AUTO_SUBMITTED,
  });
  return root;
}

/** The admin's alert mail: the alert's title as subject, its text as a plain-text body. */
export async function buildAlertMail(alert: Alert, addresses: Addresses): Promise<Buffer> {
  const title = redactSecrets(alert.title);
  const node = await baseNode(
    'text/plain; charset=utf-8',
    addresses,
    `RelayDesk on ${addresses.host}: ${title}`,
    alert.time,
  );
  node.setHeader('X-RelayDesk-Alert', alert.kind);
  node.setContent(
    `${redactSecrets(alert.text)}\r\n\r\n-- \r\nRelayDesk on ${addresses.host}, ${new Date(alert.time).toISOString()}. ` +
      'These alerts are set in the config under "alerts" (docs/alerts.md).\r\n',
  );
  return node.build();
}

/** Whether a message is itself an automatic one (a bounce, a DSN, an auto-reply): it gets no notice. */
export function isAutomatedMessage(envelope: Pick<Envelope, 'mailFrom'>, headers: Buffer): boolean {
  if (envelope.mailFrom === '') return true;
  const { fields } = parseHeaderBlock(headers, headers.length);
  const autoSubmitted = findField(fields, 'Auto-Submitted');
  if (autoSubmitted && fieldValue(autoSubmitted).trim().toLowerCase() !== 'no') return true;
  const contentType = findField(fields, 'Content-Type');
  return contentType !== undefined && /^\s*multipart\/report\b/i.test(fieldValue(contentType));
}

export interface FailureNotice {
  envelope: Envelope;
  recipients: { address: string; response: string }[];
  diagnosis: Diagnosis;
  /** The message's header block as the device wrote it (the first NOTICE_HEADER_BYTES). */
  headers: Buffer;
  time: number;
}

/** The original header block alone, without the body that may follow it in `headers`. */
function headerBlockOf(headers: Buffer): string {
  const { bodyOffset } = parseHeaderBlock(headers, headers.length);
  return headers.subarray(0, bodyOffset).toString('latin1').replace(/\r?\n/g, '\r\n').trimEnd() + '\r\n';
}

/** The enhanced status code a reply carries (RFC 3463), else the class RFC 3464 needs. */
function statusOf(response: string): string {
  return /\b([45]\.\d{1,3}\.\d{1,3})\b/.exec(response)?.[1] ?? (response.startsWith('4') ? '4.0.0' : '5.0.0');
}

/**
 * An RFC 3464 delivery status notification: a human part saying what failed and why, the machine
 * part (`message/delivery-status`), and the original headers (`text/rfc822-headers`, RFC 6522).
 */
export async function buildFailureNotice(notice: FailureNotice, addresses: Addresses): Promise<Buffer> {
  const { envelope, recipients, diagnosis, time } = notice;
  const { fields } = parseHeaderBlock(notice.headers, notice.headers.length);
  const subjectField = findField(fields, 'Subject');
  const originalSubject = subjectField ? fieldValue(subjectField).trim() : '';
  const root = await baseNode(
    'multipart/report; report-type=delivery-status',
    addresses,
    `Undeliverable: ${originalSubject || '(no subject)'}`,
    time,
  );
  const messageId = findField(fields, 'Message-ID');
  if (messageId) root.setHeader('In-Reply-To', { prepared: true, value: fieldValue(messageId).trim() });

  const lines = [
    `Your message could not be delivered to ${recipients.length === 1 ? 'this recipient' : 'these recipients'}:`,
    '',
    ...recipients.map((r) => `    ${r.address}`),
    '',
    `Why: ${diagnosis.title}.`,
    `The server answered: ${recipients[0]?.response ?? ''}`,
    '',
    `It was sent from the device at ${envelope.client.ip} on ${new Date(envelope.receivedAt).toUTCString()}`,
    `through RelayDesk on ${addresses.host}, which will not try again. Ask the person who runs it`,
    `(${addresses.from}) if you do not know what to change.`,
    '',
    `What the administrator can do: ${diagnosis.fix}`,
    '',
  ];
  root.createChild('text/plain; charset=utf-8').setContent(redactSecrets(lines.join('\r\n')));

  const status = [
    `Reporting-MTA: dns; ${addresses.host}`,
    `X-RelayDesk-Queue-ID: ${envelope.id}`,
    `Arrival-Date: ${new Date(envelope.receivedAt).toUTCString()}`,
    '',
    ...recipients.flatMap((r) => [
      `Final-Recipient: rfc822; ${r.address}`,
      'Action: failed',
      `Status: ${statusOf(r.response)}`,
      `Diagnostic-Code: smtp; ${redactSecrets(r.response).replace(/[\r\n]+/g, ' ')}`,
      `Last-Attempt-Date: ${new Date(time).toUTCString()}`,
      '',
    ]),
  ];
  root.createChild('message/delivery-status').setContent(status.join('\r\n'));
  root.createChild('text/rfc822-headers').setContent(headerBlockOf(notice.headers));
  return root.build();
}
