/**
 * The device compatibility suite: one test per row of /work/shared/device-quirks.md, each the raw
 * SMTP conversation such a device holds, replayed over a real socket against `relaydesk serve`, with
 * the replies it gets and the bytes that reach the Exchange Online emulator checked exactly. Then
 * what those rows rely on: LAN sign-in (`lanAuth`), LAN TLS (`lanTls`) and several listeners.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import tls, { type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startExchangeEmulator,
  type Emulator,
  type EmulatorOptions,
  type ReceivedMessage,
} from '../fixtures/exchange-emulator.ts';
import { serverCertificate, testCa } from '../fixtures/tls.ts';
import { inspectSpool } from '../../electron/relay/spool.ts';
import {
  createTeardown,
  freePort,
  runCli,
  startRelay,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
} from './harness.ts';

type Relay = Awaited<ReturnType<typeof startRelay>>;

const HOST = 'relay.test';
const MAILBOX = 'john@contoso.com';
/** The device addresses the mailbox has Send As on, so the emulator's send-as check passes. */
const SEND_AS = ['scanner@contoso.com', 'printer@contoso.com', 'raid@contoso.com', 'web@contoso.com'];
const DEVICE_DATE = 'Date: Mon, 30 Nov 2026 08:00:00 +0100';

let emulator: Emulator | null = null;
const teardown = createTeardown();
afterEach(async () => {
  await teardown.run();
  emulator = null;
});

interface Setup {
  emulator: Emulator;
  relay: Relay;
}

/**
 * A relay (the real `relaydesk serve`) in front of the emulator. `extra` is merged into the test config;
 * its `listen` into the loopback listener the harness picks.
 */
async function setup(
  extra: Record<string, unknown> = {},
  emulatorOptions: EmulatorOptions = {},
  dataDir?: string,
): Promise<Setup> {
  emulator ??= teardown.closing(
    await startExchangeEmulator({
      password: UPSTREAM_PASSWORD,
      aliases: SEND_AS,
      ...emulatorOptions,
    }),
  );
  const { upstream, listen, ...rest } = extra as {
    upstream?: Record<string, unknown>;
    listen?: Record<string, unknown>;
  };
  const port = await freePort();
  const relay = await startRelay({
    config: testConfig(port, emulator.port, testCa.file, {
      allowedClients: ['127.0.0.1'],
      ...rest,
      listen: { host: '127.0.0.1', port, ...listen },
      upstream: { heloName: HOST, ...upstream },
    }),
    dataDir,
  });
  teardown.relay(relay);
  return { emulator, relay };
}

/** A device's end of the connection: writes what it is told, collects complete replies. */
class Wire {
  private buffer = '';
  private replies: string[] = [];
  private waiter: ((reply: string | null) => void) | null = null;
  private closed = false;

  private constructor(private socket: Socket | TLSSocket) {
    this.listen(socket);
    teardown.add(() => this.close());
  }

  static plain(port: number, localAddress?: string): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress });
      socket.once('connect', () => resolve(new Wire(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and writes `early` in the same tick, before any greeting can have arrived. */
  static early(port: number, early: string): Wire {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.write(early);
    return new Wire(socket);
  }

  static implicitTls(port: number, options: tls.ConnectionOptions = {}): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
      socket.once('secureConnect', () => resolve(new Wire(socket)));
      socket.once('error', reject);
    });
  }

  get protocol(): string | null {
    return 'getProtocol' in this.socket ? this.socket.getProtocol() : null;
  }

  get peerCertificate(): tls.PeerCertificate | null {
    return 'getPeerCertificate' in this.socket ? this.socket.getPeerCertificate() : null;
  }

  private listen(socket: Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.collect();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.(null);
    });
    socket.on('error', () => undefined);
  }

  private collect(): void {
    for (;;) {
      // A reply ends at a line whose fourth character is a space (or a bare code).
      const end = /^\d{3}(?: [^\r\n]*)?\r\n/m.exec(this.buffer);
      if (!end) return;
      const length = end.index + end[0].length;
      const reply = this.buffer.slice(0, length - 2);
      this.buffer = this.buffer.slice(length);
      if (this.waiter) this.waiter(reply);
      else this.replies.push(reply);
    }
  }

  /** The next complete reply (several lines joined with CRLF); rejects when none comes in time. */
  read(timeoutMs = 10_000): Promise<string> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (reply) => {
        clearTimeout(timer);
        this.waiter = null;
        if (reply === null) reject(new Error('connection closed'));
        else resolve(reply);
      };
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** After `220 Ready to start TLS`: the client side of the handshake on the same connection. */
  async startTls(options: tls.ConnectionOptions = {}): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false, ...options });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One step of a conversation: what the device sends (`C`, a command line; `RAW`, bytes as they are), or the reply it gets (`S`). */
type ReplyCheck = string | RegExp | ((reply: string) => boolean);
type Step = { send: string | Buffer } | { expect: ReplyCheck };
const C = (line: string): Step => ({ send: `${line}\r\n` });
const RAW = (bytes: string | Buffer): Step => ({ send: bytes });
const S = (reply: ReplyCheck): Step => ({ expect: reply });

