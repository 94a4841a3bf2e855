/**
 * The LAN session's protocol core without a socket: bytes in, replies out, messages into a real spool
 * on disk. What the upstream offered (SMTPUTF8, SIZE) decides what a device is refused at once; a
 * clock under the test's control drives the deadlines.
 */
import { describe, expect, it } from 'vitest';
import { LanSession, type SessionHost, type SessionLimits } from '../../electron/relay/lan/session.ts';
import type { SpooledMessage } from '../../electron/relay/spool.ts';
import {
  createUpstreamCapabilities,
  type UpstreamCapabilities,
} from '../../electron/relay/upstream-capabilities.ts';
import { useTempSpools } from '../fixtures/temp-spools.ts';
import { eventually } from '../integration/harness.ts';

const spools = useTempSpools('relaydesk-session-');

const LIMITS: SessionLimits = {
  maxMessageBytes: 1024 * 1024,
  maxRecipients: 100,
  idleTimeoutMs: 300_000,
  minDataBytesPerSecond: 500,
  sessionTimeoutMs: 3_600_000,
  preparedGrowthBytes: 16 * 1024,
};

interface Harness {
  session: LanSession;
  replies: string[];
  accepted: SpooledMessage[];
  ended: () => boolean;
  upgraded: () => boolean;
  clock: { now: number };
  send(text: string | Buffer): void;
  /** Waits until `n` replies in all were written (async steps: spool, AUTH). */
  replyCount(n: number): Promise<string[]>;
}

