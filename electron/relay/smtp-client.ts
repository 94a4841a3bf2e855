/**
 * The upstream SMTP client: submission to smtp.office365.com:587 and other smart hosts, on plain
 * `net`/`tls`. Every failure is an UpstreamError naming the stage it happened at, so that the
 * diagnosis table can tell a wrong password from a refused certificate from a full mailbox.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { ReplyReader, ReplySyntaxError, parseReply } from './smtp-reply.ts';
import { noteStreamed } from './spent-buffers.ts';
import { UpstreamError } from './upstream-failure.ts';
import type { SmtpReply, SmtpStage } from './upstream-failure.ts';

export type UpstreamAuthMethod =
  | { method: 'password'; user: string; password: string }
  | { method: 'xoauth2'; user: string; accessToken: string }
  | null;

export interface SmtpStep {
  stage: SmtpStage;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface SmtpClientOptions {
  host: string;
  port: number;
  security: 'starttls' | 'tls' | 'none';
  /** Extra trusted CA (PEM), added to Node's default roots, never replacing the checks. */
  ca?: string | Buffer | null;
  /** SNI and the name the certificate must carry; defaults to host. */
  servername?: string;
  heloName: string;
  /** Per reply: a stall becomes a network failure `ETIMEDOUT` at the current stage. */
  timeoutMs: number;
  /** TCP connect plus, for implicit TLS, the handshake; defaults to timeoutMs. */
  connectTimeoutMs?: number;
  auth: UpstreamAuthMethod;
  localAddress?: string;
  /** connect, greeting, ehlo, starttls, auth: one call each, success or failure. Never carries a secret. */
  onStep?: (step: SmtpStep) => void;
  /** The transcript, AUTH payloads already replaced by `<redacted>`. */
  onLine?: (direction: 'in' | 'out', line: string) => void;
}

export interface SmtpCapabilities {
  /** RFC 1870: the advertised limit, 0 when SIZE is advertised without a fixed one, null when not advertised. */
  size: number | null;
  pipelining: boolean;
  starttls: boolean;
  eightBitMime: boolean;
  smtpUtf8: boolean;
  enhancedStatusCodes: boolean;
  /** Upper-case SASL mechanism names. */
  auth: string[];
}

export interface RecipientResult {
  address: string;
  reply: SmtpReply;
  accepted: boolean;
}

export interface SendResult {
  recipients: RecipientResult[];
  /** The final reply after DATA, null when no recipient was accepted. */
  dataReply: SmtpReply | null;
}

export interface Envelope {
  /** The reverse path; '' for the null sender `<>`. */
  mailFrom: string;
  rcptTo: string[];
  /** Declared size (RFC 1870), sent when the server advertises SIZE. */
  size?: number;
  smtpUtf8?: boolean;
  eightBit?: boolean;
}

export interface SmtpConnection {
  readonly capabilities: SmtpCapabilities;
  readonly tlsProtocol: string | null;
  readonly closed: boolean;
  /**
   * MAIL FROM, RCPT TO each, DATA, message, final reply. Pipelines MAIL and the RCPTs when PIPELINING
   * is advertised. An error reply to MAIL rejects with stage 'mail', to DATA with 'data', after the
   * message with 'message'; per-recipient errors are returned in recipients (accepted: false). When no
   * recipient is accepted, it RSETs and resolves with dataReply null. Network and timeout errors
   * reject with kind 'network' and leave the connection closed. When the message stream fails, the
   * connection is closed (a truncated message must never be completed) and its error is rethrown.
   */
  send(envelope: Envelope, message: Readable | Buffer): Promise<SendResult>;
  /** RSET. */
  reset(): Promise<void>;
  /** QUIT, then close; never throws. */
  quit(): Promise<void>;
  /** Destroys the connection at once. */
  close(): void;
  /** Called once when the connection closes, for whatever reason. */
  onClose(listener: () => void): void;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_BYTE = Buffer.from('.');
const END_OF_DATA = Buffer.from('.\r\n');
const BUFFER_SLICE = 64 * 1024;

/**
 * The DATA encoder: every bare LF and bare CR becomes CRLF, every line beginning with '.' gets a second
 * one (RFC 5321 §4.5.2), and the end is CRLF.CRLF. So no `<LF>.<LF>`, `<CR>.<CR>` or `<LF>.<CR><LF>`
 * inside a message can end the DATA early at a server that is lenient about line ends (SMTP
 * smuggling), and Exchange Online gets the CRLF-only mail it requires (bare LF bounces with 5.6.11).
 * Chunk boundaries may fall anywhere, even between the CR and LF of a line end.
 */
export class DataEncoder {
  #atLineStart = true;
  /** A CR at the end of a chunk: whether it is bare or half of a CRLF depends on the next chunk. */
  #pendingCr = false;

