import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { startExchangeEmulator } from '../fixtures/exchange-emulator.ts';
import type { Emulator, EmulatorOptions } from '../fixtures/exchange-emulator.ts';
import { testCa } from '../fixtures/tls.ts';

const MAILBOX = 'john@contoso.com';
const PASSWORD = 'correct horse battery staple';
const HOSTNAME = 'BN9PR03CA0042.namprd03.prod.outlook.com';

const base64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
const plain = (user: string, password: string): string => base64(`\0${user}\0${password}`);
const xoauth2 = (user: string, token: string): string =>
  base64(`user=${user}\x01auth=Bearer ${token}\x01\x01`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A minimal SMTP client speaking raw lines, so the tests see exactly what the emulator sends. */
class RawClient {
  readonly closed: Promise<void>;
  private socket: net.Socket;
  private partial = '';
  private readonly lines: string[] = [];
  private ended = false;
  private waiter: { resolve: (reply: string) => void; reject: (error: Error) => void } | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => {
      this.ended = true;
      this.deliver();
    });
    this.listen(socket);
  }

  static async connect(port: number, implicitTls?: tls.ConnectionOptions): Promise<RawClient> {
    const socket = implicitTls
      ? tls.connect({ host: '127.0.0.1', port, ca: testCa.pem, ...implicitTls })
      : net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(implicitTls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  async command(line: string): Promise<string> {
    this.send(`${line}\r\n`);
    return this.read();
  }

  /** The next complete reply, its lines joined with CRLF. */
  read(timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.deliver();
    });
  }

  /** True when the server sent anything not read yet. */
  hasUnread(): boolean {
    return this.lines.length > 0 || this.partial.length > 0;
  }

  /** Sends STARTTLS and performs the handshake; rejects with the TLS error when it fails. */
  async startTls(options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    expect(await this.command('STARTTLS')).toBe('220 2.0.0 SMTP server ready');
    this.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: this.socket, host: '127.0.0.1', ca: testCa.pem, ...options });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
    return secure;
  }

  /** Greeting, EHLO, STARTTLS, EHLO again. */
  async secureHello(): Promise<void> {
    expect(await this.read()).toMatch(/^220 /);
    expect(await this.command('EHLO relay.test')).toMatch(/^250-/);
    await this.startTls();
    expect(await this.command('EHLO relay.test')).toMatch(/^250-/);
  }

  close(): void {
    this.socket.destroy();
  }

  private listen(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      const pieces = (this.partial + chunk.toString('latin1')).split('\r\n');
      this.partial = pieces.pop() ?? '';
      this.lines.push(...pieces);
      this.deliver();
    });
  }

  private deliver(): void {
    if (!this.waiter) return;
    const last = this.lines.findIndex((line) => line.charAt(3) !== '-');
    if (last >= 0) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve(this.lines.splice(0, last + 1).join('\r\n'));
    } else if (this.ended) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.reject(new Error('connection closed without a reply'));
    }
  }
}

const emulators: Emulator[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(emulators.splice(0).map((emulator) => emulator.close()));
});

async function start(options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startExchangeEmulator(options);
  emulators.push(emulator);
  return emulator;
}

async function connect(emulator: Emulator, implicitTls?: tls.ConnectionOptions): Promise<RawClient> {
  const client = await RawClient.connect(emulator.port, implicitTls);
  clients.push(client);
  return client;
}

async function authenticated(emulator: Emulator): Promise<RawClient> {
  const client = await connect(emulator);
  await client.secureHello();
  expect(await client.command(`AUTH PLAIN ${plain(MAILBOX, PASSWORD)}`)).toBe(
    '235 2.7.0 Authentication successful',
  );
  return client;
}

