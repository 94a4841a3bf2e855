/**
 * What every upstream kind (SMTP with a password, SMTP with OAuth 2.0, Microsoft Graph) offers the
 * delivery scheduler: take one prepared message, say what became of each recipient.
 */
import type { Readable } from 'node:stream';
import type { SpooledMessage } from './spool.ts';
import type { UpstreamFailure } from './upstream-failure.ts';

export interface OutboundJob {
  message: SpooledMessage;
  /** The envelope sender as it goes upstream (after sender mapping). */
  mailFrom: string;
  /** The recipients still pending. */
  rcptTo: string[];
  /** Header `From:` address as it goes upstream (Graph's `sendAs: from` picks the mailbox by it). */
  headerFrom: string | null;
  /** Approximate size of the prepared message, for SIZE=. */
  size: number;
  eightBit: boolean;
  smtpUtf8: boolean;
  /** A fresh stream of the prepared message each call (a retry on another connection reads it again). */
  open(): Readable;
  /** The whole prepared message, when it is small and already in memory (what `open()` would stream). */
  bytes?: Buffer;
}

export interface RecipientOutcome {
  address: string;
  accepted: boolean;
  /** The upstream's reply for this recipient (the final DATA reply when accepted). */
  response: string;
  failure: UpstreamFailure | null;
}

export type AttemptOutcome =
  | { ok: true; recipients: RecipientOutcome[]; dataResponse: string }
  | { ok: false; failure: UpstreamFailure };

export interface Transport {
  readonly kind: 'smtp' | 'graph';
  send(job: OutboundJob): Promise<AttemptOutcome>;
  close(): Promise<void>;
}