  /** The encoded form of `chunk` (the chunk itself when nothing in it needs changing). */
  encode(chunk: Buffer): Buffer {
    const pieces: Buffer[] = [];
    let segmentStart = 0;
    let i = 0;
    if (this.#pendingCr && chunk.length > 0) {
      this.#pendingCr = false;
      pieces.push(CRLF);
      this.#atLineStart = true;
      if (chunk[0] === LF) {
        i = 1;
        segmentStart = 1;
      }
    }
    // Where the next CR and LF are (-1: none left), found natively and looked for again only once passed.
    let nextCr = chunk.indexOf(CR, i);
    let nextLf = chunk.indexOf(LF, i);
    while (i < chunk.length) {
      if (this.#atLineStart) {
        this.#atLineStart = false;
        if (chunk[i] === DOT) {
          pieces.push(chunk.subarray(segmentStart, i), DOT_BYTE);
          segmentStart = i;
        }
      }
      // The rest of the line is copied as it is.
      if (nextCr >= 0 && nextCr < i) nextCr = chunk.indexOf(CR, i);
      if (nextLf >= 0 && nextLf < i) nextLf = chunk.indexOf(LF, i);
      const end = nextCr < 0 ? nextLf : nextLf < 0 ? nextCr : Math.min(nextCr, nextLf);
      if (end < 0) break;
      if (chunk[end] === CR && end + 1 === chunk.length) {
        // CR as the last byte: bare or half of a CRLF, the next chunk tells.
        pieces.push(chunk.subarray(segmentStart, end));
        segmentStart = chunk.length;
        this.#pendingCr = true;
        break;
      }
      this.#atLineStart = true;
      if (chunk[end] === CR && chunk[end + 1] === LF) {
        i = end + 2; // A proper CRLF stays in the segment.
        continue;
      }
      // A bare CR or bare LF becomes CRLF.
      pieces.push(chunk.subarray(segmentStart, end), CRLF);
      i = end + 1;
      segmentStart = i;
    }
    if (pieces.length === 0) return chunk;
    pieces.push(chunk.subarray(segmentStart));
    return Buffer.concat(pieces);
  }

  /** The end of the data: a line end if the message lacks a final one, then `.` CRLF. */
  end(): Buffer {
    const unfinished = this.#pendingCr || !this.#atLineStart;
    return unfinished ? Buffer.concat([CRLF, END_OF_DATA]) : END_OF_DATA;
  }
}

function* bufferSlices(buffer: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < buffer.length; offset += BUFFER_SLICE) {
    yield buffer.subarray(offset, offset + BUFFER_SLICE);
  }
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (also written `[::1]` or IPv4-mapped `::ffff:127.0.0.1`), and the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const address = host.replace(/^\[(.*)\]$/, '$1');
  if (address.toLowerCase() === 'localhost') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) return LOOPBACK.check(mapped, 'ipv4');
  if (net.isIPv4(address)) return LOOPBACK.check(address, 'ipv4');
  return net.isIPv6(address) && LOOPBACK.check(address, 'ipv6');
}

/**
 * Credentials never cross an unencrypted connection, except to loopback (a local test server or a
 * local filter). Checked before connecting against the configured host and again before AUTH against
 * the address actually connected to, so `localhost` cannot resolve its way past it.
 */
export function assertAuthAllowed(host: string, encrypted: boolean): void {
  if (encrypted || isLoopbackHost(host)) return;
  throw new UpstreamError({
    kind: 'config',
    code: 'INSECURE_AUTH',
    message: `refusing to send credentials to ${host} over an unencrypted connection; use STARTTLS or TLS`,
  });
}

const NO_CAPABILITIES: SmtpCapabilities = {
  size: null,
  pipelining: false,
  starttls: false,
  eightBitMime: false,
  smtpUtf8: false,
  enhancedStatusCodes: false,
  auth: [],
};

