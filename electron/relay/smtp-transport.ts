/**
 * The SMTP upstream (smtp.office365.com:587 and other smart hosts): a small pool of authenticated
 * connections, reused between messages and closed when idle, never more than `maxConnections`
 * (Exchange Online answers the 4th with 432 4.3.2).
 */
import type { Readable } from 'node:stream';
import {
  connectSmtp,
  type SmtpConnection,
  type SmtpClientOptions,
  type UpstreamAuthMethod,
} from './smtp-client.ts';
import { downgradeToSevenBit, hasEightBitBytes } from './message/eight-bit.ts';
import { UpstreamError, type SmtpReply, type UpstreamFailure } from './upstream-failure.ts';
import type { AttemptOutcome, OutboundJob, Transport } from './transport.ts';

export interface SmtpTransportOptions {
  connection: Omit<SmtpClientOptions, 'auth'>;
  maxConnections: number;
  /** Credentials for AUTH; `forceRefresh` asks the OAuth provider for a new token. Null: no AUTH. */
  getAuth: (forceRefresh: boolean) => Promise<UpstreamAuthMethod>;
  /** How long an unused connection stays open for the next message. */
  idleMs?: number;
  /** Each new connection once it is ready: what its EHLO offered. */
  onConnected?: (connection: SmtpConnection) => void;
}

export function createSmtpTransport(options: SmtpTransportOptions): Transport {
  const idle: { connection: SmtpConnection; timer: NodeJS.Timeout }[] = [];
  const idleMs = options.idleMs ?? 10_000;
  let closed = false;

  async function connect(): Promise<SmtpConnection> {
    const connection = await authenticatedConnection();
    options.onConnected?.(connection);
    return connection;
  }

  async function authenticatedConnection(): Promise<SmtpConnection> {
    const auth = await options.getAuth(false);
    try {
      return await connectSmtp({ ...options.connection, auth });
    } catch (error) {
      // An OAuth token can be revoked or expire early: refresh once before the 535 counts.
      if (auth?.method === 'xoauth2' && isAuthRejection(error)) {
        return connectSmtp({ ...options.connection, auth: await options.getAuth(true) });
      }
      throw error;
    }
  }

  function takeIdle(): SmtpConnection | null {
    while (idle.length > 0) {
      const { connection, timer } = idle.pop()!;
      clearTimeout(timer);
      if (!connection.closed) return connection;
    }
    return null;
  }

  function putIdle(connection: SmtpConnection): void {
    if (closed || connection.closed) {
      void connection.quit();
      return;
    }
    const timer = setTimeout(() => {
      const index = idle.findIndex((entry) => entry.connection === connection);
      if (index >= 0) idle.splice(index, 1);
      void connection.quit();
    }, idleMs);
    timer.unref();
    idle.push({ connection, timer });
  }

  async function attempt(job: OutboundJob, connection: SmtpConnection): Promise<AttemptOutcome> {
    const { message, size, eightBit } = await messageFor(job, connection);
    let result;
    try {
      result = await connection.send(
        { mailFrom: job.mailFrom, rcptTo: job.rcptTo, size, eightBit, smtpUtf8: job.smtpUtf8 },
        message,
      );
    } finally {
      if (!Buffer.isBuffer(message)) message.destroy();
    }
    putIdle(connection);
    const dataResponse = result.dataReply?.raw ?? '';
    return {
      ok: true,
      dataResponse,
      recipients: result.recipients.map((r) => ({
        address: r.address,
        accepted: r.accepted && result.dataReply !== null,
        response: r.accepted ? dataResponse : (r.reply?.raw ?? ''),
        failure: r.accepted ? null : refusalOf(r.reply),
      })),
    };
  }

  return {
    kind: 'smtp',
    async send(job) {
      if (closed) throw new Error('transport closed');
      const reused = takeIdle();
      try {
        if (reused) {
          try {
            return await attempt(job, reused);
          } catch (error) {
            reused.close();
            // The server may have dropped an idle connection; that says nothing about this message,
            // and a new connection may take it at once, but only while MAIL was still unanswered:
            // past that the server may hold a copy (after the dot it may even deliver it), and the
            // message waits for the normal retry delay instead of arriving twice.
            if (!isUnansweredOnIdle(error)) throw error;
          }
        }
        const connection = await connect();
        try {
          return await attempt(job, connection);
        } catch (error) {
          connection.close();
          throw error;
        }
      } catch (error) {
        if (error instanceof UpstreamError) return { ok: false, failure: error.failure };
        throw error;
      }
    },
    async close() {
      closed = true;
      await Promise.all(
        idle.splice(0).map(({ connection, timer }) => {
          clearTimeout(timer);
          return connection.quit();
        }),
      );
    },
  };
}

/**
 * The message as this connection may carry it: as prepared, or, to an upstream without 8BITMIME
 * (RFC 6152), with its 8-bit parts converted to quoted-printable. Devices often send 8-bit text
 * without declaring BODY=8BITMIME, so the bytes are looked at, not the declaration.
 */
async function messageFor(
  job: OutboundJob,
  connection: SmtpConnection,
): Promise<{ message: Readable | Buffer; size: number; eightBit: boolean }> {
  if (connection.capabilities.eightBitMime) {
    return { message: job.bytes ?? job.open(), size: job.size, eightBit: job.eightBit };
  }
  const bytes = job.bytes ?? Buffer.concat(await job.open().toArray());
  const message = hasEightBitBytes(bytes) ? downgradeToSevenBit(bytes) : bytes;
  return { message, size: message.length, eightBit: false };
}

function isUnansweredOnIdle(error: unknown): boolean {
  return error instanceof UpstreamError && error.failure.kind === 'network' && error.failure.stage === 'mail';
}

/** A refused recipient; a refusal that was not an SMTP reply at all is the server breaking protocol. */
function refusalOf(reply: SmtpReply | null): UpstreamFailure {
  if (reply) return { kind: 'reply', stage: 'rcpt', reply };
  return {
    kind: 'network',
    stage: 'rcpt',
    code: 'EPROTO',
    message: 'the server answered RCPT with no SMTP reply',
  };
}

function isAuthRejection(error: unknown): boolean {
  return (
    error instanceof UpstreamError &&
    error.failure.kind === 'reply' &&
    error.failure.stage === 'auth' &&
    error.failure.reply.code === 535
  );
}
