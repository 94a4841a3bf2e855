/**
 * The upstream SMTP client: submission to smtp.office365.com:587 and other smart hosts, on
 * nodemailer's SMTPConnection (its reply-handler queue, pipelining, dot-stuffing, per-phase timeouts,
 * STARTTLS response-injection guard). This module is the adapter around it: the steps `check` shows,
 * the capabilities RelayDesk reads from EHLO, the final-reply wait of RFC 5321 §4.5.3.2.6, and every
 * failure turned into an UpstreamError naming the stage it happened at, so that the diagnosis table can
 * tell a wrong password from a refused certificate from a full mailbox.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPConnectionSendInfo } from 'nodemailer/lib/smtp-connection';
import { isLoopbackHost } from '../config/loopback.ts';
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

/** RFC 5321 §4.5.3.2.6: the wait for the reply to the final dot is 10 minutes, not the per-command one. */
export const FINAL_REPLY_TIMEOUT_MS = 10 * 60 * 1000;

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
  /** From the start of the message data to the reply after the final dot; FINAL_REPLY_TIMEOUT_MS by default. */
  finalReplyTimeoutMs?: number;
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
  /** The refusal for a rejected recipient; null for an accepted one (the final reply is `dataReply`). */
  reply: SmtpReply | null;
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
  /**
   * The device asked for SMTPUTF8. Only addresses that are not ASCII need it upstream (nodemailer
   * declares it for those alone); ASCII ones go to any server, as Postfix sends them.
   */
  smtpUtf8?: boolean;
  eightBit?: boolean;
}

export interface SmtpConnection {
  readonly capabilities: SmtpCapabilities;
  readonly tlsProtocol: string | null;
  readonly closed: boolean;
  /**
   * MAIL FROM, RCPT TO each, DATA, message, final reply; MAIL, the RCPTs and DATA in one write when
   * PIPELINING is advertised. An error reply to MAIL rejects with stage 'mail', to DATA with 'data',
   * after the message with 'message'; per-recipient errors are returned in recipients (accepted:
   * false). When no recipient is accepted, it RSETs and resolves with dataReply null. Network and
   * timeout errors reject with kind 'network' at the stage the transaction had reached ('mail' while
   * the server has not answered MAIL yet: nothing of this message can have arrived) and leave the
   * connection closed. When the message stream fails, the connection is closed (a truncated message
   * must never be completed) and its error is rethrown.
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

function oneLine(reply: SmtpReply): string {
  return reply.raw.replace(/\r\n/g, ' | ');
}

function assertNoLineBreak(what: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new TypeError(`${what} contains a line break`);
}

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

/** What nodemailer's errors carry besides the message (its `_formatError`). */
interface NodemailerError extends Error {
  code?: string;
  /** The socket's own code (`ECONNREFUSED`, `CERT_HAS_EXPIRED`) when nodemailer replaced it with its type. */
  originalCode?: string;
  syscall?: string;
  /** `MAIL FROM`, `RCPT TO`, `DATA`, `AUTH PLAIN`, `CONN` (the connection as a whole)... */
  command?: string;
  /** The server's reply, lines joined with LF. */
  response?: string;
  responseCode?: number;
  rejectedErrors?: (NodemailerError & { recipient?: string })[];
}

/**
 * nodemailer's own XOAUTH2 wants a token generator it can ask for a fresh token on a 535; RelayDesk's
 * token provider does that (the transport reconnects with a refreshed token), so XOAUTH2 runs as a
 * custom handler under a name of its own (under `XOAUTH2` nodemailer would pick PLAIN instead).
 */
const BEARER_TOKEN = 'XOAUTH2-BEARER';

/** Errors Node raises for the TCP connection even while a TLS handshake is running over it. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT']);

/** nodemailer's transcript marks what it hides this way; RelayDesk's transcript says `<redacted>`. */
const AUTH_WITH_PAYLOAD = /^(AUTH \S+) .*/i;

function stageOfCommand(command: string | undefined): SmtpStage | null {
  const verb = (command ?? '').toUpperCase();
  if (verb === 'MAIL FROM') return 'mail';
  if (verb === 'RCPT TO') return 'rcpt';
  if (verb === 'DATA') return 'data';
  if (verb === 'EHLO' || verb === 'HELO') return 'ehlo';
  if (verb === 'STARTTLS') return 'starttls';
  if (verb.startsWith('AUTH')) return 'auth';
  if (verb === 'RSET') return 'rset';
  return null;
}

function parseServerReply(response: string): SmtpReply | null {
  try {
    return parseReply(response.split(/\r?\n/));
  } catch (error) {
    if (error instanceof ReplySyntaxError) return null;
    throw error;
  }
}

class Connection implements SmtpConnection {
  readonly #options: SmtpClientOptions;
  readonly #smtp: SMTPConnection;
  #capabilities: SmtpCapabilities = NO_CAPABILITIES;
  /** What the server offered before STARTTLS: whether it offered STARTTLS at all. */
  #plainCapabilities: SmtpCapabilities | null = null;
  #ehloRefusal: SmtpReply | null = null;
  #stage: SmtpStage = 'connect';
  #stepStarted = performance.now();
  #stepOpen = true;
  #closed = false;
  /** Why the connection closed; what an operation in flight at that moment rejects with. */
  #failure: UpstreamError | null = null;
  readonly #closeListeners: (() => void)[] = [];
  readonly #pendingRejects = new Set<(error: UpstreamError) => void>();
  #lock: Promise<unknown> = Promise.resolve();
  /** Replies to the message in flight so far (-1: none in flight): how far its transaction got. */
  #transactionReplies = -1;
  #transactionRecipients = 0;
  #inData = false;
  /**
   * What the server still owes a reply to, in order (the greeting, each command, the end of each
   * message): read as bytes arrive, before nodemailer pairs them with its handlers.
   */
  readonly #awaiting: string[] = ['greeting'];
  #replyReader: ReplyReader | null = new ReplyReader();
  /** The streamed message in flight, counted for spent-buffers once nodemailer starts reading it. */
  #streaming: Readable | null = null;

