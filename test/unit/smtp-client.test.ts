import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../electron/config/loopback.ts';
import { assertAuthAllowed, connectSmtp } from '../../electron/relay/smtp-client.ts';
import type { SmtpConnection, SmtpStep } from '../../electron/relay/smtp-client.ts';
import { ReplyReader, parseReply } from '../../electron/relay/smtp-reply.ts';
import { UpstreamError } from '../../electron/relay/upstream-failure.ts';
import { startRawSmtpServer } from '../fixtures/raw-smtp-server.ts';
import type { RawSmtpServer } from '../fixtures/raw-smtp-server.ts';
import { serverCertificate, testCa, untrustedCertificate, wrongHostCertificate } from '../fixtures/tls.ts';
import {
  acceptsAfter,
  connectPlain,
  plainClientOptions,
  scriptedUpstream,
} from '../fixtures/scripted-upstream.ts';
import { failureOf } from '../fixtures/upstream-failures.ts';

const PASSWORD = 'S3cret!';
const ACCESS_TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOi.test-token';
const serverTls = { key: serverCertificate.key.pem, cert: serverCertificate.cert.pem };

function firstSession(server: RawSmtpServer) {
  const session = server.sessions[0];
  if (!session) throw new Error('no session');
  return session;
}

const envelope = { mailFrom: 'john@contoso.com', rcptTo: ['anna@contoso.com'] };

/**
 * The message data as a server receives it (dot-stuffing and final dot included), the message handed
 * to the client in these chunks: nodemailer's DataStream does the encoding, so it is tested on the wire.
 */
let wireServer: Promise<{ server: RawSmtpServer; connection: SmtpConnection }> | null = null;
async function encode(chunks: string[]): Promise<string> {
  wireServer ??= (async () => {
    const server = await startRawSmtpServer();
    const connection = await connectSmtp(plainClientOptions(server));
    return { server, connection };
  })();
  const { server, connection } = await wireServer;
  const source = Readable.from(chunks.map((chunk) => Buffer.from(chunk, 'latin1')));
  await connection.send(envelope, source);
  const messages = server.sessions[0]!.messages;
  return messages[messages.length - 1]!.raw!.toString('latin1');
}

afterAll(async () => {
  if (!wireServer) return;
  const { server, connection } = await wireServer;
  connection.close();
  await server.close();
});

/** What a strict server gets back from the wire: the message with CRLF line ends, dots unstuffed. */
function decodeWire(wire: string): string {
  expect(wire.endsWith('\r\n.\r\n') || wire === '.\r\n').toBe(true);
  const body = wire.slice(0, -3);
  return body
    .split('\r\n')
    .map((line) => (line.startsWith('.') ? line.slice(1) : line))
    .join('\r\n');
}

describe('parseReply', () => {
  it('takes the enhanced status code out of the text', () => {
    expect(
      parseReply(['535 5.7.139 Authentication unsuccessful, basic authentication is disabled.']),
    ).toEqual({
      code: 535,
      enhanced: '5.7.139',
      text: 'Authentication unsuccessful, basic authentication is disabled.',
      raw: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled.',
    });
  });

  it('joins a multi-line reply, dropping the enhanced code repeated on each line', () => {
    expect(parseReply(['550-5.7.1 Message rejected', '550 5.7.1 see https://example.test/why'])).toEqual({
      code: 550,
      enhanced: '5.7.1',
      text: 'Message rejected see https://example.test/why',
      raw: '550-5.7.1 Message rejected\r\n550 5.7.1 see https://example.test/why',
    });
  });

  it('leaves replies without an enhanced code alone', () => {
    expect(parseReply(['220 smtp.example.test ESMTP ready'])).toMatchObject({
      enhanced: null,
      text: 'smtp.example.test ESMTP ready',
    });
    expect(parseReply(['250 5.7.1 is not a 2xx class'])).toMatchObject({
      enhanced: null,
      text: '5.7.1 is not a 2xx class',
    });
    expect(parseReply(['354'])).toEqual({ code: 354, enhanced: null, text: '', raw: '354' });
  });

  it('refuses what is not a reply', () => {
    expect(() => parseReply(['hello'])).toThrow(/not an SMTP reply/);
    expect(() => parseReply([])).toThrow(/not an SMTP reply/);
  });
});