/** Sends one message with dot-stuffing, as a correct client does, and returns the final reply. */
async function sendMessage(
  client: RawClient,
  from: string,
  to: string[],
  message: Buffer,
  replyTimeoutMs?: number,
): Promise<string> {
  expect(await client.command(`MAIL FROM:<${from}>`)).toBe('250 2.1.0 Sender OK');
  for (const recipient of to)
    expect(await client.command(`RCPT TO:<${recipient}>`)).toBe('250 2.1.5 Recipient OK');
  expect(await client.command('DATA')).toBe('354 Start sending mail input; end with <CRLF>.<CRLF>');
  const stuffed = Buffer.from(message.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
  client.send(Buffer.concat([stuffed, Buffer.from('\r\n.\r\n')]));
  return client.read(replyTimeoutMs);
}

const simpleMessage = (from: string): Buffer =>
  Buffer.from(`From: Sender <${from}>\r\nTo: <jane@fabrikam.com>\r\nSubject: Scan\r\n\r\nHello\r\n`);

describe('Exchange Online emulator: session and TLS', () => {
  it('greets and advertises like Exchange Online before and after STARTTLS', async () => {
    const emulator = await start();
    const client = await connect(emulator);
    expect(await client.read()).toMatch(
      /^220 BN9PR03CA0042\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/,
    );
    const common = ['SIZE 157286400', 'PIPELINING', 'DSN', 'ENHANCEDSTATUSCODES'];
    const tail = ['8BITMIME', 'BINARYMIME', 'CHUNKING', 'SMTPUTF8'];
    const ehloLines = (extension: string): string[] =>
      ['BN9PR03CA0042.outlook.office365.com Hello [127.0.0.1]', ...common, extension, ...tail].map(
        (line, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${line}`,
      );
    expect((await client.command('EHLO relay.test')).split('\r\n')).toEqual(ehloLines('STARTTLS'));
    const secure = await client.startTls();
    expect(secure.getProtocol()).toBe('TLSv1.3');
    expect((await client.command('EHLO relay.test')).split('\r\n')).toEqual(ehloLines('AUTH LOGIN XOAUTH2'));
    expect(await client.command('HELO relay.test')).toBe(
      '250 BN9PR03CA0042.outlook.office365.com Hello [127.0.0.1]',
    );
    expect(await client.command('NOOP')).toBe('250 2.0.0 OK');
    expect(await client.command('RSET')).toBe('250 2.0.0 Resetting');
    expect(await client.command('VRFY john')).toBe('500 5.3.3 Unrecognized command');
    expect(await client.command('EHLO')).toBe('501 5.5.4 Invalid arguments');
    expect(await client.command('QUIT')).toBe('221 2.0.0 Service closing transmission channel');
    await client.closed;
  });

  it('refuses AUTH before TLS with 504 5.7.4', async () => {
    const emulator = await start();
    const client = await connect(emulator);
    await client.read();
    await client.command('EHLO relay.test');
    expect(await client.command(`AUTH PLAIN ${plain(MAILBOX, PASSWORD)}`)).toBe(
      '504 5.7.4 Unrecognized authentication type',
    );
    expect(await client.command('AUTH LOGIN')).toBe('504 5.7.4 Unrecognized authentication type');
  });

  it('discards commands pipelined after STARTTLS in clear text', async () => {
    const emulator = await start();
    const client = await connect(emulator);
    await client.read();
    await client.command('EHLO relay.test');
    client.send('STARTTLS\r\nEHLO injected.example\r\n');
    expect(await client.read()).toBe('220 2.0.0 SMTP server ready');
    client.send('QUIT\r\n');
    await client.closed;
    expect(emulator.transcript.join('\n')).not.toContain('injected.example');
  });

  it('refuses MAIL FROM before AUTH with 530 5.7.57', async () => {
    const emulator = await start();
    const client = await connect(emulator);
    await client.secureHello();
    expect(await client.command(`MAIL FROM:<${MAILBOX}>`)).toBe(
      `530 5.7.57 Client not authenticated to send mail. [${HOSTNAME}]`,
    );
  });

  it('with a TLS 1.0-only server, fails the handshake of a client that requires TLS 1.2', async () => {
    const emulator = await start({ tlsVersions: { min: 'TLSv1', max: 'TLSv1' } });
    const client = await connect(emulator);
    await client.read();
    await client.command('EHLO relay.test');
    const handshake = client.startTls({ minVersion: 'TLSv1.2' });
    await expect(handshake).rejects.toMatchObject({ code: expect.stringMatching(/PROTOCOL/) });
  });

  it('answers a TLS 1.0 client 421 4.7.66 after the handshake and closes', async () => {
    const emulator = await start({ tlsVersions: { min: 'TLSv1', max: 'TLSv1.3' } });
    const client = await connect(emulator);
    await client.read();
    await client.command('EHLO relay.test');
    const secure = await client.startTls({
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    expect(secure.getProtocol()).toBe('TLSv1');
    expect(await client.command('EHLO relay.test')).toBe(
      '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls.',
    );
    await client.closed;
  });

  it('presents certificates a client that trusts the test CA rejects when asked to', async () => {
    const untrusted = await start({ certificate: 'untrusted' });
    const first = await connect(untrusted);
    await first.read();
    await expect(first.startTls()).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });

    const wrongHost = await start({ certificate: 'wrong-host' });
    const second = await connect(wrongHost);
    await second.read();
    await expect(second.startTls()).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('speaks TLS from the first byte with implicitTls and then offers AUTH without STARTTLS', async () => {
    const emulator = await start({ implicitTls: true });
    const client = await connect(emulator, {});
    expect(await client.read()).toMatch(/^220 /);
    const ehlo = await client.command('EHLO relay.test');
    expect(ehlo).toContain('250-AUTH LOGIN XOAUTH2');
    expect(ehlo).not.toContain('STARTTLS');
  });

  it('closes open sessions on close()', async () => {
    const emulator = await start();
    const client = await connect(emulator);
    await client.read();
    await emulator.close();
    emulators.splice(emulators.indexOf(emulator), 1);
    await client.closed;
  });
});

describe('Exchange Online emulator: authentication', () => {
  it('accepts AUTH LOGIN with the standard prompts and AUTH PLAIN although it is not advertised', async () => {
    const emulator = await start();
    const login = await connect(emulator);
    await login.secureHello();
    expect(await login.command('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6');
    expect(await login.command(base64('JOHN@contoso.com'))).toBe('334 UGFzc3dvcmQ6');
    expect(await login.command(base64(PASSWORD))).toBe('235 2.7.0 Authentication successful');

    const initialResponse = await connect(emulator);
    await initialResponse.secureHello();
    expect(await initialResponse.command(`AUTH LOGIN ${base64(MAILBOX)}`)).toBe('334 UGFzc3dvcmQ6');
    expect(await initialResponse.command(base64(PASSWORD))).toBe('235 2.7.0 Authentication successful');

    const plainAfterPrompt = await connect(emulator);
    await plainAfterPrompt.secureHello();
    expect(await plainAfterPrompt.command('AUTH PLAIN')).toBe('334 ');
    expect(await plainAfterPrompt.command(plain(MAILBOX, PASSWORD))).toBe(
      '235 2.7.0 Authentication successful',
    );
    expect(emulator.stats.sessions).toBe(3);
  });

  it('answers 535 5.7.3 to a wrong password or user, and never logs the secret', async () => {
    const emulator = await start();
    const client = await connect(emulator);
    await client.secureHello();
    const failed = `535 5.7.3 Authentication unsuccessful [${HOSTNAME}]`;
    expect(await client.command(`AUTH PLAIN ${plain(MAILBOX, 'Tr0ub4dor&3')}`)).toBe(failed);
    expect(await client.command(`AUTH PLAIN ${plain('jane@contoso.com', PASSWORD)}`)).toBe(failed);
    expect(await client.command('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6');
    expect(await client.command(base64(MAILBOX))).toBe('334 UGFzc3dvcmQ6');
    expect(await client.command(base64('Tr0ub4dor&3'))).toBe(failed);
    expect(emulator.stats.authFailures).toBe(3);

    emulator.setPassword('Tr0ub4dor&3');
    expect(await client.command(`AUTH PLAIN ${plain(MAILBOX, 'Tr0ub4dor&3')}`)).toBe(
      '235 2.7.0 Authentication successful',
    );
    const transcript = emulator.transcript.join('\n');
    expect(transcript).toContain('C: AUTH PLAIN <redacted>');
    expect(transcript).toContain('C: <redacted>');
    expect(transcript).not.toContain('Tr0ub4dor');
    expect(transcript).not.toContain(base64('Tr0ub4dor&3'));
    expect(transcript).not.toContain(plain(MAILBOX, 'Tr0ub4dor&3'));
  });

  it('checks XOAUTH2 user= and the token with validateToken', async () => {
    const emulator = await start({
      validateToken: (token) => (token === 'good-token' ? { ok: true } : { ok: false, reason: 'expired' }),
    });
    const client = await connect(emulator);
    await client.secureHello();
    const failed = `535 5.7.3 Authentication unsuccessful [${HOSTNAME}]`;
    expect(await client.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, 'stale-token')}`)).toBe(failed);
    expect(await client.command(`AUTH XOAUTH2 ${xoauth2('jane@contoso.com', 'good-token')}`)).toBe(failed);
    expect(await client.command('AUTH XOAUTH2')).toBe('334 ');
    expect(await client.command(xoauth2('John@Contoso.com', 'good-token'))).toBe(
      '235 2.7.0 Authentication successful',
    );
    expect(emulator.transcript.join('\n')).not.toContain('good-token');

    const withoutValidator = await start();
    const other = await connect(withoutValidator);
    await other.secureHello();
    expect(await other.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, 'good-token')}`)).toBe(failed);
  });

  it('takes a delegated token only with the user it was issued to in user=', async () => {
    const emulator = await start({
      validateToken: (token) => ({ ok: true, user: token === 'johns-token' ? MAILBOX : 'jane@contoso.com' }),
    });
    const client = await connect(emulator);
    await client.secureHello();
    expect(await client.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, 'janes-token')}`)).toBe(
      `535 5.7.3 Authentication unsuccessful [${HOSTNAME}]`,
    );
    expect(emulator.transcript.join('\n')).toContain('the token was issued to jane@contoso.com');
    expect(await client.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, 'johns-token')}`)).toBe(
      '235 2.7.0 Authentication successful',
    );
  });

  it('gives the 4th concurrent authenticated session 432 4.3.2 until one of the others leaves', async () => {
    const emulator = await start();
    const sessions = [];
    for (let i = 0; i < 4; i++) sessions.push(await authenticated(emulator));
    const [first, second, third, fourth] = sessions as [RawClient, RawClient, RawClient, RawClient];
    expect(await fourth.command(`MAIL FROM:<${MAILBOX}>`)).toBe(
      `432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=${HOSTNAME}]`,
    );
    for (const client of [first, second, third]) {
      expect(await client.command(`MAIL FROM:<${MAILBOX}>`)).toBe('250 2.1.0 Sender OK');
    }
    expect(await first.command('QUIT')).toMatch(/^221 /);
    await first.closed;
    let reply = '';
    for (let attempt = 0; attempt < 40 && !reply.startsWith('250'); attempt++) {
      if (attempt > 0) await sleep(25);
      reply = await fourth.command(`MAIL FROM:<${MAILBOX}>`);
    }
    expect(reply).toBe('250 2.1.0 Sender OK');
    expect(emulator.stats.maxConcurrent).toBe(4);
  });
});

describe('Exchange Online emulator: messages', () => {
  it('receives a message byte-exact, dot-stuffing removed', async () => {
    const emulator = await start();
    const client = await authenticated(emulator);
    const message = Buffer.concat([
      Buffer.from(
        'From: "John" <john@contoso.com>\r\nTo: jane@fabrikam.com\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\n' +
          '.leading dot\r\n.\r\n..two dots\r\ncafé\r\n',
      ),
      Buffer.from([0x00, 0xff, 0x80, 0x0d, 0x0a]),
      Buffer.from('last line'),
    ]);
    const reply = await sendMessage(client, MAILBOX, ['jane@fabrikam.com', 'bob@fabrikam.com'], message);
    expect(reply).toMatch(
      new RegExp(`^250 2\\.0\\.0 OK <[^>]+> \\[Hostname=${HOSTNAME.replace(/\./g, '\\.')}\\]$`),
    );
    const [received] = await emulator.waitForMessages(1);
    expect(received!.data.equals(message)).toBe(true);
    expect(received).toMatchObject({
      mailFrom: MAILBOX,
      rcptTo: ['jane@fabrikam.com', 'bob@fabrikam.com'],
      authUser: MAILBOX,
      tlsProtocol: 'TLSv1.3',
    });
  });

  it('ends DATA only at CRLF.CRLF, even when the terminator arrives split over packets', async () => {
    const emulator = await start();
    const client = await authenticated(emulator);
    await client.command(`MAIL FROM:<${MAILBOX}>`);
    await client.command('RCPT TO:<jane@fabrikam.com>');
    await client.command('DATA');
    const smuggling = `From: ${MAILBOX}\r\n\r\nbefore\n.\nMAIL FROM:<x@evil.example>\r.\rmiddle\n.\r\nafter`;
    client.send(smuggling);
    await sleep(150);
    expect(client.hasUnread()).toBe(false);
    for (const piece of ['\r', '\n', '.', '\r', '\n']) {
      client.send(piece);
      await sleep(10);
    }
    expect(await client.read()).toMatch(/^250 2\.0\.0 OK /);
    const [received] = await emulator.waitForMessages(1);
    expect(received!.data.toString()).toBe(smuggling);
  });

  it('enforces Send As on header From and MAIL FROM until an alias is granted', async () => {
    const emulator = await start();
    const client = await authenticated(emulator);
    const denied = (from: string): string =>
      `554 5.2.252 SendAsDenied; ${MAILBOX} not allowed to send as ${from}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message.`;
    const folded = Buffer.from(
      'From: "Help Desk"\r\n <HelpDesk@contoso.com>\r\nSubject: Ticket\r\n\r\nBody\r\n',
    );
    expect(await sendMessage(client, MAILBOX, ['jane@fabrikam.com'], folded)).toBe(
      denied('HelpDesk@contoso.com'),
    );
    const bareEnvelope = simpleMessage(MAILBOX);
    expect(await sendMessage(client, 'FaxService@contoso.com', ['jane@fabrikam.com'], bareEnvelope)).toBe(
      denied('FaxService@contoso.com'),
    );
    expect(emulator.messages).toHaveLength(0);

    emulator.setOptions({ aliases: ['helpdesk@contoso.com'] });
    expect(await sendMessage(client, MAILBOX, ['jane@fabrikam.com'], folded)).toMatch(/^250 2\.0\.0 OK /);
    emulator.setOptions({ enforceSendAs: false });
    expect(await sendMessage(client, 'FaxService@contoso.com', ['jane@fabrikam.com'], bareEnvelope)).toMatch(
      /^250 2\.0\.0 OK /,
    );
    expect(emulator.messages).toHaveLength(2);
  });

  it('checks the mailbox size limit at the end of DATA', async () => {
    const emulator = await start({ maxMessageBytes: 1000 });
    const client = await authenticated(emulator);
    const header = `From: ${MAILBOX}\r\n\r\n`;
    const exactly = (size: number): Buffer => Buffer.from(header + 'x'.repeat(size - header.length));
    expect(await client.command(`MAIL FROM:<${MAILBOX}> SIZE=5000`)).toBe('250 2.1.0 Sender OK');
    expect(await client.command('RSET')).toBe('250 2.0.0 Resetting');
    expect(await sendMessage(client, MAILBOX, ['jane@fabrikam.com'], exactly(1001))).toBe(
      '552 5.3.4 Message size exceeds fixed maximum message size (STOREDRV.Submission.Exception:MessageTooBigException; MapiExceptionMaxSubmissionExceeded)',
    );
    expect(await sendMessage(client, MAILBOX, ['jane@fabrikam.com'], exactly(1000))).toMatch(/^250 /);
  });

  it('takes a 30 MB message', async () => {
    const emulator = await start();
    const client = await authenticated(emulator);
    const line = `${'0123456789'.repeat(7)}\r\n`;
    const message = Buffer.from(
      `From: ${MAILBOX}\r\n\r\n${line.repeat(Math.ceil((30 * 1024 * 1024) / line.length))}`,
    );
    expect(await sendMessage(client, MAILBOX, ['jane@fabrikam.com'], message)).toMatch(/^250 /);
    const [received] = await emulator.waitForMessages(1);
    expect(received!.data.equals(message)).toBe(true);
  });

  it('answers pipelined commands in order and limits a message to 500 recipients', async () => {
    const emulator = await start();
    const client = await authenticated(emulator);
    const recipients = Array.from({ length: 501 }, (_, i) => `RCPT TO:<user${i}@fabrikam.com>\r\n`);
    client.send(`MAIL FROM:<${MAILBOX}>\r\n${recipients.join('')}DATA\r\n`);
    expect(await client.read()).toBe('250 2.1.0 Sender OK');
    for (let i = 0; i < 500; i++) expect(await client.read()).toBe('250 2.1.5 Recipient OK');
    expect(await client.read()).toBe('452 4.5.3 Too many recipients');
    expect(await client.read()).toMatch(/^354 /);
    client.send(`${simpleMessage(MAILBOX).toString()}.\r\n`);
    expect(await client.read()).toMatch(/^250 /);
    expect(emulator.messages[0]!.rcptTo).toHaveLength(500);
  });

  it('rejects waitForMessages with a clear error on timeout', async () => {
    const emulator = await start();
    await expect(emulator.waitForMessages(1, 50)).rejects.toThrow(
      /expected 1 message\(s\) within 50 ms, received 0/,
    );
  });
});

describe('Exchange Online emulator: scripted replies', () => {
  it('replaces the reply at a stage, restricted by match and times', async () => {
    const emulator = await start();
    const notFound = '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup';
    emulator.script('rcpt', notFound, { match: (address) => address === 'gone@fabrikam.com', times: 1 });
    const client = await authenticated(emulator);
    await client.command(`MAIL FROM:<${MAILBOX}>`);
    expect(await client.command('RCPT TO:<gone@fabrikam.com>')).toBe(notFound);
    expect(await client.command('RCPT TO:<jane@fabrikam.com>')).toBe('250 2.1.5 Recipient OK');
    expect(await client.command('RCPT TO:<gone@fabrikam.com>')).toBe('250 2.1.5 Recipient OK');
  });

  it('answers AUTH with a policy reply even for the right password, and counts a 2xx as success', async () => {
    const emulator = await start();
    const disabled =
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.';
    emulator.script('auth', disabled, { match: (mechanism) => mechanism === 'PLAIN' });
    const client = await connect(emulator);
    await client.secureHello();
    expect(await client.command(`AUTH PLAIN ${plain(MAILBOX, PASSWORD)}`)).toBe(disabled);
    expect(emulator.stats.authFailures).toBe(1);
    emulator.clearScript();
    emulator.script('auth', '235 2.7.0 Authentication successful');
    expect(await client.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, 'anything')}`)).toBe(
      '235 2.7.0 Authentication successful',
    );
    expect(await client.command(`MAIL FROM:<${MAILBOX}>`)).toBe('250 2.1.0 Sender OK');
  });

  it('sends a scripted 421 greeting and closes', async () => {
    const emulator = await start();
    emulator.script('connect', '421 4.3.2 Service not available', { times: 1 });
    const refused = await connect(emulator);
    expect(await refused.read()).toBe('421 4.3.2 Service not available');
    await refused.closed;
    const next = await connect(emulator);
    expect(await next.read()).toMatch(/^220 /);
  });

  it('drops, stalls or resets the connection at the message stage without storing the message', async () => {
    const emulator = await start();
    emulator.script('message', { drop: true }, { times: 1 });
    const dropped = await authenticated(emulator);
    await expect(
      sendMessage(dropped, MAILBOX, ['jane@fabrikam.com'], simpleMessage(MAILBOX)),
    ).rejects.toThrow(/closed without a reply/);

    emulator.script('message', { resetMidData: true }, { times: 1 });
    const reset = await authenticated(emulator);
    await expect(sendMessage(reset, MAILBOX, ['jane@fabrikam.com'], simpleMessage(MAILBOX))).rejects.toThrow(
      /closed without a reply/,
    );

    emulator.script('message', { stall: true }, { times: 1 });
    const stalled = await authenticated(emulator);
    await expect(
      sendMessage(stalled, MAILBOX, ['jane@fabrikam.com'], simpleMessage(MAILBOX), 300),
    ).rejects.toThrow(/no reply within 300 ms/);
    expect(emulator.messages).toHaveLength(0);

    emulator.script('message', '451 4.7.500 Server busy. Please try again later', { times: 1 });
    const busy = await authenticated(emulator);
    expect(await sendMessage(busy, MAILBOX, ['jane@fabrikam.com'], simpleMessage(MAILBOX))).toBe(
      '451 4.7.500 Server busy. Please try again later',
    );
    expect(await sendMessage(busy, MAILBOX, ['jane@fabrikam.com'], simpleMessage(MAILBOX))).toMatch(/^250 /);
    expect(emulator.messages).toHaveLength(1);
  });
});