/** Replays the steps in order; returns the queue ids from the `250 ... queued as` replies. */
async function replay(wire: Wire, steps: Step[]): Promise<string[]> {
  const queued: string[] = [];
  for (const step of steps) {
    if ('send' in step) {
      wire.write(step.send);
      continue;
    }
    const reply = await wire.read();
    if (typeof step.expect === 'string') expect(reply).toBe(step.expect);
    else if (step.expect instanceof RegExp) expect(reply).toMatch(step.expect);
    else expect(step.expect(reply), reply).toBe(true);
    const id = /queued as (\S+)$/.exec(reply)?.[1];
    if (id) queued.push(id);
  }
  return queued;
}

const GREETING = S(`220 ${HOST} ESMTP RelayDesk ready`);
const QUEUED = S(/^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/);
const START_DATA = S('354 End data with <CR><LF>.<CR><LF>');
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** A well-formed transaction after the greeting and hello; `message` is sent as given, then `.`. */
function transaction(from: string, to: string, message: string): Step[] {
  return [
    C(`MAIL FROM:<${from}>`),
    S('250 2.1.0 Ok'),
    C(`RCPT TO:<${to}>`),
    S('250 2.1.5 Ok'),
    C('DATA'),
    START_DATA,
    RAW(message),
    C('.'),
    QUEUED,
  ];
}

/** What the emulator received, with this hop's queue id and time stamps made comparable. */
function upstreamText(message: ReceivedMessage, queueId: string): string {
  return message.data
    .toString('latin1')
    .replaceAll(queueId, '<ID>')
    .replace(/\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000/g, '<NOW>');
}

function received(helo: string, protocol = 'ESMTP', ip = '127.0.0.1'): string {
  return `Received: from ${helo} ([${ip}])\r\n\tby ${HOST} (RelayDesk) with ${protocol} id <ID>;\r\n\t<NOW>\r\n`;
}

/** Waits for the one message a row sends and checks its envelope and bytes exactly. */
async function expectDelivered(
  queueId: string | undefined,
  envelope: { mailFrom: string; rcptTo: string[] },
  text: string,
  index = 0,
): Promise<ReceivedMessage> {
  const messages = await emulator!.waitForMessages(index + 1);
  const message = messages[index]!;
  expect({ mailFrom: message.mailFrom, rcptTo: message.rcptTo }).toEqual(envelope);
  expect(upstreamText(message, queueId!)).toBe(text);
  return message;
}

/** A device's message: header lines, a blank line, the body. */
const mail = (headers: string[], body: string) => `${headers.join('\r\n')}\r\n\r\n${body}`;
/** The message as the emulator stores it: without the CRLF before the final dot. */
const stored = (text: string) => text.replace(/\r\n$/, '');
const TO_ALICE = { rcptTo: ['alice@contoso.com'] };
/** The message most rows' devices send to alice@: From, To, Subject, the device's Date, Message-ID, `body`. */
const deviceMail = (from: string, subject: string, messageId: string, body: string) =>
  mail(
    [
      `From: ${from}`,
      'To: alice@contoso.com',
      `Subject: ${subject}`,
      DEVICE_DATE,
      `Message-ID: <${messageId}>`,
    ],
    body,
  );

interface DeviceRow {
  /** What the device does: the test's name. */
  behaviour: string;
  seenWith: string;
  run(): Promise<void>;
}