describe('ReplyReader', () => {
  it('puts together a reply split at every byte and separates replies that share a packet', () => {
    const reader = new ReplyReader();
    const wire =
      '250-raw.test Hello\r\n250 PIPELINING\r\n250 2.1.0 Sender OK\n550 5.1.10 Recipient not found\r\n';
    const replies: string[][] = [];
    for (const byte of Buffer.from(wire)) replies.push(...reader.push(Buffer.from([byte])));
    expect(replies).toEqual([
      ['250-raw.test Hello', '250 PIPELINING'],
      ['250 2.1.0 Sender OK'],
      ['550 5.1.10 Recipient not found'],
    ]);
    expect(reader.idle).toBe(true);
    expect(new ReplyReader().push(Buffer.from('250 a\r\n250 b\r\n220 c\r\n'))).toHaveLength(3);
  });

  it('refuses garbage and a multi-line reply that changes its code', () => {
    expect(() => new ReplyReader().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n'))).toThrow(
      /not an SMTP reply/,
    );
    expect(() => new ReplyReader().push(Buffer.from('250-a\r\n550 b\r\n'))).toThrow(/not an SMTP reply/);
    expect(() => new ReplyReader().push(Buffer.alloc(10_000, 0x41))).toThrow(/longer than/);
  });
});

describe('message data on the wire (nodemailer DataStream)', () => {
  const cases: [string, string, string][] = [
    ['bare LF line ends', 'Subject: scan\n\nPage 1\n', 'Subject: scan\r\n\r\nPage 1\r\n.\r\n'],
    ['CRLF kept, final CRLF added', 'a\r\nb', 'a\r\nb\r\n.\r\n'],
    ['empty message', '', '\r\n.\r\n'],
    ['lone line end', '\n', '\r\n.\r\n'],
    ['leading dot', '.hidden\r\n', '..hidden\r\n.\r\n'],
    ['dots only', '..', '...\r\n.\r\n'],
    ['dot inside a line', 'a.b\n.', 'a.b\r\n..\r\n.\r\n'],
    ['smuggling <LF>.<LF>', 'a\n.\nMAIL FROM:<x@evil.test>\n', 'a\r\n..\r\nMAIL FROM:<x@evil.test>\r\n.\r\n'],
    ['smuggling <CR>.<CR>', 'a\r.\rRCPT TO:<y@evil.test>\r', 'a\r\n..\r\nRCPT TO:<y@evil.test>\r\n.\r\n'],
    ['smuggling <LF>.<CR><LF>', 'a\n.\r\nDATA\r\n', 'a\r\n..\r\nDATA\r\n.\r\n'],
    ['smuggling <CR><LF>.<LF>', 'a\r\n.\nb', 'a\r\n..\r\nb\r\n.\r\n'],
    ['bare CR before CRLF', 'a\r\r\nb\r\n', 'a\r\n\r\nb\r\n.\r\n'],
    ['trailing bare CR', 'x\r', 'x\r\n.\r\n'],
  ];

  it.each(cases)('%s, whatever the chunk boundaries', async (_name, input, expected) => {
    expect(await encode([input])).toBe(expected);
    for (let first = 0; first <= input.length; first++) {
      for (let second = first; second <= input.length; second++) {
        const chunks = [input.slice(0, first), input.slice(first, second), input.slice(second)];
        expect(await encode(chunks), JSON.stringify(chunks)).toBe(expected);
      }
    }
    expect(await encode([...input])).toBe(expected);
  });

  it('never lets CR, LF and dots in any order end the data early', async () => {
    let seed = 20240229;
    const random = (limit: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % limit;
    };
    for (let round = 0; round < 1500; round++) {
      const input = Array.from({ length: random(14) }, () => '\r\n.a'.charAt(random(4))).join('');
      const chunks: string[] = [];
      for (let start = 0; start < input.length;) {
        const size = 1 + random(4);
        chunks.push(input.slice(start, start + size));
        start += size;
      }
      const wire = await encode(chunks);
      const label = JSON.stringify(chunks);
      expect(wire.replace(/\r\n/g, ''), label).not.toMatch(/[\r\n]/);
      expect(wire.indexOf('\r\n.\r\n'), label).toBe(wire === '.\r\n' ? -1 : wire.length - 5);
      let normalized = input.replace(/\r\n|\r|\n/g, '\r\n');
      // An empty message goes as one empty line.
      if (!normalized.endsWith('\r\n')) normalized += '\r\n';
      expect(decodeWire(wire), label).toBe(normalized);
    }
  });
});

