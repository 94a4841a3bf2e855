/**
 * Mail RelayDesk writes itself (the test email, an alert, a sender's failure notice) goes straight to
 * the upstream transport, never through the spool: this makes it the one-recipient job the transport
 * takes, with an envelope that says which part of RelayDesk wrote it.
 */
import { Readable } from 'node:stream';
import { initialState, type Envelope } from './spool.ts';
import type { OutboundJob } from './transport.ts';

export interface OwnMessage {
  id: string;
  from: string;
  to: string;
  bytes: Buffer;
  /** The message has 8-bit text (BODY=8BITMIME). */
  eightBit: boolean;
  /** Where a device's HELO name and listener would stand in the envelope: which part of RelayDesk wrote it. */
  origin: { helo: string; listener: string };
}

export function ownMessageJob({ id, from, to, bytes, eightBit, origin }: OwnMessage): OutboundJob {
  const envelope: Envelope = {
    id,
    receivedAt: Date.now(),
    client: { ip: '127.0.0.1', port: 0, ...origin, tls: false, authUser: null },
    mailFrom: from,
    rcptTo: [to],
    eightBit,
    smtpUtf8: false,
  };
  return {
    message: { envelope, state: initialState([to]), size: bytes.length, bodyOffset: 0 },
    mailFrom: from,
    rcptTo: [to],
    headerFrom: from,
    size: bytes.length,
    eightBit,
    smtpUtf8: false,
    open: () => Readable.from([bytes]),
    bytes,
  };
}