const rows: DeviceRow[] = [
  {
    behaviour: 'HELO, never EHLO, then AUTH that was never advertised',
    seenWith: 'HP MFP M477dw, Synology DiskStation, FRITZ!Box',
    async run() {
      const { relay } = await setup();
      const scan = deviceMail('scanner@contoso.com', 'Scan from MFP', 'm477@npi', 'Scan attached.\r\n');
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO NPI8C1D2A'),
        S(`250 ${HOST} Hello NPI8C1D2A [127.0.0.1]`),
        C('AUTH LOGIN'),
        S('334 VXNlcm5hbWU6'),
        C(base64('scanner')),
        S('334 UGFzc3dvcmQ6'),
        C(base64('whatever the device has')),
        S('235 2.7.0 Authentication successful'),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
        C('QUIT'),
        S('221 2.0.0 Bye'),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('NPI8C1D2A', 'ESMTPA') + stored(scan),
      );
    },
  },
  {
    behaviour: 'HELO with no name at all, or a bare host name',
    seenWith: 'a UPS, a Danfoss drive, HP default host names',
    async run() {
      const { relay } = await setup();
      const ups = deviceMail('printer@contoso.com', 'On battery', 'ups1@ups', 'Power failure.\r\n');
      const hp = deviceMail('printer@contoso.com', 'Toner', 'hp1@hp', 'Toner low.\r\n');
      const [upsId] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO'),
        S(`250 ${HOST} Hello 127.0.0.1 [127.0.0.1]`),
        ...transaction('printer@contoso.com', 'alice@contoso.com', ups),
      ]);
      const [hpId] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO NPIF65E56'),
        S(`250 ${HOST} Hello NPIF65E56 [127.0.0.1]`),
        ...transaction('printer@contoso.com', 'alice@contoso.com', hp),
      ]);
      const envelope = { mailFrom: 'printer@contoso.com', ...TO_ALICE };
      await expectDelivered(upsId, envelope, received('127.0.0.1') + stored(ups));
      await expectDelivered(hpId, envelope, received('NPIF65E56') + stored(hp), 1);
    },
  },
  {
    behaviour: 'talks before the 220 greeting',
    seenWith: 'an IP camera (smtp-server answers it "421 You talk too soon")',
    async run() {
      const { relay } = await setup();
      const alert = deviceMail('scanner@contoso.com', 'Motion detected', 'cam1@cam', 'Camera 3: motion.\r\n');
      // EHLO goes out in the same tick as the connect, before any greeting can have arrived.
      const wire = Wire.early(relay.port, 'EHLO ipcam\r\n');
      const [id] = await replay(wire, [
        GREETING,
        S(new RegExp(`^250-${HOST} Hello ipcam \\[127\\.0\\.0\\.1\\]\\r\\n(250-.*\\r\\n)*250 HELP$`)),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', alert),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('ipcam') + stored(alert),
      );
    },
  },
  {
    behaviour: 'sends every command at once without waiting, without PIPELINING',
    seenWith: 'ESXi backup scripts (XSIBackup, ghettoVCB)',
    async run() {
      const { relay } = await setup();
      const report = deviceMail('raid@contoso.com', 'Backup OK', 'xsi@esxi', 'All 4 VMs backed up.\r\n');
      const wire = await Wire.plain(relay.port);
      // The whole session in one write, message and QUIT included, as soon as the greeting is in.
      const [id] = await replay(wire, [
        GREETING,
        RAW(
          'HELO esxi01\r\nMAIL FROM:<raid@contoso.com>\r\nRCPT TO:<alice@contoso.com>\r\nDATA\r\n' +
            `${report}.\r\nQUIT\r\n`,
        ),
        S(`250 ${HOST} Hello esxi01 [127.0.0.1]`),
        S('250 2.1.0 Ok'),
        S('250 2.1.5 Ok'),
        START_DATA,
        QUEUED,
        S('221 2.0.0 Bye'),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'raid@contoso.com', ...TO_ALICE },
        received('esxi01') + stored(report),
      );
    },
  },
  {
    behaviour: 'MAIL FROM and RCPT TO without angle brackets',
    seenWith: 'LSI MegaRAID, older clients',
    async run() {
      const { relay } = await setup();
      const event = deviceMail('raid@contoso.com', 'Controller event', 'lsi@raid', 'Drive 2 rebuilt.\r\n');
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO megaraid'),
        S(`250 ${HOST} Hello megaraid [127.0.0.1]`),
        C('MAIL FROM:raid@contoso.com'),
        S('250 2.1.0 Ok'),
        C('RCPT TO:alice@contoso.com'),
        S('250 2.1.5 Ok'),
        C('DATA'),
        START_DATA,
        RAW(event),
        C('.'),
        QUEUED,
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'raid@contoso.com', ...TO_ALICE },
        received('megaraid') + stored(event),
      );
    },
  },
  {
    behaviour: 'a space after the colon in MAIL FROM: <x@y>',
    seenWith: 'PHP mailers',
    async run() {
      const { relay } = await setup();
      const form = deviceMail('web@contoso.com', 'Contact form', 'php@web', 'Someone wrote in.\r\n');
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('EHLO web01'),
        S(/^250-/),
        C('MAIL FROM: <web@contoso.com>'),
        S('250 2.1.0 Ok'),
        C('RCPT TO: <alice@contoso.com>'),
        S('250 2.1.5 Ok'),
        C('DATA'),
        START_DATA,
        RAW(form),
        C('.'),
        QUEUED,
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'web@contoso.com', ...TO_ALICE },
        received('web01') + stored(form),
      );
    },
  },
  {
    behaviour: 'odd or unqualified senders (scanner, user.@dom) are mapped to a real address',
    seenWith: 'HPE iLO, many devices',
    async run() {
      // 127.0.0.2 has a sender of its own; 127.0.0.1 has none and falls back to the mailbox.
      const { relay } = await setup({
        allowedClients: ['127.0.0.1', '127.0.0.2'],
        sender: { mode: 'keep', byClient: { '127.0.0.2': 'printer@contoso.com' } },
      });
      const bare = deviceMail('scanner', 'Scan', 's1@mfp', 'Scan.\r\n');
      const [bareId] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO mfp'),
        S(`250 ${HOST} Hello mfp [127.0.0.1]`),
        ...transaction('scanner', 'alice@contoso.com', bare),
      ]);
      await expectDelivered(
        bareId,
        { mailFrom: MAILBOX, ...TO_ALICE },
        received('mfp') + stored(bare.replace('From: scanner', `From: "scanner" <${MAILBOX}>`)),
      );

      const ilo = deviceMail('iLO <user.@ilo-dom>', 'Fan failure', 'i1@ilo', 'Fan 3 failed.\r\n');
      const [iloId] = await replay(await Wire.plain(relay.port, '127.0.0.2'), [
        GREETING,
        C('HELO ilo'),
        S(`250 ${HOST} Hello ilo [127.0.0.2]`),
        ...transaction('user.@ilo-dom', 'alice@contoso.com', ilo),
      ]);
      await expectDelivered(
        iloId,
        { mailFrom: 'printer@contoso.com', ...TO_ALICE },
        received('ilo', 'ESMTP', '127.0.0.2') +
          stored(
            ilo.replace('From: iLO <user.@ilo-dom>', 'From: "iLO (user.@ilo-dom)" <printer@contoso.com>'),
          ),
        1,
      );
    },
  },
  {
    behaviour: 'bare LF line endings in the message are relayed as CRLF',
    seenWith: 'fax machines, printers and scanners (Microsoft 5.6.11), old PHP on Windows',
    async run() {
      const { relay } = await setup();
      const fax = [
        'From: printer@contoso.com',
        'To: alice@contoso.com',
        'Subject: Fax received',
        DEVICE_DATE,
        'Message-ID: <fax@lf>',
        '',
        'Page 1 of 1',
        'From +49 30 1234',
      ];
      // Bare LF inside the message; the end of DATA is still CRLF.CRLF, as SMTP libraries write it.
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO fax'),
        S(`250 ${HOST} Hello fax [127.0.0.1]`),
        ...transaction('printer@contoso.com', 'alice@contoso.com', `${fax.join('\n')}\r\n`),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'printer@contoso.com', ...TO_ALICE },
        received('fax') + fax.join('\r\n'),
      );
    },
  },
  {
    behaviour: 'ends DATA with <LF>.<LF>: not honoured, the message ends only at <CR><LF>.<CR><LF>',
    seenWith: 'CUPS mailto notifier (unsupported: SMTP smuggling)',
    async run() {
      const { relay, emulator } = await setup();
      const wire = await Wire.plain(relay.port);
      await replay(wire, [
        GREETING,
        C('HELO cups'),
        S(`250 ${HOST} Hello cups [127.0.0.1]`),
        C('MAIL FROM:<printer@contoso.com>'),
        S('250 2.1.0 Ok'),
        C('RCPT TO:<alice@contoso.com>'),
        S('250 2.1.5 Ok'),
        C('DATA'),
        START_DATA,
        // What a smuggler would hide behind <LF>.<LF>: a second transaction with a forged sender.
        RAW(
          'From: printer@contoso.com\nSubject: Job 42 done\n\nPrinted.\n.\n' +
            'MAIL FROM:<ceo@contoso.com>\nRCPT TO:<bob@contoso.com>\nDATA\nFrom: ceo@contoso.com\n\nPay it.\n.\n',
        ),
      ]);
      // CUPS now waits for a reply that does not come: to RelayDesk the message is still going on.
      await expect(wire.read(1500)).rejects.toThrow('no reply');
      const [id] = await replay(wire, [RAW('\r\n.\r\n'), QUEUED]);
      await expectDelivered(
        id,
        { mailFrom: 'printer@contoso.com', ...TO_ALICE },
        received('cups') +
          'From: printer@contoso.com\r\nSubject: Job 42 done\r\nDate: <NOW>\r\nMessage-ID: <<ID>@relay.test>\r\n\r\n' +
          'Printed.\r\n.\r\nMAIL FROM:<ceo@contoso.com>\r\nRCPT TO:<bob@contoso.com>\r\nDATA\r\nFrom: ceo@contoso.com\r\n\r\nPay it.\r\n.\r\n',
      );
      expect(emulator.messages).toHaveLength(1);
    },
  },
  {
    behaviour: 'insists on AUTH although trusted by IP, sends AUTH LOGIN <user> on one line, in lower case',
    seenWith: 'Minolta copiers, Veeam, .NET SmtpClient',
    async run() {
      const { relay } = await setup();
      const scan = deviceMail('scanner@contoso.com', 'bizhub scan', 'c1@bizhub', 'Scan.\r\n');
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('ehlo bizhub'),
        S(/\r\n250-AUTH PLAIN LOGIN\r\n/),
        C(`auth login ${base64('copier')}`),
        S('334 UGFzc3dvcmQ6'),
        C(base64('1234')),
        S('235 2.7.0 Authentication successful'),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('bizhub', 'ESMTPA') + stored(scan),
      );
    },
  },
  {
    behaviour: 'needs the exact 334 VXNlcm5hbWU6 ("Username:") and 334 UGFzc3dvcmQ6 ("Password:") prompts',
    seenWith: 'some Xerox units',
    async run() {
      const { relay } = await setup();
      const scan = deviceMail('scanner@contoso.com', 'Xerox scan', 'x1@xerox', 'Scan.\r\n');
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('EHLO xerox'),
        S(/^250-/),
        C('AUTH LOGIN'),
        S('334 VXNlcm5hbWU6'),
        C(base64('xerox')),
        S('334 UGFzc3dvcmQ6'),
        C(base64('xerox-password')),
        S('235 2.7.0 Authentication successful'),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
      ]);
      expect(Buffer.from('VXNlcm5hbWU6', 'base64').toString()).toBe('Username:');
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('xerox', 'ESMTPA') + stored(scan),
      );
    },
  },
  {
    behaviour:
      'picks the strongest mechanism offered (CRAM-MD5, NTLM) and fails: only PLAIN and LOGIN are offered',
    seenWith: 'Ricoh, others',
    async run() {
      const { relay } = await setup();
      const scan = deviceMail('scanner@contoso.com', 'Ricoh scan', 'r1@ricoh', 'Scan.\r\n');
      const wire = await Wire.plain(relay.port);
      await replay(wire, [GREETING, C('EHLO ricoh')]);
      const capabilities = await wire.read();
      expect(capabilities.split('\r\n').filter((line) => /AUTH/.test(line))).toEqual([
        '250-AUTH PLAIN LOGIN',
        '250-AUTH=PLAIN LOGIN',
      ]);
      const [id] = await replay(wire, [
        C('AUTH CRAM-MD5'),
        S('504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)'),
        C('AUTH NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA='),
        S('504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)'),
        C(`AUTH PLAIN ${base64('\0ricoh\0secret')}`),
        S('235 2.7.0 Authentication successful'),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('ricoh', 'ESMTPA') + stored(scan),
      );
    },
  },
  {
    behaviour:
      'speaks only TLS 1.0: LAN STARTTLS admits it with lanTls.allowLegacyTls, upstream stays TLS 1.2+',
    seenWith: 'HP LaserJet 200 M276n, older HP, Paradox IP150',
    async run() {
      const { relay } = await setup({ listen: { tls: 'starttls' }, lanTls: { allowLegacyTls: true } });
      const scan = deviceMail('scanner@contoso.com', 'M276n scan', 'l1@m276n', 'Scan.\r\n');
      const wire = await Wire.plain(relay.port);
      await replay(wire, [
        GREETING,
        C('EHLO NPI276N'),
        S(/\r\n250-STARTTLS\r\n/),
        C('STARTTLS'),
        S('220 2.0.0 Ready to start TLS'),
      ]);
      await wire.startTls({ minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' });
      expect(wire.protocol).toBe('TLSv1');
      const [id] = await replay(wire, [
        C('EHLO NPI276N'),
        S((reply: string) => !reply.includes('STARTTLS') && reply.startsWith('250-')),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
      ]);
      const message = await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('NPI276N', 'ESMTPS') + stored(scan),
      );
      expect(message.tlsProtocol).toMatch(/^TLSv1\.[23]$/);
    },
  },
  {
    behaviour: '"SSL" means implicit TLS: a TLS-from-the-first-byte listener (465 style)',
    seenWith: 'HP MFP M477dw',
    async run() {
      const implicitPort = await freePort();
      const { relay } = await setup({
        extraListeners: [{ host: '127.0.0.1', port: implicitPort, tls: 'implicit' }],
      });
      const scan = deviceMail('scanner@contoso.com', 'Scan over SSL', 'ssl@m477', 'Scan.\r\n');
      const wire = await Wire.implicitTls(implicitPort);
      expect(wire.protocol).toMatch(/^TLSv1\.[23]$/);
      const [id] = await replay(wire, [
        GREETING,
        C('EHLO NPI8C1D2A'),
        S((reply: string) => !reply.includes('STARTTLS') && reply.includes('250-AUTH PLAIN LOGIN')),
        C(`AUTH PLAIN ${base64('\0scanner\0pw')}`),
        S('235 2.7.0 Authentication successful'),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('NPI8C1D2A', 'ESMTPSA') + stored(scan),
      );
      expect(relay.port).not.toBe(implicitPort);
    },
  },
  {
    behaviour: 'no Date, no Message-ID, no From: added before relaying',
    seenWith: 'old laser printers',
    async run() {
      const { relay } = await setup();
      const bare = mail(['To: alice@contoso.com', 'Subject: Toner low'], 'Cartridge 12A is low.\r\n');
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO laserjet'),
        S(`250 ${HOST} Hello laserjet [127.0.0.1]`),
        ...transaction('printer@contoso.com', 'alice@contoso.com', bare),
      ]);
      await expectDelivered(
        id,
        { mailFrom: 'printer@contoso.com', ...TO_ALICE },
        received('laserjet') +
          'To: alice@contoso.com\r\nSubject: Toner low\r\nFrom: <printer@contoso.com>\r\nDate: <NOW>\r\n' +
          'Message-ID: <<ID>@relay.test>\r\n\r\nCartridge 12A is low.',
      );
    },
  },
  {
    behaviour: 'raw 8-bit bytes in headers and lines over 998 characters: encoded and re-wrapped',
    seenWith: 'generic mailers (device link uncertain)',
    async run() {
      const { relay } = await setup();
      // windows-1252 header text, as old Windows software writes it, and a report line of 1,200 characters.
      const report = Buffer.concat([
        Buffer.from('From: B\xfcro Scanner <scanner@contoso.com>\r\nTo: alice@contoso.com\r\n', 'latin1'),
        Buffer.from(`Subject: Scan vom B\xfcro\r\n${DEVICE_DATE}\r\nMessage-ID: <w1@win>\r\n\r\n`, 'latin1'),
        Buffer.from(`${'0123456789'.repeat(120)}\r\nEnd.\r\n`, 'latin1'),
      ]);
      const [id] = await replay(await Wire.plain(relay.port), [
        GREETING,
        C('HELO winapp'),
        S(`250 ${HOST} Hello winapp [127.0.0.1]`),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', report.toString('latin1')),
      ]);
      // Quoted-printable soft line breaks: the recipient's reader joins them back into the one line.
      const rewrapped = (
        report
          .toString('latin1')
          .match(/^\d{1200}$/m)![0]
          .match(/.{1,75}/g) ?? []
      ).join('=\r\n');
      const message = await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('winapp') +
          'From: =?UTF-8?B?QsO8cm8=?= Scanner <scanner@contoso.com>\r\nTo: alice@contoso.com\r\n' +
          `Subject: Scan vom =?UTF-8?B?QsO8cm8=?=\r\n${DEVICE_DATE}\r\nMessage-ID: <w1@win>\r\n` +
          'Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\n' +
          `${rewrapped}\r\nEnd.`,
      );
      expect(Buffer.from('QsO8cm8=', 'base64').toString('utf8')).toBe('B\u00fcro');
      expect(
        message.data
          .toString('latin1')
          .split('\r\n')
          .every((line) => line.length <= 998),
      ).toBe(true);
    },
  },
  {
    behaviour:
      'huge scans: SIZE is the upstream limit less room for added headers, a scan it would refuse gets 552',
    seenWith: 'every scanner',
    async run() {
      const upstreamLimit = 100_000;
      const advertised = upstreamLimit - 16 * 1024;
      const { relay, emulator } = await setup(
        { upstream: { maxMessageBytes: upstreamLimit } },
        { maxMessageBytes: upstreamLimit },
      );
      const scan = (bytes: number, subject: string) => {
        const head = `From: scanner@contoso.com\r\nTo: alice@contoso.com\r\nSubject: ${subject}\r\n${DEVICE_DATE}\r\nMessage-ID: <${subject}@mfp>\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
        const line = 'JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n';
        return head + line.repeat(Math.ceil((bytes - head.length) / line.length));
      };
      // Over what the mailbox takes: Microsoft would refuse it, so the device hears it now.
      const tooBig = scan(upstreamLimit + 500, 'big');
      const fits = scan(advertised - 1000, 'fits');
      const tooBigReply = `552 5.3.4 Message size exceeds fixed maximum message size of ${advertised} bytes (81 KB): scan fewer pages or at a lower resolution`;
      const wire = await Wire.plain(relay.port);
      const [id] = await replay(wire, [
        GREETING,
        C('EHLO mfp'),
        S(new RegExp(`\\r\\n250-SIZE ${advertised}\\r\\n`)),
        C(`MAIL FROM:<scanner@contoso.com> SIZE=${tooBig.length}`),
        S(tooBigReply),
        C('MAIL FROM:<scanner@contoso.com>'),
        S('250 2.1.0 Ok'),
        C('RCPT TO:<alice@contoso.com>'),
        S('250 2.1.5 Ok'),
        C('DATA'),
        START_DATA,
        RAW(tooBig),
        C('.'),
        S(tooBigReply),
        ...transaction('scanner@contoso.com', 'alice@contoso.com', fits),
      ]);
      const message = await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('mfp') + stored(fits),
      );
      expect(message.data.length).toBeLessThanOrEqual(upstreamLimit);
      expect(emulator.messages).toHaveLength(1);
    },
  },
  {
    behaviour: 'gives up when the upstream error comes back live: store and forward, 250 at once',
    seenWith: 'device behaviour reported, not verified',
    async run() {
      const { relay, emulator } = await setup({ queue: { minRetrySeconds: 2 } });
      emulator.script('message', '451 4.7.500 Server busy. Please try again later.', { times: 1 });
      const scan = deviceMail('scanner@contoso.com', 'Scan', 'sf@mfp', 'Scan.\r\n');
      const wire = await Wire.plain(relay.port);
      await replay(wire, [
        GREETING,
        C('HELO mfp'),
        S(`250 ${HOST} Hello mfp [127.0.0.1]`),
        C('MAIL FROM:<scanner@contoso.com>'),
        S('250 2.1.0 Ok'),
        C('RCPT TO:<alice@contoso.com>'),
        S('250 2.1.5 Ok'),
        C('DATA'),
        START_DATA,
        RAW(scan),
      ]);
      const sentAt = Date.now();
      const [id] = await replay(wire, [C('.'), QUEUED]);
      // The device has its answer before the upstream was even asked; Microsoft's 451 is RelayDesk's business.
      expect(Date.now() - sentAt).toBeLessThan(1000);
      const deferred = await relay.waitForLog((r) => r.event === 'deferred');
      expect(deferred).toMatchObject({
        queueId: id,
        reply: expect.stringContaining('451 4.7.500 Server busy'),
      });
      // While it waits, the spool holds the device's bytes exactly as they came.
      const queued = (await inspectSpool(join(relay.dataDir, 'spool'))).find((m) => m.envelope.id === id)!;
      const spooled = (await readFile(queued.file ?? join(relay.dataDir, 'spool', 'queue', `${id}.eml`)))
        .subarray(queued.bodyOffset, queued.bodyOffset + queued.size)
        .toString('latin1');
      expect(spooled.endsWith(scan)).toBe(true);
      await expectDelivered(
        id,
        { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
        received('mfp') + stored(scan),
      );
    },
  },
];

describe('device behaviours from device-quirks.md, each replayed against relaydesk serve', () => {
  for (const row of rows) {
    it(`${row.behaviour} (${row.seenWith})`, () => row.run());
  }
});

const PLAIN = (user: string, password: string) => `AUTH PLAIN ${base64(`\0${user}\0${password}`)}`;

/** Sends one AUTH command and says how long the answer took. */
async function timedAuth(wire: Wire, command: string): Promise<{ reply: string; ms: number }> {
  const started = Date.now();
  wire.write(`${command}\r\n`);
  const reply = await wire.read();
  return { reply, ms: Date.now() - started };
}

describe('LAN sign-in (lanAuth)', () => {
  it('check: `lan-user add` stores only a hash; that user relays from outside allowedClients, a wrong password gets 535 5.7.8 ever slower', async () => {
    const dir = teardown.dir(await tempDir());
    const configPath = join(dir, 'config.json');
    const port = await freePort();
    emulator = teardown.closing(
      await startExchangeEmulator({ password: UPSTREAM_PASSWORD, aliases: SEND_AS }),
    );
    const base = testConfig(port, emulator.port, testCa.file, { upstream: { heloName: HOST } });
    await writeFile(configPath, JSON.stringify(base));

    const added = await runCli(
      ['lan-user', 'add', 'laptop', '--config', configPath, '--data-dir', dir],
      {},
      'Tr0ub4dor&3 long\n',
    );
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toContain(`Added LAN user laptop in ${configPath}`);
    expect(added.stdout).toContain('lanAuth.mode is "ignore"');
    const saved = await readFile(configPath, 'utf8');
    expect(saved).not.toContain('Tr0ub4dor');
    const users = JSON.parse(saved).lanAuth.users as { user: string; passwordHash: string }[];
    expect(users).toEqual([
      { user: 'laptop', passwordHash: expect.stringMatching(/^scrypt\$32768\$8\$1\$/) },
    ]);

    const { relay } = await setup({ lanAuth: { mode: 'check', users } }, {}, dir);
    const scan = deviceMail('web@contoso.com', 'From the laptop', 'l@laptop', 'Hello.\r\n');
    const wire = await Wire.plain(relay.port, '127.0.0.2');
    await replay(wire, [
      GREETING,
      C('EHLO laptop'),
      S(/^250-/),
      C('MAIL FROM:<web@contoso.com>'),
      S(/^550 5\.7\.1 Client 127\.0\.0\.2 is not allowed to relay/),
    ]);
    const first = await timedAuth(wire, PLAIN('laptop', 'wrong'));
    const second = await timedAuth(wire, PLAIN('laptop', 'wrong again'));
    expect(first.reply).toBe('535 5.7.8 Authentication credentials invalid');
    expect(second.reply).toBe('535 5.7.8 Authentication credentials invalid');
    expect(first.ms).toBeGreaterThanOrEqual(450);
    expect(second.ms).toBeGreaterThanOrEqual(950);
    const [id] = await replay(wire, [
      C(PLAIN('laptop', 'Tr0ub4dor&3 long')),
      S('235 2.7.0 Authentication successful'),
      ...transaction('web@contoso.com', 'alice@contoso.com', scan),
    ]);
    await expectDelivered(
      id,
      { mailFrom: 'web@contoso.com', ...TO_ALICE },
      received('laptop', 'ESMTPA', '127.0.0.2') + stored(scan),
    );
    const failures = relay.logs.filter((r) => r.event === 'auth-failed');
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatchObject({ client: '127.0.0.2', user: 'laptop', mode: 'check' });
    expect(JSON.stringify(relay.logs)).not.toContain('wrong again');

    // A device on the allow-list still needs no password in check mode.
    const [trusted] = await replay(await Wire.plain(relay.port), [
      GREETING,
      C('HELO mfp'),
      S(`250 ${HOST} Hello mfp [127.0.0.1]`),
      ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
    ]);
    expect(trusted).toBeTruthy();
    await emulator.waitForMessages(2);
  });

  it('ignore: credentials from an allowed device always pass, from anyone else they never do', async () => {
    const { relay } = await setup({ allowedClients: ['127.0.0.1'] });
    await replay(await Wire.plain(relay.port), [
      GREETING,
      C('EHLO mfp'),
      S(/^250-/),
      C(PLAIN('anything', 'at all')),
      S('235 2.7.0 Authentication successful'),
    ]);
    await replay(await Wire.plain(relay.port, '127.0.0.2'), [
      GREETING,
      C('EHLO stranger'),
      S(/^250-/),
      C(PLAIN('anything', 'at all')),
      S('535 5.7.8 Authentication credentials invalid'),
      C('MAIL FROM:<web@contoso.com>'),
      S(/^550 5\.7\.1 /),
    ]);
  });
});

/** The certificate a TLS client saw, as its SHA-256 fingerprint. */
async function certificateOf(port: number): Promise<string> {
  const wire = await Wire.plain(port);
  await replay(wire, [
    GREETING,
    C('EHLO x'),
    S(/STARTTLS/),
    C('STARTTLS'),
    S('220 2.0.0 Ready to start TLS'),
  ]);
  await wire.startTls();
  const fingerprint = wire.peerCertificate!.fingerprint256;
  wire.close();
  return fingerprint;
}

describe('LAN TLS (lanTls)', () => {
  it('generates a certificate into the data folder on first run and keeps it across restarts', async () => {
    const dir = teardown.dir(await tempDir());
    const first = await setup({ listen: { tls: 'starttls' } }, {}, dir);
    const generated = await first.relay.waitForLog((r) => r.event === 'lan-tls');
    expect(generated).toMatchObject({ generated: true, certFile: join(dir, 'tls', 'cert.pem') });
    const seen = await certificateOf(first.relay.port);
    expect(seen).toBe(generated.fingerprint);
    expect((await stat(join(dir, 'tls', 'key.pem'))).mode & 0o777).toBe(0o600);
    await first.relay.stop();

    const second = await setup({ listen: { tls: 'starttls' } }, {}, dir);
    expect(await second.relay.waitForLog((r) => r.event === 'lan-tls')).toMatchObject({ generated: false });
    expect(await certificateOf(second.relay.port)).toBe(seen);
  });

  it("uses the admin's certificate, which a client that trusts its CA verifies", async () => {
    const implicitPort = await freePort();
    await setup({
      extraListeners: [{ host: '127.0.0.1', port: implicitPort, tls: 'implicit' }],
      lanTls: { certFile: serverCertificate.cert.file, keyFile: serverCertificate.key.file },
    });
    const wire = await Wire.implicitTls(implicitPort, {
      ca: testCa.pem,
      servername: 'localhost',
      rejectUnauthorized: true,
    });
    expect(wire.peerCertificate!.subject.CN).toBe('localhost');
    await replay(wire, [GREETING, C('QUIT'), S('221 2.0.0 Bye')]);
  });

  it('refuses TLS 1.0 unless allowLegacyTls is set, and says in the log which setting a device needs', async () => {
    const { relay } = await setup({ listen: { tls: 'starttls' } });
    const wire = await Wire.plain(relay.port);
    await replay(wire, [
      GREETING,
      C('EHLO old'),
      S(/STARTTLS/),
      C('STARTTLS'),
      S('220 2.0.0 Ready to start TLS'),
    ]);
    await expect(
      wire.startTls({ minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }),
    ).rejects.toThrow();
    const failed = await relay.waitForLog((r) => r.event === 'tls-failed');
    expect(failed).toMatchObject({
      client: '127.0.0.1',
      fix: expect.stringContaining('lanTls.allowLegacyTls'),
    });

    const modern = await Wire.plain(relay.port);
    await replay(modern, [
      GREETING,
      C('EHLO new'),
      S(/STARTTLS/),
      C('STARTTLS'),
      S('220 2.0.0 Ready to start TLS'),
    ]);
    await modern.startTls();
    expect(modern.protocol).toMatch(/^TLSv1\.[23]$/);
  });

  it('forgets an AUTH given before STARTTLS (RFC 3207 §4.2): the message is not marked authenticated, AUTH is open again', async () => {
    const { relay } = await setup({ listen: { tls: 'starttls' } });
    const wire = await Wire.plain(relay.port);
    await replay(wire, [
      GREETING,
      C('EHLO mfp'),
      S(/STARTTLS/),
      C(PLAIN('scanner', 'in clear text')),
      S('235 2.7.0 Authentication successful'),
      C('STARTTLS'),
      S('220 2.0.0 Ready to start TLS'),
    ]);
    await wire.startTls();
    const scan = deviceMail('scanner@contoso.com', 'After TLS', 't@mfp', 'Scanned.\r\n');
    const [id] = await replay(wire, [
      C('EHLO mfp'),
      S(/^250-/),
      ...transaction('scanner@contoso.com', 'alice@contoso.com', scan),
      C(PLAIN('scanner', 'inside TLS')),
      S('235 2.7.0 Authentication successful'),
    ]);
    await expectDelivered(
      id,
      { mailFrom: 'scanner@contoso.com', ...TO_ALICE },
      received('mfp', 'ESMTPS') + stored(scan),
    );
  });
});

describe('several listeners from one config', () => {
  it('serves plain, STARTTLS and implicit TLS side by side, each relaying', async () => {
    const [starttlsPort, implicitPort] = [await freePort(), await freePort()];
    const { relay } = await setup({
      extraListeners: [
        { host: '127.0.0.1', port: starttlsPort, tls: 'starttls' },
        { host: '127.0.0.1', port: implicitPort, tls: 'implicit' },
      ],
    });
    const scan = (n: number) =>
      mail(
        [
          'From: scanner@contoso.com',
          'To: alice@contoso.com',
          `Subject: Listener ${n}`,
          DEVICE_DATE,
          `Message-ID: <l${n}@mfp>`,
        ],
        'Scan.\r\n',
      );

    const plain = await Wire.plain(relay.port);
    const [plainId] = await replay(plain, [
      GREETING,
      C('EHLO plain'),
      S((reply: string) => !reply.includes('STARTTLS')),
      C('STARTTLS'),
      S('502 5.5.1 STARTTLS not available'),
      ...transaction('scanner@contoso.com', 'alice@contoso.com', scan(1)),
    ]);

    const upgraded = await Wire.plain(starttlsPort);
    await replay(upgraded, [
      GREETING,
      C('EHLO upgraded'),
      S(/\r\n250-STARTTLS\r\n/),
      C('STARTTLS'),
      S('220 2.0.0 Ready to start TLS'),
    ]);
    await upgraded.startTls();
    const [starttlsId] = await replay(upgraded, [
      C('EHLO upgraded'),
      S(/^250-/),
      ...transaction('scanner@contoso.com', 'alice@contoso.com', scan(2)),
    ]);

    const implicit = await Wire.implicitTls(implicitPort);
    const [implicitId] = await replay(implicit, [
      GREETING,
      C('EHLO implicit'),
      S(/^250-/),
      ...transaction('scanner@contoso.com', 'alice@contoso.com', scan(3)),
    ]);

    const envelope = { mailFrom: 'scanner@contoso.com', ...TO_ALICE };
    const messages = await emulator!.waitForMessages(3);
    const bySubject = (n: number) => messages.findIndex((m) => m.data.includes(`Subject: Listener ${n}`));
    await expectDelivered(plainId, envelope, received('plain') + stored(scan(1)), bySubject(1));
    await expectDelivered(
      starttlsId,
      envelope,
      received('upgraded', 'ESMTPS') + stored(scan(2)),
      bySubject(2),
    );
    await expectDelivered(
      implicitId,
      envelope,
      received('implicit', 'ESMTPS') + stored(scan(3)),
      bySubject(3),
    );

    const status = JSON.parse((await relay.cli(['status', '--json'])).stdout);
    expect(status.listeners).toEqual([
      { host: '127.0.0.1', port: relay.port, tls: 'none' },
      { host: '127.0.0.1', port: starttlsPort, tls: 'starttls' },
      { host: '127.0.0.1', port: implicitPort, tls: 'implicit' },
    ]);
  });
});