describe('loopback guard for AUTH without encryption', () => {
  it('refuses any host but loopback', () => {
    for (const host of ['smtp.example.invalid', '10.100.102.2', '128.0.0.1', '::2', '::ffff:10.0.0.1']) {
      let error: unknown = null;
      try {
        assertAuthAllowed(host, false);
      } catch (thrown) {
        error = thrown;
      }
      expect(error, host).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).failure).toMatchObject({ kind: 'config', code: 'INSECURE_AUTH' });
      expect(isLoopbackHost(host)).toBe(false);
    }
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost']) {
      expect(() => assertAuthAllowed(host, false), host).not.toThrow();
    }
    expect(() => assertAuthAllowed('smtp.example.invalid', true)).not.toThrow();
  });

  it('stops connectSmtp before it talks to a remote host in plain text', async () => {
    const failure = await failureOf(
      connectSmtp({
        host: 'smtp.example.invalid',
        port: 25,
        security: 'none',
        heloName: 'relay.test',
        timeoutMs: 1000,
        auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
      }),
    );
    expect(failure).toMatchObject({ kind: 'config', code: 'INSECURE_AUTH' });
    expect(JSON.stringify(failure)).not.toContain(PASSWORD);
  });
});

describe('connectSmtp: greeting and EHLO', () => {
  it('reads the capabilities from an EHLO reply that arrives in 3-byte pieces', async () => {
    const server = await scriptedUpstream({
      splitReplies: 3,
      ehlo: [
        'SIZE 157286400',
        'PIPELINING',
        'DSN',
        'ENHANCEDSTATUSCODES',
        'AUTH LOGIN XOAUTH2',
        'AUTH=LOGIN',
        '8bitmime',
        'SMTPUTF8',
        'CHUNKING',
      ],
    });
    const connection = await connectPlain(server);
    expect(connection.capabilities).toEqual({
      size: 157286400,
      pipelining: true,
      starttls: false,
      eightBitMime: true,
      smtpUtf8: true,
      enhancedStatusCodes: true,
      auth: ['LOGIN', 'XOAUTH2'],
    });
    expect(connection.tlsProtocol).toBeNull();
    expect(firstSession(server).commands).toEqual(['EHLO relay.test']);
  });

  it('falls back to HELO when EHLO is refused with 5xx', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) => (command.startsWith('EHLO') ? '502 5.5.1 Unrecognized command' : undefined),
    });
    const connection = await connectPlain(server);
    expect(connection.capabilities).toMatchObject({ pipelining: false, size: null, auth: [] });
    expect(firstSession(server).commands).toEqual(['EHLO relay.test', 'HELO relay.test']);
  });

  it('reports a refusing greeting at stage greeting', async () => {
    const server = await scriptedUpstream({ greeting: '554 5.7.1 Access denied' });
    expect(await failureOf(connectPlain(server))).toMatchObject({
      kind: 'reply',
      stage: 'greeting',
      reply: { code: 554, enhanced: '5.7.1', text: 'Access denied' },
    });
  });

  it('turns a silent server into ETIMEDOUT at the stage it stalled in', async () => {
    const server = await scriptedUpstream({ greeting: null });
    const started = Date.now();
    const failure = await failureOf(connectPlain(server, { timeoutMs: 300 }));
    expect(failure).toMatchObject({ kind: 'network', stage: 'greeting', code: 'ETIMEDOUT' });
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('reports a refused connection as ECONNREFUSED', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    expect(await failureOf(connectPlain({ port }))).toMatchObject({
      kind: 'network',
      stage: 'connect',
      code: 'ECONNREFUSED',
    });
  });

  it('reports a server that is not speaking SMTP as a protocol failure', async () => {
    const server = await scriptedUpstream({ greeting: 'SSH-2.0-OpenSSH_9.6' });
    expect(await failureOf(connectPlain(server))).toMatchObject({
      kind: 'network',
      stage: 'greeting',
      code: 'EPROTO',
    });
  });
});