  constructor(options: SmtpClientOptions, Nodemailer: typeof SMTPConnection) {
    this.#options = options;
    const { auth, security } = options;
    this.#smtp = new Nodemailer({
      host: options.host,
      port: options.port,
      secure: security === 'tls',
      requireTLS: security === 'starttls',
      ignoreTLS: security === 'none',
      name: options.heloName,
      localAddress: options.localAddress,
      connectionTimeout: options.connectTimeoutMs ?? options.timeoutMs,
      greetingTimeout: options.timeoutMs,
      // Inactivity of the socket: the wait for each reply. The final dot gets its own (see #onReply).
      socketTimeout: options.timeoutMs,
      allowInternalNetworkInterfaces: true,
      tls: this.#tlsOptions(),
      logger: this.#logger,
      transactionLog: true,
      customAuth:
        auth?.method === 'xoauth2'
          ? { [BEARER_TOKEN]: (context) => this.#xoauth2(auth.user, auth.accessToken, context) }
          : undefined,
    });
    this.#smtp.on('error', (error: NodemailerError) => this.#teardown(this.#failureOf(error)));
    // nodemailer may close the connection and then hand the reason to the command's callback; the
    // callback's reason is the one to report, so the bare 'end' waits for the current turn to finish.
    this.#smtp.on('end', () =>
      setImmediate(() =>
        this.#teardown(
          this.#networkError(this.#currentStage(), 'ECONNRESET', 'connection closed by the server'),
        ),
      ),
    );
  }

  get capabilities(): SmtpCapabilities {
    return this.#capabilities;
  }

  get tlsProtocol(): string | null {
    const socket = this.#smtp._socket;
    return socket instanceof tls.TLSSocket ? socket.getProtocol() : null;
  }

  get closed(): boolean {
    this.#noticeClosing();
    return this.#closed;
  }

  /** nodemailer closed its side (a 421, a server that broke protocol): closed for RelayDesk too, now. */
  #noticeClosing(): void {
    const socket = this.#smtp._socket;
    if (this.#closed || !socket || (!socket.destroyed && socket.writable)) return;
    this.#teardown(this.#networkError(this.#currentStage(), 'ECONNRESET', 'connection closed'));
  }

  onClose(listener: () => void): void {
    if (this.#closed) queueMicrotask(listener);
    else this.#closeListeners.push(listener);
  }

  close(): void {
    this.#teardown(this.#networkError(this.#stage, 'ENOTCONN', 'connection closed by RelayDesk'));
  }

  async open(): Promise<void> {
    const { auth } = this.#options;
    this.#begin('connect');
    try {
      await this.#run<void>((done) => this.#smtp.connect((error) => done(error ?? null)));
      if (auth) {
        const socket = this.#smtp._socket;
        assertAuthAllowed((socket && socket.remoteAddress) || this.#options.host, this.#smtp.secure);
        this.#begin('auth');
        await this.#run<boolean>((done) => this.#smtp.login(this.#loginOf(auth), done));
        this.#finish(true, auth.method === 'xoauth2' ? 'XOAUTH2' : this.#passwordMechanism());
      }
    } catch (error) {
      this.#finish(false, (error as Error).message);
      throw error;
    }
  }

  send(envelope: Envelope, message: Readable | Buffer): Promise<SendResult> {
    return this.#exclusive(() => this.#send(envelope, message));
  }

  reset(): Promise<void> {
    return this.#exclusive(async () => {
      this.#stage = 'rset';
      await this.#run<boolean>((done) => this.#smtp.reset(done));
    });
  }

  quit(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#closed) return;
      this.#stage = 'quit';
      const closed = new Promise<void>((resolve) => this.onClose(resolve));
      let timer: NodeJS.Timeout | undefined;
      const silent = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#options.timeoutMs);
      });
      this.#smtp.quit();
      // The server hanging up or staying silent instead of answering QUIT changes nothing: we close.
      await Promise.race([closed, silent]);
      clearTimeout(timer);
      this.#teardown(this.#networkError('quit', 'ENOTCONN', 'connection closed after QUIT'));
    });
  }

  /** One operation at a time: nodemailer pairs replies with commands in the order they were sent. */
  #exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#lock.then(operation);
    this.#lock = result.catch(() => undefined);
    return result;
  }

  /** Runs one nodemailer call; its error, or the connection failing meanwhile, rejects as an UpstreamError. */
  #run<T>(start: (done: (error: NodemailerError | null, value?: T) => void) => void): Promise<T> {
    if (this.#closed) {
      return Promise.reject(
        this.#failure ?? this.#networkError(this.#stage, 'ENOTCONN', 'connection is closed'),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const fail = (error: UpstreamError) => {
        this.#pendingRejects.delete(fail);
        reject(error);
      };
      this.#pendingRejects.add(fail);
      start((error, value) => {
        this.#pendingRejects.delete(fail);
        if (!error) resolve(value as T);
        else if (error.code === 'ESTREAM') reject(error);
        else reject(Object.assign(this.#failureOf(error), { cause: error }));
      });
    });
  }

  #loginOf(auth: NonNullable<UpstreamAuthMethod>): SMTPConnection.AuthenticationType {
    if (auth.method === 'xoauth2') return { method: BEARER_TOKEN, user: auth.user };
    return { method: this.#passwordMechanism(), user: auth.user, pass: auth.password };
  }

  /** PLAIN when offered; else LOGIN, also when AUTH is not advertised at all (some servers take it regardless). */
  #passwordMechanism(): 'PLAIN' | 'LOGIN' {
    return this.#capabilities.auth.includes('PLAIN') ? 'PLAIN' : 'LOGIN';
  }

  /**
   * SASL XOAUTH2 with the token RelayDesk already holds (nodemailer's own XOAUTH2 would fetch tokens
   * itself). A refusal comes as a 334 carrying a base64 JSON error; an empty line gets the final reply.
   */
  async #xoauth2(user: string, accessToken: string, context: SMTPConnection.CustomAuthenticationContext) {
    const initial = Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`).toString('base64');
    let reply = await context.sendCommand(`AUTH XOAUTH2 ${initial}`);
    if (reply.status === 334) reply = await context.sendCommand('');
    if (reply.status >= 200 && reply.status < 300) context.resolve();
    else context.reject('Invalid login');
  }

  async #send(envelope: Envelope, message: Readable | Buffer): Promise<SendResult> {
    if (this.#closed) throw this.#networkError('mail', 'ENOTCONN', 'connection is closed');
    assertNoLineBreak('envelope sender', envelope.mailFrom);
    for (const address of envelope.rcptTo) assertNoLineBreak('envelope recipient', address);
    const capabilities = this.#capabilities;
    // RFC 6531 §3.4: an address that is not ASCII must not go to a server that lacks SMTPUTF8.
    if (/[\u0080-\uffff]/.test([envelope.mailFrom, ...envelope.rcptTo].join(''))) {
      if (!capabilities.smtpUtf8) {
        throw new UpstreamError({
          kind: 'config',
          code: 'SMTPUTF8_NOT_OFFERED',
          message: `${this.#options.host} does not offer SMTPUTF8, which this message's addresses need`,
        });
      }
    }
    // RFC 1870: the server said how much it takes; sending more only to hear 552 wastes the upload.
    if (capabilities.size && envelope.size !== undefined && envelope.size > capabilities.size) {
      throw new UpstreamError({
        kind: 'config',
        code: 'UPSTREAM_SIZE_EXCEEDED',
        message: `the message (${envelope.size} bytes) is larger than ${this.#options.host} accepts (SIZE ${capabilities.size})`,
      });
    }
    this.#stage = 'mail';
    this.#transactionReplies = 0;
    this.#transactionRecipients = envelope.rcptTo.length;
    this.#streaming = Buffer.isBuffer(message) ? null : message;
    // A file stream that fails (the spool file removed, a locked file) before nodemailer reads it,
    // during MAIL/RCPT/DATA, would have no listener and end the process: end this session instead.
    const streamFailed = (error: Error) =>
      this.#teardown(this.#networkError('message', 'EIO', `message stream failed: ${error.message}`));
    if (!Buffer.isBuffer(message)) message.once('error', streamFailed);
    let info: SMTPConnectionSendInfo;
    try {
      info = await this.#run<SMTPConnectionSendInfo>((done) =>
        this.#smtp.send(
          {
            from: envelope.mailFrom,
            to: envelope.rcptTo,
            size: envelope.size,
            use8BitMime: envelope.eightBit === true,
          },
          message,
          done,
        ),
      );
    } catch (error) {
      return this.#sendFailed(error, envelope);
    } finally {
      if (!Buffer.isBuffer(message)) message.off('error', streamFailed);
      this.#endTransaction();
    }
    const rejected = new Map(
      (info.rejectedErrors ?? []).map((error) => [
        (error as NodemailerError & { recipient?: string }).recipient,
        error as NodemailerError,
      ]),
    );
    return {
      recipients: envelope.rcptTo.map((address) => {
        const refusal = rejected.get(address);
        return refusal
          ? { address, reply: parseServerReply(refusal.response ?? ''), accepted: false }
          : { address, reply: null, accepted: true };
      }),
      dataReply: parseServerReply(info.response),
    };
  }

  /** A refused envelope is an answer (the session stays usable, cleared with RSET); the rest rethrows. */
  async #sendFailed(error: unknown, envelope: Envelope): Promise<SendResult> {
    if (!(error instanceof UpstreamError)) {
      // The message could not be read: close rather than let the server accept a truncated message.
      this.#teardown(this.#networkError('message', 'ECONNABORTED', 'message stream failed'));
      throw error;
    }
    const failure = error.failure;
    this.#noticeClosing();
    if (failure.kind !== 'reply' || this.#closed) throw error;
    await this.#resetQuietly();
    // Every recipient refused: nodemailer's error lists each refusal.
    const refusals = (error.cause as NodemailerError | undefined)?.rejectedErrors;
    if (!refusals || failure.stage !== 'rcpt') throw error;
    const byAddress = new Map(refusals.map((refusal) => [refusal.recipient, refusal.response ?? '']));
    return {
      recipients: envelope.rcptTo.map((address) => ({
        address,
        reply: parseServerReply(byAddress.get(address) ?? '') ?? failure.reply,
        accepted: false,
      })),
      dataReply: null,
    };
  }

  async #resetQuietly(): Promise<void> {
    try {
      await this.#run<boolean>((done) => this.#smtp.reset(done));
    } catch {
      // The refusal is what the caller needs to hear; a broken connection already shows in `closed`.
    }
  }

  #endTransaction(): void {
    this.#transactionReplies = -1;
    this.#streaming = null;
    if (this.#inData) {
      this.#inData = false;
      const socket = this.#smtp._socket;
      if (socket && !this.#closed) socket.setTimeout(this.#options.timeoutMs);
    }
  }

  /** How far the message in flight got: the server answered nothing yet, MAIL, the RCPTs, DATA. */
  #transactionStage(): SmtpStage {
    if (this.#inData) return 'message';
    if (this.#transactionReplies <= 0) return 'mail';
    if (this.#transactionReplies <= this.#transactionRecipients) return 'rcpt';
    return 'data';
  }

  #currentStage(): SmtpStage {
    return this.#transactionReplies >= 0 ? this.#transactionStage() : this.#stage;
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

  #networkError(stage: SmtpStage, code: string, message: string): UpstreamError {
    return new UpstreamError({ kind: 'network', stage, code, message });
  }

  /** nodemailer's error as the diagnosis table reads it: a reply, a TLS refusal, or a network failure. */
  #failureOf(error: NodemailerError): UpstreamError {
    if (error instanceof UpstreamError) return error;
    const commandStage = stageOfCommand(error.command);
    const stage = error.code === 'EMESSAGE' ? 'message' : (commandStage ?? this.#currentStage());
    if (stage === 'starttls' && this.#plainCapabilities && !this.#plainCapabilities.starttls) {
      return new UpstreamError({
        kind: 'tls',
        stage: 'starttls',
        code: 'STARTTLS_NOT_OFFERED',
        message: `${this.#options.host} does not offer STARTTLS`,
      });
    }
    const reply = error.response ? parseServerReply(error.response) : null;
    if (reply) return new UpstreamError({ kind: 'reply', stage, reply });
    if (error.code === 'EPROTOCOL') return this.#networkError(stage, 'EPROTO', error.message);
    if (error.code === 'ETIMEDOUT') return this.#networkError(stage, 'ETIMEDOUT', error.message);
    const code =
      error.originalCode ?? (error.code === 'ECONNECTION' ? 'ECONNRESET' : (error.code ?? 'ECONNRESET'));
    const overTls = stage === 'starttls' || (this.#options.security === 'tls' && stage === 'connect');
    if (overTls && error.syscall === undefined && !NETWORK_CODES.has(code) && code !== 'ECONNRESET') {
      return new UpstreamError({ kind: 'tls', stage, code, message: error.message });
    }
    return this.#networkError(stage, code, error.message);
  }

  /** Closes everything once; whatever is in flight rejects with `failure`. */
  #teardown(failure: UpstreamError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failure = failure;
    for (const reject of [...this.#pendingRejects]) reject(failure);
    this.#pendingRejects.clear();
    this.#smtp.close();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  #begin(stage: SmtpStage): void {
    this.#stage = stage;
    this.#stepStarted = performance.now();
    this.#stepOpen = true;
  }

  #finish(ok: boolean, detail: string): void {
    if (!this.#stepOpen) return;
    this.#stepOpen = false;
    const ms = Math.round(performance.now() - this.#stepStarted);
    this.#options.onStep?.({ stage: this.#stage, ok, ms, detail });
  }

  /** nodemailer's transcript (transactionLog): the steps of `check`, the capabilities, the final-dot wait. */
  readonly #logger = {
    trace: () => undefined,
    debug: (entry: { tnx?: string }, message: unknown) => {
      if (entry.tnx === 'client') this.#onCommand(String(message));
      else if (entry.tnx === 'server') this.#onReply(String(message));
    },
    info: (entry: { tnx?: string }, message: unknown) => {
      if (entry.tnx === 'network' && String(message).endsWith('established to %s:%s')) this.#onConnected();
    },
    warn: () => undefined,
    error: () => undefined,
    fatal: () => undefined,
  };

  #onConnected(): void {
    const socket = this.#smtp._socket;
    if (!socket) return;
    socket.prependListener('data', this.#onArrival);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#finish(true, socket instanceof tls.TLSSocket ? `${peer}, ${describeTls(socket)}` : peer);
    this.#begin('greeting');
  }

  #onCommand(line: string): void {
    const verb = line.slice(0, 4).toUpperCase();
    if (verb === 'EHLO' || verb === 'HELO') {
      if (this.#stage === 'starttls') {
        const socket = this.#smtp._socket;
        this.#finish(true, socket instanceof tls.TLSSocket ? describeTls(socket) : 'TLS');
        // The session starts over on the TLS socket (RFC 3207 §4.2): so does the reading of replies.
        this.#replyReader = new ReplyReader();
        if (socket) socket.prependListener('data', this.#onArrival);
      }
      if (this.#stage !== 'ehlo' || !this.#stepOpen) this.#begin('ehlo');
    } else if (line.toUpperCase() === 'STARTTLS') {
      this.#begin('starttls');
    } else if (verb === 'RSET') {
      if (this.#transactionReplies < 0) this.#stage = 'rset';
    }
    this.#awaiting.push(verb);
    let logged = line;
    if (this.#stage === 'auth') {
      logged = AUTH_WITH_PAYLOAD.test(line) ? line.replace(AUTH_WITH_PAYLOAD, '$1 <redacted>') : line;
      if (!/^AUTH /i.test(line)) logged = '<redacted>';
    }
    this.#options.onLine?.('out', logged);
  }

  /**
   * nodemailer hands each reply to the handler first in its queue when it processes it, which may be
   * after the next command was written: a reply sent by nobody's asking (an extra 250 after the final
   * dot, a reply packed with the greeting) would become the next command's answer. Counted here as
   * the bytes arrive, such a reply ends the connection as a protocol error instead, once the replies
   * that were asked for in the same packet have been handled.
   */
  readonly #onArrival = (chunk: Buffer): void => {
    const reader = this.#replyReader;
    if (!reader || this.#closed) return;
    let replies: string[][];
    try {
      replies = reader.push(chunk);
    } catch (error) {
      if (!(error instanceof ReplySyntaxError)) throw error;
      // Not SMTP at all: nodemailer reports it (EPROTOCOL); there is nothing left to count.
      this.#replyReader = null;
      return;
    }
    for (const lines of replies) {
      const answered = this.#awaiting.shift();
      if (answered === undefined) {
        const stray = lines.join(' | ');
        queueMicrotask(() =>
          this.#teardown(
            this.#networkError(
              this.#currentStage(),
              'EPROTO',
              `the server sent a reply nothing asked for: ${stray}`,
            ),
          ),
        );
        this.#replyReader = null;
        return;
      }
      // After DATA (354, or 250 from some servers) the message's end is owed a reply too.
      if (answered === 'DATA' && /^[23]/.test(lines[0] ?? '')) this.#awaiting.unshift('end of data');
    }
  };

  #onReply(raw: string): void {
    const lines = raw.split(/\r?\n/);
    for (const line of lines) this.#options.onLine?.('in', line);
    const reply = parseServerReply(raw);
    if (!reply) return;
    if (this.#transactionReplies >= 0) {
      this.#transactionReplies += 1;
      if (reply.code === 354) {
        this.#inData = true;
        // RFC 5321 §4.5.3.2.6: a server may take minutes to accept what it received; answering
        // sooner with a timeout would only get the message sent again.
        const socket = this.#smtp._socket;
        if (socket) socket.setTimeout(this.#options.finalReplyTimeoutMs ?? FINAL_REPLY_TIMEOUT_MS);
        // nodemailer pipes the message right after this reply; a listener added earlier would start
        // the stream flowing before anything reads it.
        this.#streaming?.on('data', (chunk: Buffer) => noteStreamed(chunk.length));
      }
      return;
    }
    const positive = reply.code >= 200 && reply.code < 300;
    if (this.#stage === 'greeting' && positive) {
      this.#finish(true, oneLine(reply));
    } else if (this.#stage === 'ehlo') {
      if (positive) {
        const helo = this.#ehloRefusal !== null;
        this.#capabilities = helo ? NO_CAPABILITIES : parseCapabilities(reply);
        if (!this.#smtp.secure) this.#plainCapabilities = this.#capabilities;
        this.#finish(
          true,
          helo
            ? `HELO (EHLO refused: ${oneLine(this.#ehloRefusal!)})`
            : lines
                .slice(1)
                .map((line) => line.slice(4))
                .join(', ') || 'no extensions',
        );
      } else if (reply.code >= 500 && this.#ehloRefusal === null) {
        // RFC 5321 §3.2: a server that does not know EHLO answers 5xx; nodemailer says HELO next.
        this.#ehloRefusal = reply;
      }
    }
  }
}

let nodemailerLoading: Promise<typeof SMTPConnection> | null = null;

/**
 * nodemailer is loaded with the first upstream connection, not when RelayDesk starts: its modules
 * take 60 to 200 ms to load, time a relay restarting after a crash should spend taking mail.
 */
function loadNodemailer(): Promise<typeof SMTPConnection> {
  nodemailerLoading ??= import('nodemailer/lib/smtp-connection').then((module) => module.default);
  return nodemailerLoading;
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
  const connection = new Connection(options, await loadNodemailer());
  try {
    await connection.open();
  } catch (error) {
    connection.close();
    throw error;
  }
  return connection;
}