/** The EHLO reply's lines after the first (RFC 5321 §4.1.1.1), keywords case-insensitive. */
function parseCapabilities(reply: SmtpReply): SmtpCapabilities {
  const capabilities: SmtpCapabilities = { ...NO_CAPABILITIES, auth: [] };
  for (const line of reply.raw.split('\r\n').slice(1)) {
    const [keyword = '', ...params] = line.slice(4).trim().split(/\s+/);
    // `AUTH=LOGIN PLAIN` is the pre-RFC 2554 form some servers still send beside `AUTH`.
    const [name = '', inlineParam] = keyword.toUpperCase().split('=', 2);
    if (inlineParam) params.unshift(inlineParam);
    switch (name) {
      case 'SIZE': {
        const limit = Number(params[0] ?? 0);
        capabilities.size = Number.isSafeInteger(limit) && limit > 0 ? limit : 0;
        break;
      }
      case 'PIPELINING':
        capabilities.pipelining = true;
        break;
      case 'STARTTLS':
        capabilities.starttls = true;
        break;
      case '8BITMIME':
        capabilities.eightBitMime = true;
        break;
      case 'SMTPUTF8':
        capabilities.smtpUtf8 = true;
        break;
      case 'ENHANCEDSTATUSCODES':
        capabilities.enhancedStatusCodes = true;
        break;
      case 'AUTH':
        for (const mechanism of params.map((param) => param.toUpperCase())) {
          if (!capabilities.auth.includes(mechanism)) capabilities.auth.push(mechanism);
        }
        break;
    }
  }
  return capabilities;
}