describe('connectSmtp: authentication', () => {
  function recordSteps() {
    const lines: string[] = [];
    const steps: SmtpStep[] = [];
    const hooks = {
      onLine: (direction: 'in' | 'out', line: string) => lines.push(`${direction} ${line}`),
      onStep: (step: SmtpStep) => steps.push(step),
    };
    return { lines, steps, hooks };
  }

  it('uses AUTH PLAIN when offered, and redacts it from the transcript', async () => {
    const server = await scriptedUpstream();
    const { lines, steps, hooks } = recordSteps();
    await connectPlain(server, {
      auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
      ...hooks,
    });
    const session = firstSession(server);
    expect(session.chunks).toContain('AUTH PLAIN AGpvaG5AY29udG9zby5jb20AUzNjcmV0IQ==\r\n');
    expect(lines).toContain('out AUTH PLAIN <redacted>');
    expect(lines).toContain('in 235 2.7.0 Authentication successful');
    expect(lines.join('\n')).not.toContain('AGpvaG5AY29udG9zby5jb20AUzNjcmV0IQ==');
    expect(steps.map(({ stage, ok, detail }) => [stage, ok, stage === 'auth' ? detail : ''])).toEqual([
      ['connect', true, ''],
      ['greeting', true, ''],
      ['ehlo', true, ''],
      ['auth', true, 'PLAIN'],
    ]);
  });

  it('uses AUTH LOGIN with the standard prompts when PLAIN is not offered', async () => {
    const server = await scriptedUpstream({ ehlo: ['AUTH LOGIN XOAUTH2'] });
    const { lines, hooks } = recordSteps();
    await connectPlain(server, {
      auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
      ...hooks,
    });
    expect(firstSession(server).commands.slice(1)).toEqual([
      'AUTH LOGIN',
      'am9obkBjb250b3NvLmNvbQ==',
      'UzNjcmV0IQ==',
    ]);
    expect(lines.slice(-6)).toEqual([
      'out AUTH LOGIN',
      'in 334 VXNlcm5hbWU6',
      'out <redacted>',
      'in 334 UGFzc3dvcmQ6',
      'out <redacted>',
      'in 235 2.7.0 Authentication successful',
    ]);
  });

  it('tries AUTH LOGIN when the server does not advertise AUTH at all', async () => {
    const server = await scriptedUpstream({ ehlo: ['PIPELINING'] });
    await connectPlain(server, {
      auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
    });
    expect(firstSession(server).commands.slice(1)).toEqual([
      'AUTH LOGIN',
      'am9obkBjb250b3NvLmNvbQ==',
      'UzNjcmV0IQ==',
    ]);
  });

  it('sends XOAUTH2 with the bearer token in one line', async () => {
    const server = await scriptedUpstream();
    const { lines, hooks } = recordSteps();
    await connectPlain(server, {
      auth: { method: 'xoauth2', user: 'john@contoso.com', accessToken: ACCESS_TOKEN },
      ...hooks,
    });
    expect(firstSession(server).chunks).toContain(
      'AUTH XOAUTH2 dXNlcj1qb2huQGNvbnRvc28uY29tAWF1dGg9QmVhcmVyIGV5SjBlWEFpT2lKS1YxUWlMQ0poYkdjaU9pLnRlc3QtdG9rZW4BAQ==\r\n',
    );
    expect(lines).toContain('out AUTH XOAUTH2 <redacted>');
    expect(lines.join('\n')).not.toContain('dXNlcj1');
  });

  it('answers the XOAUTH2 error challenge with an empty line and reports the final reply', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) => {
        if (command.startsWith('AUTH XOAUTH2 ')) {
          return '334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbS8uZGVmYXVsdCJ9';
        }
        return command === ''
          ? '535 5.7.3 Authentication unsuccessful [SN4PR0501CA0123.namprd05.prod.outlook.com]'
          : undefined;
      },
    });
    const failure = await failureOf(
      connectPlain(server, {
        auth: { method: 'xoauth2', user: 'john@contoso.com', accessToken: ACCESS_TOKEN },
      }),
    );
    expect(failure).toMatchObject({ kind: 'reply', stage: 'auth', reply: { code: 535, enhanced: '5.7.3' } });
    expect(firstSession(server).commands.at(-1)).toBe('');
  });

  it('carries the refusal with its stage and enhanced code, without the secret', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) =>
        command.startsWith('AUTH PLAIN')
          ? '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.'
          : undefined,
    });
    const { steps, hooks } = recordSteps();
    const failure = await failureOf(
      connectPlain(server, {
        auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
        ...hooks,
      }),
    );
    expect(failure).toEqual({
      kind: 'reply',
      stage: 'auth',
      reply: {
        code: 535,
        enhanced: '5.7.139',
        text: 'Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.',
        raw: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.',
      },
    });
    expect(steps.at(-1)).toMatchObject({ stage: 'auth', ok: false });
    expect(JSON.stringify(steps)).not.toContain('AGpvaG5A');
  });
});

