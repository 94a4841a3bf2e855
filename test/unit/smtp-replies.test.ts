/**
 * Reply parsing against a scripted upstream (RFC 5321 §4.2): a blank line between replies is skipped,
 * as other clients do, and a reply nothing asked for is never taken as the answer to a later command.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectSmtp } from '../../electron/relay/smtp-client.ts';
import { UpstreamError } from '../../electron/relay/upstream-failure.ts';
import type { RawSmtpServerOptions } from '../fixtures/raw-smtp-server.ts';
import { connectPlain, plainClientOptions, scriptedUpstream } from '../fixtures/scripted-upstream.ts';

async function connectTo(options: RawSmtpServerOptions) {
  const server = await scriptedUpstream(options);
  const connection = await connectPlain(server, { timeoutMs: 2000 });
  return { server, connection };
}

const envelope = { mailFrom: 'scanner@contoso.com', rcptTo: ['anna@contoso.com', 'bob@contoso.com'] };

describe('reply parsing', () => {
  it('skips a blank line between replies', async () => {
    const { server, connection } = await connectTo({
      onCommand: (command) =>
        command === 'RCPT TO:<anna@contoso.com>'
          ? ['550 5.1.1 User unknown', '']
          : command.startsWith('MAIL')
            ? ['', '250 2.1.0 Sender OK', '']
            : undefined,
    });
    const result = await connection.send(envelope, Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    expect(result.recipients.map((recipient) => [recipient.address, recipient.accepted])).toEqual([
      ['anna@contoso.com', false],
      ['bob@contoso.com', true],
    ]);
    expect(result.recipients[0]?.reply).toMatchObject({ code: 550, enhanced: '5.1.1' });
    expect(result.dataReply?.code).toBe(250);
    expect(server.sessions[0]!.messages).toHaveLength(1);
  });

  it('never hands a reply nothing asked for to the next command', async () => {
    let messages = 0;
    const { server, connection } = await connectTo({
      // The first message's final reply comes twice: the second copy was asked for by nobody.
      onMessage: () => (++messages === 1 ? ['250 2.6.0 Queued', '250 2.6.0 Queued'] : undefined),
      onCommand: (command) =>
        command.startsWith('MAIL') && messages === 1 ? '550 5.7.1 Refused' : undefined,
    });
    const first = await connection.send(envelope, Buffer.from('Subject: one\r\n\r\nbody\r\n'));
    expect(first.dataReply?.code).toBe(250);
    // The stray 250 must not become the answer to the next MAIL (which this server refuses with 550):
    // the connection is dropped as broken instead, before anything else is sent on it.
    const second = await connection.send(envelope, Buffer.from('Subject: two\r\n\r\nbody\r\n')).then(
      () => null,
      (error: unknown) => error,
    );
    expect(second).toBeInstanceOf(UpstreamError);
    expect((second as UpstreamError).failure).toMatchObject({ kind: 'network', stage: 'mail' });
    expect(connection.closed).toBe(true);
    expect(server.sessions[0]!.messages).toHaveLength(1);
  });

  it('does not take a reply sent with the greeting as the answer to EHLO', async () => {
    const server = await scriptedUpstream({ greeting: null });
    const greeting = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        const session = server.sessions[0];
        if (!session) return;
        clearInterval(check);
        // A greeting and, in the same packet, a reply to a command not yet sent.
        session.socket.write('220 raw.test ESMTP\r\n250 2.0.0 nobody asked\r\n');
        resolve();
      }, 5);
    });
    const connecting = connectSmtp(plainClientOptions(server, { timeoutMs: 2000 })).then(
      (connection) => {
        onTestFinished(() => connection.close());
        return connection;
      },
      (error: unknown) => error,
    );
    await greeting;
    const outcome = await connecting;
    expect(outcome).toBeInstanceOf(UpstreamError);
    expect((outcome as UpstreamError).failure).toMatchObject({ kind: 'network', code: 'EPROTO' });
    expect((outcome as UpstreamError).message).toContain('nobody asked');
  });
});