function isPositive(reply: SmtpReply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

function replyError(stage: SmtpStage, reply: SmtpReply): UpstreamError {
  return new UpstreamError({ kind: 'reply', stage, reply });
}

function networkError(stage: SmtpStage, code: string, message: string): UpstreamError {
  return new UpstreamError({ kind: 'network', stage, code, message });
}

function oneLine(reply: SmtpReply): string {
  return reply.raw.replace(/\r\n/g, ' | ');
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function assertNoLineBreak(what: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new TypeError(`${what} contains a line break`);
}

/** Errors Node raises for the TCP connection even while a TLS handshake is running over it. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT']);

function distinguishedName(name: tls.Certificate | undefined): string {
  if (!name) return 'unknown';
  if (name.CN) return `CN=${String(name.CN)}`;
  if (name.O) return `O=${String(name.O)}`;
  return 'unknown';
}

/** `TLSv1.3 TLS_AES_256_GCM_SHA384, certificate CN=... issued by CN=..., valid until 2026-01-10` */
function describeTls(socket: tls.TLSSocket): string {
  const cipher = socket.getCipher();
  const certificate = socket.getPeerCertificate();
  const validTo = new Date(certificate.valid_to);
  const until = Number.isNaN(validTo.getTime()) ? certificate.valid_to : validTo.toISOString().slice(0, 10);
  return (
    `${socket.getProtocol() ?? 'TLS'} ${cipher.standardName ?? cipher.name}, ` +
    `certificate ${distinguishedName(certificate.subject)} issued by ${distinguishedName(certificate.issuer)}, ` +
    `valid until ${until}`
  );
}

class Connection implements SmtpConnection {
  readonly #options: SmtpClientOptions;
  #socket: net.Socket | null = null;
  readonly #sockets: net.Socket[] = [];
  #reader = new ReplyReader();
  readonly #replies: SmtpReply[] = [];
  readonly #waiters: ((reply: SmtpReply) => void)[] = [];
  #capabilities: SmtpCapabilities = NO_CAPABILITIES;
  #tlsSocket: tls.TLSSocket | null = null;
  #stage: SmtpStage = 'connect';
  #closed = false;
  /** Why the connection closed; what an operation in flight at that moment rejects with. */
  #failure: UpstreamError | null = null;
  readonly #closeListeners: (() => void)[] = [];
  #timer: NodeJS.Timeout | null = null;
  #lock: Promise<unknown> = Promise.resolve();
  /**
   * The waits in progress, rejected together when the connection fails. One entry per wait, removed
   * when it settles: racing every reply against one connection-long promise would keep every
   * settled wait reachable for as long as a pooled connection lives (a leak under steady load).
   */
  readonly #pendingRejects = new Set<(error: UpstreamError) => void>();

  constructor(options: SmtpClientOptions) {
    this.#options = options;
  }

  get capabilities(): SmtpCapabilities {
    return this.#capabilities;
  }

  get tlsProtocol(): string | null {
    return this.#tlsSocket?.getProtocol() ?? null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  onClose(listener: () => void): void {
    if (this.#closed) queueMicrotask(listener);
    else this.#closeListeners.push(listener);
  }

  close(): void {
    this.#teardown(networkError(this.#stage, 'ENOTCONN', 'connection closed by RelayDesk'));
  }

  async open(): Promise<void> {
    const { security, auth } = this.#options;
    await this.#step('connect', () => this.#connect());
    await this.#step('greeting', async () => {
      const greeting = await this.#readReply();
      if (!isPositive(greeting)) throw replyError('greeting', greeting);
      return oneLine(greeting);
    });
    await this.#step('ehlo', () => this.#ehlo());
    if (security === 'starttls') {
      await this.#step('starttls', () => this.#startTls());
      await this.#step('ehlo', () => this.#ehlo());
    }
    if (auth) await this.#step('auth', () => this.#authenticate(auth));
  }

  send(envelope: Envelope, message: Readable | Buffer): Promise<SendResult> {
    return this.#exclusive(() => this.#send(envelope, message));
  }

  reset(): Promise<void> {
    return this.#exclusive(async () => {
      const reply = await this.#command('rset', 'RSET');
      if (!isPositive(reply)) throw replyError('rset', reply);
    });
  }

  quit(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#closed) return;
      try {
        await this.#command('quit', 'QUIT');
      } catch {
        // The server hanging up or staying silent instead of answering QUIT changes nothing: we close.
      }
      this.#teardown(networkError('quit', 'ENOTCONN', 'connection closed after QUIT'));
    });
  }

  /** One operation at a time: replies are matched to commands by order alone. */
  #exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#lock.then(operation);
    this.#lock = result.catch(() => undefined);
    return result;
  }

  async #step(stage: SmtpStage, run: () => Promise<string>): Promise<void> {
    this.#stage = stage;
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);
    let detail: string;
    try {
      detail = await run();
    } catch (error) {
      this.#options.onStep?.({ stage, ok: false, ms: elapsed(), detail: (error as Error).message });
      throw error;
    }
    this.#options.onStep?.({ stage, ok: true, ms: elapsed(), detail });
  }

  async #connect(): Promise<string> {
    const { host, port, localAddress, security } = this.#options;
    // No Nagle: a command written right after the previous one's reply would otherwise wait for
    // the peer's delayed ACK (up to 40 ms on Linux) before it leaves.
    const tcp: net.TcpNetConnectOpts = { host, port, localAddress };
    // tls.connect hands host, port and localAddress on to net.connect (its typings omit localAddress).
    const socket = security === 'tls' ? tls.connect({ ...tcp, ...this.#tlsOptions() }) : net.connect(tcp);
    socket.setNoDelay(true);
    this.#attach(socket);
    if (socket instanceof tls.TLSSocket) this.#tlsSocket = socket;
    const connected = new Promise<void>((resolve) =>
      socket.once(security === 'tls' ? 'secureConnect' : 'connect', () => resolve()),
    );
    await this.#await(connected, this.#options.connectTimeoutMs ?? this.#options.timeoutMs);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    return socket instanceof tls.TLSSocket ? `${peer}, ${describeTls(socket)}` : peer;
  }

  #tlsOptions(): tls.ConnectionOptions {
    const { host, servername, ca } = this.#options;
    return {
      // RFC 6066 §3: SNI carries host names only; an IP literal is checked against the certificate's IP SANs.
      servername: servername ?? (net.isIP(host) ? undefined : host),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ca: ca ? [...tls.rootCertificates, ca] : undefined,
    };
  }

  #attach(socket: net.Socket): void {
    this.#socket = socket;
    this.#sockets.push(socket);
    socket.on('data', this.#onData);
    // Kept for the socket's whole life: an error after completion must not become an uncaught 'error'.
    socket.on('error', (error: NodeJS.ErrnoException) => this.#teardown(this.#mapError(error)));
    socket.on('close', () =>
      this.#teardown(networkError(this.#stage, 'ECONNRESET', 'connection closed by the server')),
    );
  }

  #mapError(error: NodeJS.ErrnoException): UpstreamError {
    const code = error.code ?? 'ECONNRESET';
    if (this.#tlsSocket && error.syscall === undefined && !NETWORK_CODES.has(code)) {
      return new UpstreamError({ kind: 'tls', stage: this.#stage, code, message: error.message });
    }
    return networkError(this.#stage, code, error.message);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#timer?.refresh();
    let replies: string[][];
    try {
      replies = this.#reader.push(chunk);
    } catch (error) {
      if (!(error instanceof ReplySyntaxError)) throw error;
      this.#teardown(networkError(this.#stage, 'EPROTO', error.message));
      return;
    }
    for (const lines of replies) {
      for (const line of lines) this.#options.onLine?.('in', line);
      const reply = parseReply(lines);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(reply);
      else this.#replies.push(reply);
    }
  };

  /** Closes everything once; whatever is in flight rejects with `failure`. */
  #teardown(failure: UpstreamError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failure = failure;
    for (const reject of this.#pendingRejects) reject(failure);
    this.#pendingRejects.clear();
    this.#waiters.length = 0;
    this.#clearTimer();
    for (const socket of this.#sockets) socket.destroy();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * Waits for the server, failing with ETIMEDOUT when it stays silent (or stops reading) for
   * `timeoutMs`; received bytes and completed writes restart the clock.
   */
  async #await<T>(promise: Promise<T>, timeoutMs = this.#options.timeoutMs): Promise<T> {
    if (this.#closed) throw networkError(this.#stage, 'ENOTCONN', 'connection is closed');
    this.#timer = setTimeout(() => {
      const what = this.#stage === 'connect' ? 'could not connect' : 'no reply from the server';
      this.#teardown(networkError(this.#stage, 'ETIMEDOUT', `${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    let reject: (error: UpstreamError) => void = () => undefined;
    const failed = new Promise<never>((_resolve, rejectWait) => {
      reject = rejectWait;
    });
    this.#pendingRejects.add(reject);
    try {
      return await Promise.race([promise, failed]);
    } finally {
      this.#pendingRejects.delete(reject);
      this.#clearTimer();
    }
  }

  #readReply(): Promise<SmtpReply> {
    const buffered = this.#replies.shift();
    if (buffered) return this.#await(Promise.resolve(buffered));
    return this.#await(new Promise<SmtpReply>((resolve) => this.#waiters.push(resolve)));
  }

  /** Writes command lines in one write; `logged` is what the transcript shows instead (secrets redacted). */
  #write(lines: string[], logged: string[] = lines): void {
    if (this.#closed || !this.#socket) throw networkError(this.#stage, 'ENOTCONN', 'connection is closed');
    for (const line of logged) this.#options.onLine?.('out', line);
    this.#socket.write(lines.map((line) => `${line}\r\n`).join(''));
  }

  async #command(stage: SmtpStage, line: string, logged = line): Promise<SmtpReply> {
    this.#stage = stage;
    this.#write([line], [logged]);
    return this.#readReply();
  }

  async #ehlo(): Promise<string> {
    const { heloName } = this.#options;
    const ehlo = await this.#command('ehlo', `EHLO ${heloName}`);
    if (isPositive(ehlo)) {
      this.#capabilities = parseCapabilities(ehlo);
      return (
        ehlo.raw
          .split('\r\n')
          .slice(1)
          .map((line) => line.slice(4))
          .join(', ') || 'no extensions'
      );
    }
    // RFC 5321 §3.2: a server that does not know EHLO answers 5xx; HELO still works, without extensions.
    if (ehlo.code < 500) throw replyError('ehlo', ehlo);
    const helo = await this.#command('ehlo', `HELO ${heloName}`);
    if (!isPositive(helo)) throw replyError('ehlo', helo);
    this.#capabilities = NO_CAPABILITIES;
    return `HELO (EHLO refused: ${oneLine(ehlo)})`;
  }

  async #startTls(): Promise<string> {
    if (!this.#capabilities.starttls) {
      throw new UpstreamError({
        kind: 'tls',
        stage: 'starttls',
        code: 'STARTTLS_NOT_OFFERED',
        message: `${this.#options.host} does not offer STARTTLS`,
      });
    }
    const reply = await this.#command('starttls', 'STARTTLS');
    if (reply.code !== 220) throw replyError('starttls', reply);
    // Anything sent before the handshake would be read as if it came over TLS (CVE-2011-0411).
    if (this.#replies.length > 0 || !this.#reader.idle) {
      throw networkError('starttls', 'EPROTO', 'the server sent data after its STARTTLS reply');
    }
    const plain = this.#socket;
    if (!plain) throw networkError('starttls', 'ENOTCONN', 'connection is closed');
    plain.off('data', this.#onData);
    this.#reader = new ReplyReader();
    const secure = tls.connect({ socket: plain, host: this.#options.host, ...this.#tlsOptions() });
    this.#tlsSocket = secure;
    this.#attach(secure);
    await this.#await(new Promise<void>((resolve) => secure.once('secureConnect', () => resolve())));
    return describeTls(secure);
  }

  async #authenticate(auth: NonNullable<UpstreamAuthMethod>): Promise<string> {
    assertAuthAllowed(this.#socket?.remoteAddress ?? this.#options.host, this.#tlsSocket !== null);
    if (auth.method === 'xoauth2') {
      const initial = base64(`user=${auth.user}\x01auth=Bearer ${auth.accessToken}\x01\x01`);
      let reply = await this.#command('auth', `AUTH XOAUTH2 ${initial}`, 'AUTH XOAUTH2 <redacted>');
      // The 334 carries a base64 JSON error; the client answers with an empty line to get the final reply.
      if (reply.code === 334) reply = await this.#command('auth', '');
      if (!isPositive(reply)) throw replyError('auth', reply);
      return 'XOAUTH2';
    }
    if (this.#capabilities.auth.includes('PLAIN')) {
      const credentials = base64(`\0${auth.user}\0${auth.password}`);
      const reply = await this.#command('auth', `AUTH PLAIN ${credentials}`, 'AUTH PLAIN <redacted>');
      if (!isPositive(reply)) throw replyError('auth', reply);
      return 'PLAIN';
    }
    // Also when AUTH is not advertised at all: some servers (and HELO-only ones) take LOGIN regardless.
    const steps: [string, string][] = [
      ['AUTH LOGIN', 'AUTH LOGIN'],
      [base64(auth.user), '<redacted>'],
      [base64(auth.password), '<redacted>'],
    ];
    for (const [index, [line, logged]] of steps.entries()) {
      const reply = await this.#command('auth', line, logged);
      const last = index === steps.length - 1;
      if (last ? !isPositive(reply) : reply.code !== 334) throw replyError('auth', reply);
    }
    return 'LOGIN';
  }

  async #send(envelope: Envelope, message: Readable | Buffer): Promise<SendResult> {
    if (this.#closed) throw networkError('mail', 'ENOTCONN', 'connection is closed');
    assertNoLineBreak('envelope sender', envelope.mailFrom);
    for (const address of envelope.rcptTo) assertNoLineBreak('envelope recipient', address);
    const capabilities = this.#capabilities;
    const mailParams: string[] = [];
    if (envelope.size !== undefined && capabilities.size !== null) mailParams.push(`SIZE=${envelope.size}`);
    if (envelope.eightBit && capabilities.eightBitMime) mailParams.push('BODY=8BITMIME');
    if (envelope.smtpUtf8) {
      // RFC 6531 §3.4: an address needing SMTPUTF8 must not go to a server that lacks it.
      if (!capabilities.smtpUtf8) {
        throw new UpstreamError({
          kind: 'config',
          code: 'SMTPUTF8_NOT_OFFERED',
          message: `${this.#options.host} does not offer SMTPUTF8, which this message's addresses need`,
        });
      }
      mailParams.push('SMTPUTF8');
    }
    const mailCommand = [`MAIL FROM:<${envelope.mailFrom}>`, ...mailParams].join(' ');
    const rcptCommands = envelope.rcptTo.map((address) => `RCPT TO:<${address}>`);

    this.#stage = 'mail';
    this.#write(capabilities.pipelining ? [mailCommand, ...rcptCommands] : [mailCommand]);
    const mailReply = await this.#readReply();
    const recipients: RecipientResult[] = [];
    if (capabilities.pipelining || isPositive(mailReply)) {
      for (const [index, address] of envelope.rcptTo.entries()) {
        this.#stage = 'rcpt';
        const rcptCommand = rcptCommands[index];
        if (!capabilities.pipelining && rcptCommand !== undefined) this.#write([rcptCommand]);
        // With PIPELINING the RCPT replies arrive even after a refused MAIL, and must be read to stay in step.
        const reply = await this.#readReply();
        recipients.push({ address, reply, accepted: isPositive(reply) });
      }
    }
    if (!isPositive(mailReply)) throw replyError('mail', mailReply);

    if (!recipients.some((recipient) => recipient.accepted)) {
      const reply = await this.#command('rset', 'RSET');
      if (!isPositive(reply)) throw replyError('rset', reply);
      return { recipients, dataReply: null };
    }

    const dataReply = await this.#command('data', 'DATA');
    if (dataReply.code !== 354) {
      await this.#resetAfterRefusal();
      throw replyError('data', dataReply);
    }

    this.#stage = 'message';
    await this.#streamMessage(message);
    const finalReply = await this.#readReply();
    if (!isPositive(finalReply)) throw replyError('message', finalReply);
    return { recipients, dataReply: finalReply };
  }

  /** After a refused DATA the server still holds the transaction; clear it so the next send starts clean. */
  async #resetAfterRefusal(): Promise<void> {
    try {
      await this.#command('rset', 'RSET');
    } catch {
      // The refusal is what the caller needs to hear; a broken connection already shows in `closed`.
    }
  }

  async #streamMessage(message: Readable | Buffer): Promise<void> {
    const encoder = new DataEncoder();
    if (Buffer.isBuffer(message) && message.length <= BUFFER_SLICE) {
      // Small and in memory: encoded and written in one go, the end of data included.
      this.#writeData([encoder.encode(message), encoder.end()]);
      return;
    }
    // A big buffer goes in slices, so that each completed write tells the reply wait that data flows.
    const source = Buffer.isBuffer(message) ? bufferSlices(message) : message;
    try {
      for await (const chunk of source) {
        noteStreamed((chunk as Buffer).length);
        const encoded = encoder.encode(chunk as Buffer);
        // Backpressure: the next chunk is read only once the socket has taken this one.
        if (encoded.length > 0 && !this.#writeData([encoded])) await this.#drained();
      }
      this.#writeData([encoder.end()]);
    } catch (error) {
      if (!Buffer.isBuffer(message)) message.destroy();
      if (this.#failure) throw this.#failure;
      // The message could not be read: close rather than let the server accept a truncated message.
      this.#teardown(networkError('message', 'ECONNABORTED', 'message stream failed'));
      throw error;
    }
  }

  /** Writes message data; false when the socket's buffer is full (wait for `#drained`). */
  #writeData(chunks: Buffer[]): boolean {
    const socket = this.#socket;
    if (this.#closed || !socket)
      throw this.#failure ?? networkError('message', 'ENOTCONN', 'connection is closed');
    let room = true;
    // Corked: several chunks leave in one system call.
    socket.cork();
    for (const chunk of chunks) {
      // A completed write restarts the silence clock of the reply wait that follows.
      room = socket.write(chunk, () => this.#timer?.refresh());
    }
    socket.uncork();
    return room;
  }

  /** Resolves when the socket can take more; fails with the connection (or its silence timeout). */
  #drained(): Promise<void> {
    const socket = this.#socket!;
    let onDrain: () => void = () => undefined;
    const drained = new Promise<void>((resolve) => {
      onDrain = resolve;
      socket.once('drain', onDrain);
    });
    return this.#await(drained).finally(() => socket.off('drain', onDrain));
  }
}

/**
 * Connects, reads the greeting, EHLO (HELO when EHLO is refused with 5xx), STARTTLS and EHLO again
 * when security is 'starttls', and AUTH when auth is set. Rejects with an UpstreamError naming the
 * stage; the connection is closed then.
 */
export async function connectSmtp(options: SmtpClientOptions): Promise<SmtpConnection> {
  if (!/^[^\s]+$/.test(options.heloName)) {
    throw new UpstreamError({
      kind: 'config',
      code: 'INVALID_HELO_NAME',
      message: `the EHLO name ${JSON.stringify(options.heloName)} is empty or contains spaces`,
    });
  }
  if (options.auth) assertAuthAllowed(options.host, options.security !== 'none');
  const connection = new Connection(options);
  try {
    await connection.open();
  } catch (error) {
    connection.close();
    throw error;
  }
  return connection;
}
