/**
 * The SMTP transport against a scripted upstream on loopback: a message reaches the upstream once,
 * whatever the upstream does after the final dot, and a 421 is reported as the 421 it was.
 */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../electron/relay/diagnosis.ts';
import type { RawSmtpServer } from '../fixtures/raw-smtp-server.ts';
import {
  acceptsAfter,
  inMemoryJob,
  plainTransportTo,
  scriptedUpstream,
} from '../fixtures/scripted-upstream.ts';

function transportTo(server: RawSmtpServer, timeoutMs: number, finalReplyTimeoutMs?: number) {
  return plainTransportTo(server, { timeoutMs, finalReplyTimeoutMs });
}

function job(subject: string) {
  return inMemoryJob(Buffer.from(`Subject: ${subject}\r\n\r\nbody\r\n`), {
    headerFrom: 'scanner@contoso.com',
  });
}

/** Every copy of every message the upstream received, over all its sessions, by subject. */
function received(server: RawSmtpServer): string[] {
  return server.sessions.flatMap((session) =>
    session.messages.map((message) => /Subject: (\S+)/.exec(message.raw?.toString() ?? '')?.[1] ?? '?'),
  );
}

describe('SMTP transport: exactly one copy', () => {
  it('waits for a slow upstream to accept the message instead of sending it again', async () => {
    const timeoutMs = 200;
    const server = await scriptedUpstream({
      // Longer than several per-reply timeouts, shorter than the final-reply one.
      onMessage: acceptsAfter(4 * timeoutMs, '250 2.6.0 Queued after a virus scan'),
    });
    const transport = transportTo(server, timeoutMs, 20 * timeoutMs);
    const outcome = await transport.send(job('slow'));
    expect(outcome).toMatchObject({ ok: true, dataResponse: '250 2.6.0 Queued after a virus scan' });
    expect(received(server)).toEqual(['slow']);
  });

  it('does not send again at once when a reused connection drops after the final dot', async () => {
    let messages = 0;
    const server = await scriptedUpstream({
      onMessage: (_message, session) => {
        if (++messages === 1) return undefined;
        // The second message arrived whole; the connection breaks before the server answers.
        setImmediate(() => session.socket.destroy());
        return null;
      },
    });
    const transport = transportTo(server, 2000);
    expect(await transport.send(job('first'))).toMatchObject({ ok: true });
    const outcome = await transport.send(job('second'));
    expect(outcome).toMatchObject({ ok: false, failure: { kind: 'network', stage: 'message' } });
    // Retried later by the queue (with its delay), not now on a new connection: one copy so far.
    expect(received(server)).toEqual(['first', 'second']);
    expect(server.sessions).toHaveLength(1);
    const diagnosis = diagnose(outcome.ok ? ({} as never) : outcome.failure);
    expect(diagnosis.action).toBe('retry');
  });

  it('sends on a new connection at once when the reused one was gone before MAIL was answered', async () => {
    const server = await scriptedUpstream({
      onCommand: (command, session) => {
        // The first session dies at the second message's MAIL, unanswered (an idle timeout racing it).
        if (command.startsWith('MAIL') && server.sessions.length === 1 && session.messages.length === 1) {
          session.socket.destroy();
          return null;
        }
        return undefined;
      },
    });
    const transport = transportTo(server, 2000);
    expect(await transport.send(job('first'))).toMatchObject({ ok: true });
    expect(await transport.send(job('second'))).toMatchObject({ ok: true });
    expect(received(server)).toEqual(['first', 'second']);
    expect(server.sessions).toHaveLength(2);
  });
});

describe('SMTP transport: 421 inside a pipelined MAIL/RCPT batch', () => {
  it('reports the 421 it was, and does not reconnect at once', async () => {
    const server = await scriptedUpstream({
      onCommand: (command, session) => {
        if (session.messages.length === 0) return undefined;
        // The second transaction: 421 to MAIL, then the server hangs up; RCPT and DATA get nothing.
        if (command.startsWith('MAIL')) {
          setTimeout(() => session.socket.end(), 20);
          return '421 4.3.2 Service not available, closing transmission channel';
        }
        return null;
      },
    });
    const transport = transportTo(server, 2000);
    expect(await transport.send(job('first'))).toMatchObject({ ok: true });
    const outcome = await transport.send(job('second'));
    expect(outcome).toMatchObject({
      ok: false,
      failure: { kind: 'reply', stage: 'mail', reply: { code: 421, enhanced: '4.3.2' } },
    });
    expect(server.sessions).toHaveLength(1);
    const diagnosis = diagnose(outcome.ok ? ({} as never) : outcome.failure);
    expect(diagnosis).toMatchObject({ id: 'reply-421', action: 'retry' });
  });
});