describe('SmtpConnection.send', () => {
  it('pipelines MAIL, every RCPT and DATA in one packet and reports each recipient', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) =>
        command === 'RCPT TO:<nobody@contoso.com>'
          ? '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'
          : undefined,
    });
    const connection = await connectPlain(server);
    const result = await connection.send(
      {
        mailFrom: 'john@contoso.com',
        rcptTo: ['anna@contoso.com', 'nobody@contoso.com', 'bob@contoso.com'],
        size: 42,
      },
      Buffer.from('Subject: scan\n\n.\nhidden line\n'),
    );
    expect(result.recipients.map(({ address, accepted }) => [address, accepted])).toEqual([
      ['anna@contoso.com', true],
      ['nobody@contoso.com', false],
      ['bob@contoso.com', true],
    ]);
    expect(result.recipients[1]?.reply).toMatchObject({ code: 550, enhanced: '5.1.10' });
    expect(result.dataReply).toMatchObject({ code: 250, enhanced: '2.6.0' });
    const session = firstSession(server);
    expect(session.chunks).toContain(
      'MAIL FROM:<john@contoso.com> SIZE=42\r\nRCPT TO:<anna@contoso.com>\r\nRCPT TO:<nobody@contoso.com>\r\nRCPT TO:<bob@contoso.com>\r\nDATA\r\n',
    );
    expect(session.messages[0]?.raw?.toString()).toBe('Subject: scan\r\n\r\n..\r\nhidden line\r\n.\r\n');
  });

  it('waits for each reply when PIPELINING is not offered', async () => {
    const server = await scriptedUpstream({ ehlo: ['8BITMIME'] });
    const connection = await connectPlain(server);
    const result = await connection.send(
      {
        mailFrom: 'john@contoso.com',
        rcptTo: ['anna@contoso.com', 'bob@contoso.com'],
        size: 42,
        eightBit: true,
      },
      Buffer.from('Subject: x\r\n\r\nbody\r\n'),
    );
    expect(result.dataReply?.code).toBe(250);
    const session = firstSession(server);
    expect(session.chunks.slice(1, 4)).toEqual([
      'MAIL FROM:<john@contoso.com> BODY=8BITMIME\r\n',
      'RCPT TO:<anna@contoso.com>\r\n',
      'RCPT TO:<bob@contoso.com>\r\n',
    ]);
  });

  it('sends no message and resets when no recipient is accepted', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) =>
        command.startsWith('RCPT')
          ? '550 5.1.10 Recipient not found'
          : command === 'DATA'
            ? '554 5.5.1 Error: no valid recipients'
            : undefined,
    });
    const connection = await connectPlain(server);
    const result = await connection.send(envelope, Buffer.from('x'));
    expect(result).toMatchObject({
      dataReply: null,
      recipients: [{ accepted: false, reply: { code: 550, enhanced: '5.1.10' } }],
    });
    expect(firstSession(server).commands.slice(-3)).toEqual(['RCPT TO:<anna@contoso.com>', 'DATA', 'RSET']);
    expect(firstSession(server).messages).toEqual([]);
  });

  it('rejects a refused MAIL at stage mail and stays in step for the next message', async () => {
    let mailCount = 0;
    let refused = false;
    const server = await scriptedUpstream({
      // As real servers do after a refused MAIL: the pipelined RCPTs and DATA get 503.
      onCommand: (command) => {
        if (command.startsWith('MAIL')) refused = ++mailCount === 1;
        if (command.startsWith('MAIL') && refused) return '530 5.7.57 Client not authenticated to send mail';
        if (refused && (command.startsWith('RCPT') || command === 'DATA')) return '503 5.5.1 Bad sequence';
        return undefined;
      },
    });
    const connection = await connectPlain(server);
    const failure = await failureOf(
      connection.send(
        { mailFrom: 'john@contoso.com', rcptTo: ['a@contoso.com', 'b@contoso.com'] },
        Buffer.from('x'),
      ),
    );
    expect(failure).toMatchObject({ kind: 'reply', stage: 'mail', reply: { code: 530, enhanced: '5.7.57' } });
    const result = await connection.send(envelope, Buffer.from('second\r\n'));
    expect(result.dataReply?.code).toBe(250);
    expect(firstSession(server).messages.map((message) => message.raw?.toString())).toEqual([
      'second\r\n.\r\n',
    ]);
  });

  it('rejects a refused DATA at stage data and clears the transaction', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) => (command === 'DATA' ? '554 5.5.1 Error: no valid recipients' : undefined),
    });
    const connection = await connectPlain(server);
    const failure = await failureOf(connection.send(envelope, Buffer.from('x')));
    expect(failure).toMatchObject({ kind: 'reply', stage: 'data', reply: { code: 554 } });
    expect(firstSession(server).commands.slice(-2)).toEqual(['DATA', 'RSET']);
    expect(connection.closed).toBe(false);
  });

  it('rejects a refusal after the message at stage message', async () => {
    const server = await scriptedUpstream({
      onMessage: () =>
        '554 5.2.252 SendAsDenied; john@contoso.com not allowed to send as HelpDesk@contoso.com; STOREDRV.Submission.Exception',
    });
    const connection = await connectPlain(server);
    const failure = await failureOf(
      connection.send({ ...envelope, mailFrom: 'HelpDesk@contoso.com' }, Buffer.from('x')),
    );
    expect(failure).toMatchObject({
      kind: 'reply',
      stage: 'message',
      reply: { code: 554, enhanced: '5.2.252' },
    });
  });

  it('drops a session that took DATA after refusing MAIL, sending no message on it', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) => (command.startsWith('MAIL') ? '451 4.3.0 Try again later' : undefined),
    });
    const connection = await connectPlain(server);
    const failure = await failureOf(connection.send(envelope, Buffer.from('x')));
    expect(failure).toMatchObject({ kind: 'reply', stage: 'mail', reply: { code: 451 } });
    expect(connection.closed).toBe(true);
    expect(firstSession(server).messages).toEqual([]);
  });

  it('asks for SMTPUTF8 only from a server that offers it, and only for addresses that need it', async () => {
    const plain = await scriptedUpstream();
    const plainConnection = await connectPlain(plain);
    const refused = await failureOf(
      plainConnection.send({ ...envelope, mailFrom: 'jöhn@contoso.com', smtpUtf8: true }, Buffer.from('x')),
    );
    expect(refused).toMatchObject({ kind: 'config', code: 'SMTPUTF8_NOT_OFFERED' });
    expect(firstSession(plain).commands).toEqual(['EHLO relay.test']);
    // A device that asks for SMTPUTF8 with ASCII addresses: any server takes that (as from Postfix).
    const ascii = await plainConnection.send({ ...envelope, smtpUtf8: true }, Buffer.from('x'));
    expect(ascii.dataReply?.code).toBe(250);
    expect(firstSession(plain).commands).toContain('MAIL FROM:<john@contoso.com>');
    const capable = await scriptedUpstream({ ehlo: ['SMTPUTF8'] });
    await (
      await connectPlain(capable)
    ).send({ ...envelope, mailFrom: 'jöhn@contoso.com', smtpUtf8: true }, Buffer.from('x'));
    expect(firstSession(capable).commands).toContain(
      `MAIL FROM:<${Buffer.from('jöhn@contoso.com').toString('latin1')}> SMTPUTF8`,
    );
  });

  it('refuses envelope addresses that would smuggle a command', async () => {
    const server = await scriptedUpstream();
    const connection = await connectPlain(server);
    await expect(
      connection.send(
        { mailFrom: 'john@contoso.com', rcptTo: ['a@contoso.com>\r\nRCPT TO:<b@evil.test'] },
        Buffer.from('x'),
      ),
    ).rejects.toThrow(TypeError);
    expect(firstSession(server).commands).toEqual(['EHLO relay.test']);
    expect((await connection.send(envelope, Buffer.from('x'))).dataReply?.code).toBe(250);
  });

  it('streams a 30 MB message with backpressure, never holding it whole', async () => {
    const server = await scriptedUpstream({ pauseDataMs: 400 });
    const connection = await connectPlain(server, { timeoutMs: 10_000 });
    const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
    const block = Buffer.from(
      Array.from({ length: 800 }, (_, index) => (index % 50 === 0 ? `.${line}` : line)).join(''),
    );
    const stuffedBlock = Buffer.from(block.toString().replace(/^\./gm, '..'));
    const blocks = Math.ceil((30 * 1024 * 1024) / block.length);
    const expected = createHash('sha256');
    let produced = 0;
    let furthestAhead = 0;
    const session = () => firstSession(server);
    const source = Readable.from(
      (function* () {
        for (let index = 0; index < blocks; index++) {
          furthestAhead = Math.max(furthestAhead, produced - session().bytesReceived);
          produced += block.length;
          expected.update(stuffedBlock);
          yield block;
        }
        expected.update('.\r\n');
      })(),
    );
    const result = await connection.send(envelope, source);
    expect(result.dataReply?.code).toBe(250);
    const received = session().messages[0];
    expect(received?.bytes).toBe(stuffedBlock.length * blocks + 3);
    expect(received?.sha256).toBe(expected.digest('hex'));
    expect(produced).toBeGreaterThanOrEqual(30 * 1024 * 1024);
    // Socket buffers on loopback hold a few MB; anything near 30 MB would mean the client buffered it.
    expect(furthestAhead).toBeLessThan(16 * 1024 * 1024);
  });

  it('does not hold the end of a streamed message back for a delayed ACK (no Nagle upstream)', async () => {
    // A message streamed in several writes: with Nagle's algorithm the last small write waits for the
    // server's delayed ACK (40 ms on Linux), which capped delivery at ~20 messages a second per
    // connection. The peer measured in the same run: the same messages as one buffer, one write.
    const server = await scriptedUpstream();
    const connection = await connectPlain(server);
    const head = Buffer.from('Subject: paced\r\n\r\n');
    const body = Buffer.from('line of a scanned page\r\n'.repeat(400));
    const timed = async (message: () => Readable | Buffer) => {
      const started = performance.now();
      const result = await connection.send(envelope, message());
      expect(result.dataReply?.code).toBe(250);
      return performance.now() - started;
    };
    const streamed: number[] = [];
    const whole: number[] = [];
    for (let round = 0; round < 15; round++) {
      streamed.push(await timed(() => Readable.from([head, body])));
      whole.push(await timed(() => Buffer.concat([head, body])));
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    expect(firstSession(server).messages).toHaveLength(30);
    expect(median(streamed)).toBeLessThan(Math.max(5 * median(whole), 15));
  });

  it('fails the send, and nothing else, when the message file fails before the server asks for it', async () => {
    // The spool's file stream opens at once; MAIL, RCPT and DATA take round trips before nodemailer
    // reads it. An error in between (the file deleted or locked) must not be an uncaught exception.
    const server = await scriptedUpstream();
    const connection = await connectPlain(server);
    const source = createReadStream(join(tmpdir(), `relaydesk-missing-${process.pid}-${Date.now()}.eml`));
    await expect(connection.send(envelope, source)).rejects.toThrow(/message stream failed: ENOENT/);
    expect(firstSession(server).messages).toHaveLength(0);
  });

  it('closes without completing the message when the message stream fails', async () => {
    const server = await scriptedUpstream();
    const connection = await connectPlain(server);
    const source = new Readable({ read() {} });
    source.push('Subject: half\r\n\r\nfirst part\r\n');
    setTimeout(() => source.destroy(new Error('spool file vanished')), 50);
    await expect(connection.send(envelope, source)).rejects.toThrow('spool file vanished');
    expect(connection.closed).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(firstSession(server).messages).toEqual([]);
  });

  it('waits for the reply after the final dot longer than for any other reply (RFC 5321 4.5.3.2.6)', async () => {
    // The per-reply timeout is 300 ms; the server takes three of those to accept the message.
    const timeoutMs = 300;
    const server = await scriptedUpstream({
      onMessage: acceptsAfter(3 * timeoutMs, '250 2.6.0 Queued after a long scan'),
    });
    const connection = await connectPlain(server, { timeoutMs, finalReplyTimeoutMs: 10 * timeoutMs });
    const result = await connection.send(envelope, Buffer.from('x\r\n'));
    expect(result.dataReply).toMatchObject({ code: 250, enhanced: '2.6.0' });
    expect(firstSession(server).messages).toHaveLength(1);
    expect(connection.closed).toBe(false);
  });

  it('times out waiting for the final reply at stage message after the final-reply timeout, and closes', async () => {
    const timeoutMs = 200;
    const server = await scriptedUpstream({ onMessage: () => null });
    const connection = await connectPlain(server, { timeoutMs, finalReplyTimeoutMs: 4 * timeoutMs });
    let closedEvents = 0;
    connection.onClose(() => closedEvents++);
    const started = performance.now();
    const failure = await failureOf(connection.send(envelope, Buffer.from('x\r\n')));
    const waited = performance.now() - started;
    expect(failure).toMatchObject({ kind: 'network', stage: 'message', code: 'ETIMEDOUT' });
    // The final-reply timeout applied, not the per-reply one (a timer never fires early).
    expect(waited).toBeGreaterThanOrEqual(4 * timeoutMs - 5);
    expect(connection.closed).toBe(true);
    expect(closedEvents).toBe(1);
  });

  it('survives the server resetting an idle connection, and refuses to send on it', async () => {
    const server = await scriptedUpstream();
    const connection = await connectPlain(server);
    const closed = new Promise<void>((resolve) => connection.onClose(resolve));
    firstSession(server).socket.resetAndDestroy();
    await closed;
    expect(connection.closed).toBe(true);
    expect(await failureOf(connection.send(envelope, Buffer.from('x')))).toMatchObject({
      kind: 'network',
      code: 'ENOTCONN',
    });
  });

  it('quits politely, and never throws when the server does not answer QUIT', async () => {
    const server = await scriptedUpstream({
      onCommand: (command) => (command === 'QUIT' ? null : undefined),
    });
    const connection = await connectPlain(server, { timeoutMs: 200 });
    await connection.reset();
    await expect(connection.quit()).resolves.toBeUndefined();
    expect(connection.closed).toBe(true);
    expect(firstSession(server).commands.slice(-2)).toEqual(['RSET', 'QUIT']);
  });
});