async function harness(
  options: { upstream?: UpstreamCapabilities; limits?: Partial<SessionLimits>; startTls?: boolean } = {},
): Promise<Harness> {
  const spool = await spools.fresh();
  const capabilities = createUpstreamCapabilities();
  if (options.upstream) capabilities.learn(options.upstream);
  const replies: string[] = [];
  const accepted: SpooledMessage[] = [];
  let ended = false;
  let upgraded = false;
  const clock = { now: 1000 };
  const host: SessionHost = {
    hostname: 'relay.test',
    limits: { ...LIMITS, ...options.limits },
    // Never called by the core: the adapter does the handshake; set, it makes STARTTLS offered.
    startTls: options.startTls ? () => undefined as never : null,
    tlsFailed: () => undefined,
    isAllowed: (ip) => ip === '10.0.0.5',
    authenticate: async () => true,
    authGrantsRelay: false,
    upstreamCapabilities: () => capabilities.get(),
    denied: () => undefined,
    hasRoomFor: async () => true,
    beginMessage: (envelope) => spool.begin(envelope),
    accepted: (message) => void accepted.push(message),
    rejected: () => undefined,
    draining: () => false,
  };
  const session = new LanSession(
    host,
    { id: 1, remoteAddress: '10.0.0.5', remotePort: 40000, listener: '0.0.0.0:25', tls: false },
    {
      write: (reply) => void replies.push(reply),
      end: () => (ended = true),
      upgradeToTls: () => (upgraded = true),
      setReading: () => undefined,
    },
    () => clock.now,
  );
  session.start();
  return {
    session,
    replies,
    accepted,
    ended: () => ended,
    upgraded: () => upgraded,
    clock,
    send: (text) => session.receive(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8')),
    async replyCount(n) {
      await eventually(() => replies.length >= n || ended, 5000, 5);
      return replies;
    },
  };
}

const HELLO = 'EHLO scanner\r\n';

describe('SMTPUTF8 as the upstream offers it', () => {
  it('refuses a non-ASCII recipient with 553 5.6.7 when the upstream does not offer SMTPUTF8, and takes the ASCII ones', async () => {
    const h = await harness({ upstream: { smtpUtf8: false, sizeLimit: undefined } });
    h.send(`${HELLO}MAIL FROM:<john@contoso.com> SMTPUTF8\r\n`);
    await h.replyCount(3);
    h.send('RCPT TO:<josé@contoso.com>\r\nRCPT TO:<alice@contoso.com>\r\n');
    expect((await h.replyCount(5)).slice(3)).toEqual([
      expect.stringMatching(/^553 5\.6\.7 .*SMTPUTF8/),
      '250 2.1.5 Ok',
    ]);
  });

  it('refuses a non-ASCII sender there too, before any recipient', async () => {
    const h = await harness({ upstream: { smtpUtf8: false, sizeLimit: undefined } });
    h.send(`${HELLO}MAIL FROM:<josé@contoso.com>\r\n`);
    expect((await h.replyCount(3))[2]).toMatch(/^553 5\.6\.7 /);
  });

  it.each([
    { name: 'offers it', upstream: { smtpUtf8: true, sizeLimit: undefined } },
    { name: 'has not been reached yet', upstream: undefined },
  ])('takes josé@ when the upstream $name, and asks for SMTPUTF8 in the envelope', async ({ upstream }) => {
    const h = await harness({ upstream });
    h.send(`${HELLO}MAIL FROM:<john@contoso.com>\r\n`);
    await h.replyCount(3);
    h.send('RCPT TO:<josé@contoso.com>\r\nDATA\r\n');
    await h.replyCount(5);
    h.send('Subject: x\r\n\r\nhi\r\n.\r\n');
    expect((await h.replyCount(6))[5]).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(h.accepted[0]!.envelope).toMatchObject({ rcptTo: ['josé@contoso.com'], smtpUtf8: true });
  });
});

describe('SIZE as the upstream announces it', () => {
  const upstream = { smtpUtf8: true, sizeLimit: 100 * 1024 };
  const limit = 100 * 1024 - LIMITS.preparedGrowthBytes;

  it('advertises the upstream SIZE less what preparing adds, and refuses a larger declared size with 552', async () => {
    const h = await harness({ upstream });
    h.send(HELLO);
    expect((await h.replyCount(2))[1]).toContain(`250-SIZE ${limit}\r\n`);
    h.send(`MAIL FROM:<john@contoso.com> SIZE=${limit + 1}\r\n`);
    expect((await h.replyCount(3))[2]).toMatch(new RegExp(`^552 5\\.3\\.4 .* of ${limit} bytes`));
  });

  it('refuses a message over it after DATA with 552 and stores nothing', async () => {
    const h = await harness({ upstream });
    h.send(`${HELLO}MAIL FROM:<john@contoso.com>\r\n`);
    await h.replyCount(3);
    h.send('RCPT TO:<alice@contoso.com>\r\nDATA\r\n');
    await h.replyCount(5);
    h.send(`Subject: big\r\n\r\n${'x'.repeat(limit)}\r\n.\r\n`);
    expect((await h.replyCount(6))[5]).toMatch(/^552 5\.3\.4 /);
    expect(h.accepted).toEqual([]);
  });

  it('keeps the configured limit when the upstream announced none', async () => {
    const h = await harness({ upstream: { smtpUtf8: true, sizeLimit: undefined } });
    h.send(HELLO);
    expect((await h.replyCount(2))[1]).toContain(`250-SIZE ${LIMITS.maxMessageBytes}\r\n`);
  });
});

describe('one reset for RSET, STARTTLS and errors', () => {
  it('forgets HELO and AUTH at STARTTLS and drops anything pipelined after it', async () => {
    const h = await harness({ startTls: true });
    h.send(`${HELLO}AUTH PLAIN ${Buffer.from('\0scanner\0pw').toString('base64')}\r\n`);
    expect((await h.replyCount(3))[2]).toBe('235 2.7.0 Authentication successful');
    h.send('STARTTLS\r\nMAIL FROM:<smuggled@contoso.com>\r\n');
    expect(h.replies.slice(3)).toEqual(['220 2.0.0 Ready to start TLS']);
    expect(h.upgraded()).toBe(true);
    h.send(`${HELLO}MAIL FROM:<john@contoso.com>\r\n`);
    await h.replyCount(6);
    expect(h.replies[4]).not.toContain('STARTTLS');
    h.send('RCPT TO:<alice@contoso.com>\r\nDATA\r\n');
    await h.replyCount(8);
    h.send('Subject: x\r\n\r\nhi\r\n.\r\n');
    await h.replyCount(9);
    expect(h.accepted[0]!.envelope.client).toMatchObject({ tls: true, authUser: null, helo: 'scanner' });
  });
});

describe('deadlines (Slowloris)', () => {
  it('gives a command line idleTimeoutMs from its first byte, however steadily the bytes come', async () => {
    const h = await harness({ limits: { idleTimeoutMs: 10_000 } });
    for (const byte of 'NOOP') {
      h.send(byte);
      h.clock.now += 3000;
      h.session.checkDeadline();
    }
    expect(h.ended()).toBe(true);
    expect(h.replies.at(-1)).toBe(
      '421 4.4.2 Command line not completed within 10 seconds, closing connection',
    );
  });

  it('lets DATA take idleTimeoutMs plus a second per minDataBytesPerSecond received', async () => {
    const h = await harness({ limits: { idleTimeoutMs: 10_000, minDataBytesPerSecond: 100 } });
    h.send(`${HELLO}MAIL FROM:<john@contoso.com>\r\n`);
    await h.replyCount(3);
    h.send('RCPT TO:<alice@contoso.com>\r\nDATA\r\n');
    await h.replyCount(5);
    const started = h.clock.now;
    // 1,000 bytes buy 10 s on top of the first 10 s.
    h.send(`Subject: x\r\n\r\n${'y'.repeat(1000 - 16)}\r\n`);
    expect(h.session.deadline()).toBe(started + 20_000);
    h.clock.now = started + 19_999;
    h.session.checkDeadline();
    expect(h.ended()).toBe(false);
    h.clock.now = started + 20_000;
    h.session.checkDeadline();
    expect(h.replies.at(-1)).toMatch(/^421 4\.4\.2 Message data arrived at less than 100 bytes per second/);
    expect(h.accepted).toEqual([]);
  });

  it('ends the session at sessionTimeoutMs, but only after the message under way has its 250', async () => {
    const h = await harness({ limits: { sessionTimeoutMs: 60_000 } });
    h.send(`${HELLO}MAIL FROM:<john@contoso.com>\r\n`);
    await h.replyCount(3);
    h.send('RCPT TO:<alice@contoso.com>\r\nDATA\r\n');
    await h.replyCount(5);
    h.clock.now += 60_000;
    h.session.checkDeadline();
    expect(h.ended()).toBe(false);
    h.send('Subject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n');
    await eventually(() => h.ended(), 5000, 5);
    expect(h.replies.slice(5)).toEqual([
      expect.stringMatching(/^250 2\.0\.0 Ok: queued as /),
      '421 4.4.2 Session time limit of 60 seconds reached, closing connection',
    ]);
    expect(h.accepted).toHaveLength(1);
  });
});

describe('bytes in, replies out', () => {
  it('answers a pipelined conversation the same however its bytes are cut into chunks', async () => {
    const conversation = Buffer.from(
      `${HELLO}MAIL FROM:<john@contoso.com>\r\nRCPT TO:<alice@contoso.com>\r\nRCPT TO:<alice@contoso.com>\r\n` +
        'DATA\r\nSubject: x\r\n\r\n.. stuffed\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n',
    );
    const answers: string[][] = [];
    let seed = 7;
    for (let round = 0; round < 20; round += 1) {
      const h = await harness();
      for (let at = 0; at < conversation.length;) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        const size = 1 + (seed % 9);
        h.send(conversation.subarray(at, at + size));
        at += size;
      }
      await eventually(() => h.ended(), 5000, 5);
      answers.push(h.replies.map((reply) => reply.replace(/queued as \S+/, 'queued as <ID>')));
      expect(h.accepted[0]!.envelope.rcptTo).toEqual(['alice@contoso.com']);
    }
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]!.slice(2)).toEqual([
      '250 2.1.0 Ok',
      '250 2.1.5 Ok',
      '250 2.1.5 Ok',
      '354 End data with <CR><LF>.<CR><LF>',
      'queued as <ID>'.replace(/^/, '250 2.0.0 Ok: '),
      '250 2.0.0 Ok',
      '250 2.0.0 Ok',
      '221 2.0.0 Bye',
    ]);
  });
});