describe('TLS', () => {
  it('upgrades with STARTTLS to a server whose CA is added, then says EHLO again', async () => {
    const server = await scriptedUpstream({ tls: serverTls });
    const steps: SmtpStep[] = [];
    const connection = await connectPlain(server, {
      security: 'starttls',
      ca: testCa.pem,
      auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
      onStep: (step) => steps.push(step),
    });
    expect(connection.tlsProtocol).toBe('TLSv1.3');
    expect(connection.capabilities.starttls).toBe(false);
    const starttls = steps.find((step) => step.stage === 'starttls');
    expect(starttls?.detail).toMatch(
      /^TLSv1\.3 TLS_\w+, certificate CN=localhost issued by CN=RelayDesk Test CA, valid until \d{4}-\d\d-\d\d$/,
    );
    const result = await connection.send(envelope, Buffer.from('over TLS\r\n'));
    expect(result.dataReply?.code).toBe(250);
    const session = firstSession(server);
    expect(session.secure).toBe(true);
    expect(session.commands.slice(0, 4)).toEqual([
      'EHLO relay.test',
      'STARTTLS',
      'EHLO relay.test',
      'AUTH PLAIN AGpvaG5AY29udG9zby5jb20AUzNjcmV0IQ==',
    ]);
  });

  it('negotiates TLS 1.2 with a server that stops there', async () => {
    const server = await scriptedUpstream({ tls: { ...serverTls, maxVersion: 'TLSv1.2' } });
    const connection = await connectPlain(server, { security: 'starttls', ca: testCa.pem });
    expect(connection.tlsProtocol).toBe('TLSv1.2');
  });

  it('speaks TLS from the first byte when security is tls', async () => {
    const server = await scriptedUpstream({ tls: serverTls, implicitTls: true });
    const steps: SmtpStep[] = [];
    const connection = await connectPlain(server, {
      security: 'tls',
      ca: testCa.pem,
      onStep: (step) => steps.push(step),
    });
    expect(connection.tlsProtocol).toBe('TLSv1.3');
    expect(steps[0]).toMatchObject({ stage: 'connect', ok: true });
    expect(steps[0]?.detail).toMatch(/^127\.0\.0\.1:\d+, TLSv1\.3 /);
  });

  it.each([
    ['a CA that is not trusted', serverTls, null, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    [
      'a self-signed certificate',
      { key: untrustedCertificate.key.pem, cert: untrustedCertificate.cert.pem },
      testCa.pem,
      'DEPTH_ZERO_SELF_SIGNED_CERT',
    ],
    [
      'a certificate for another name',
      { key: wrongHostCertificate.key.pem, cert: wrongHostCertificate.cert.pem },
      testCa.pem,
      'ERR_TLS_CERT_ALTNAME_INVALID',
    ],
  ])('refuses %s during STARTTLS', async (_name, certificate, ca, code) => {
    const server = await scriptedUpstream({ tls: certificate });
    const failure = await failureOf(
      connectPlain(server, {
        security: 'starttls',
        ca,
        auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
      }),
    );
    expect(failure).toMatchObject({ kind: 'tls', stage: 'starttls', code });
    expect(firstSession(server).commands).not.toContain('AUTH PLAIN AGpvaG5AY29udG9zby5jb20AUzNjcmV0IQ==');
  });

  it('refuses an untrusted certificate with implicit TLS at stage connect', async () => {
    const server = await scriptedUpstream({ tls: serverTls, implicitTls: true });
    expect(await failureOf(connectPlain(server, { security: 'tls' }))).toMatchObject({
      kind: 'tls',
      stage: 'connect',
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  it('refuses a server that only speaks TLS 1.0', async () => {
    const server = await scriptedUpstream({
      tls: { ...serverTls, minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' },
    });
    const failure = await failureOf(connectPlain(server, { security: 'starttls', ca: testCa.pem }));
    expect(failure).toMatchObject({
      kind: 'tls',
      stage: 'starttls',
      code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
    });
  });

  it('fails with STARTTLS_NOT_OFFERED when the server does not offer it', async () => {
    const server = await scriptedUpstream();
    const failure = await failureOf(
      connectPlain(server, {
        security: 'starttls',
        auth: { method: 'password', user: 'john@contoso.com', password: PASSWORD },
      }),
    );
    expect(failure).toMatchObject({ kind: 'tls', stage: 'starttls', code: 'STARTTLS_NOT_OFFERED' });
    expect(firstSession(server).commands).toEqual(['EHLO relay.test', 'STARTTLS']);
  });

  it('refuses plaintext sent after the STARTTLS reply (response injection)', async () => {
    const server = await scriptedUpstream({
      tls: serverTls,
      onCommand: (command) =>
        command === 'STARTTLS' ? ['220 2.0.0 Ready', '250 2.0.0 injected'] : undefined,
    });
    expect(await failureOf(connectPlain(server, { security: 'starttls', ca: testCa.pem }))).toMatchObject({
      kind: 'network',
      stage: 'starttls',
      code: 'EPROTO',
    });
  });
});
