/**
 * One LAN-side SMTP session as a protocol core: bytes in, replies and events out, no socket (the way
 * data-reader.ts is). Plain, anonymous ESMTP for office devices, lenient where devices bend the rules
 * (HELO without a name, early talkers, unbracketed addresses, unadvertised AUTH), strict where safety
 * needs it (DATA ends only on CRLF.CRLF, sizes, counts and time capped, 250 only once the message is
 * on disk). connection.ts runs it on a socket; it owns TLS and the timers and asks this core when the
 * next deadline is.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SpoolWriter, SpooledMessage, Envelope } from '../spool.ts';
import { DISK_FULL_CODES } from '../spool.ts';
import type { UpstreamCapabilities } from '../upstream-capabilities.ts';
import { DataReader } from './data-reader.ts';
import { isAscii, parsePathArgument, printable } from './address.ts';
import { continueAuth, startAuth, type AuthStep, type AuthWait } from './auth-exchange.ts';

export interface SessionLimits {
  maxMessageBytes: number;
  maxRecipients: number;
  /** Silence allowed between commands and mid-DATA; also the time one command line may take. */
  idleTimeoutMs: number;
  /** DATA must keep up this average after its first idleTimeoutMs (Postfix's smtpd_min_data_rate). */
  minDataBytesPerSecond: number;
  /** A session ends after this long, at the end of the message in progress if there is one. */
  sessionTimeoutMs: number;
  /** What preparing a message for the upstream may add to it: kept free below the upstream's SIZE. */
  preparedGrowthBytes: number;
}

export interface SessionInfo {
  id: number;
  remoteAddress: string;
  remotePort: number;
  /** `host:port` of the listener. */
  listener: string;
  tls: boolean;
}

/** What a session needs from the relay around it. */
export interface SessionHost {
  hostname: string;
  limits: SessionLimits;
  /** STARTTLS is offered only when this is set and the connection is still plain. */
  startTls: ((socket: Socket) => TLSSocket) | null;
  /** A TLS handshake failed (an old device and TLS 1.2, a device that rejects the certificate). */
  tlsFailed(ip: string, error: Error): void;
  isAllowed(ip: string): boolean;
  /** Checks LAN AUTH credentials; resolves whether they are accepted (trust-by-IP mode accepts any). */
  authenticate(ip: string, user: string, password: string): Promise<boolean>;
  /** A LAN AUTH that succeeded lets a client outside the allow-list relay (per-device credentials). */
  authGrantsRelay: boolean;
  /** What the upstream offered when last reached: SMTPUTF8 and its SIZE decide what is refused here. */
  upstreamCapabilities(): UpstreamCapabilities;
  denied(ip: string, sender: string): void;
  hasRoomFor(bytes: number): Promise<boolean>;
  beginMessage(envelope: Omit<Envelope, 'id'>): Promise<SpoolWriter>;
  accepted(message: SpooledMessage, info: SessionInfo): void;
  rejected(info: SessionInfo, reason: string, envelope: { mailFrom: string; rcptTo: string[] }): void;
  /** True once the relay is shutting down: new transactions get 421. */
  draining(): boolean;
}

/** What the core asks of the connection it runs on. */
export interface SessionOutput {
  /** One reply (several lines joined with CRLF); the line end is added. */
  write(reply: string): void;
  /** Ends the connection after the replies written. `stopReading`: for a client that keeps sending regardless. */
  end(stopReading: boolean): void;
  /** STARTTLS: `220` has been written; the connection is TLS from the next byte on. */
  upgradeToTls(): void;
  /** Whether input is wanted: not once much has piled up during an async step (spool, AUTH), nor while the spool is behind. */
  setReading(reading: boolean): void;
  /**
   * Runs `step` in a later turn of the event loop, once the replies so far are written: a pipelined
   * flood is answered MAX_COMMANDS_PER_TURN commands at a time, so other sessions get their turns and
   * the garbage of one turn stays small. Without it (a test feeding chunks) all input is read at once.
   */
  later?(step: () => void): void;
}

const MAX_LINE_BYTES = 4096;
/** Postfix's smtpd_hard_error_limit is 20; a device that bad is not going to recover. */
const MAX_ERRORS = 20;
/**
 * Postfix's smtpd_junk_command_limit: past this many NOOP, RSET, VRFY and HELP, each counts as an
 * error. For clients outside allowedClients only: a device may NOOP as much as it likes.
 */
const MAX_JUNK_COMMANDS = 100;
/** A fast sender on a slow disk is paused once the spool is this far behind. */
const MAX_UNWRITTEN_BYTES = 4 * 1024 * 1024;
/**
 * Input kept while a spool step runs before reading pauses. A lock-step device sends
 * nothing until it has the reply, so its socket is never paused and resumed three times a message
 * (MAIL, DATA, the final dot); a pipelining client gets as far as a socket's own read buffer.
 */
const MAX_INPUT_WHILE_BUSY = 16 * 1024;
/**
 * Commands answered in one turn before the rest of a pipelined chunk waits for the next: a 64 KB read
 * holds 11,000 NOOPs, whose replies, all alive until the turn ends, made V8 grow its young generation.
 */
const MAX_COMMANDS_PER_TURN = 256;
const NO_INPUT = Buffer.alloc(0);

type State = { name: 'command' } | AuthWait | { name: 'data' } | { name: 'closed' };

/** What HELO/EHLO and AUTH established: forgotten at STARTTLS (RFC 3207 §4.2). */
interface Greeting {
  helo: string | null;
  authUser: string | null;
}

/** From MAIL to the reply after the final dot. */
interface Transaction {
  mailFrom: string;
  /** A Set: a recipient named twice is one recipient (Postfix takes the duplicate and drops it). */
  rcptTo: Set<string>;
  eightBit: boolean;
  smtpUtf8Declared: boolean;
  tooManyRecipientsSeen: boolean;
  upload: Upload | null;
}

/** The message bytes of a transaction on their way to the spool. */
interface Upload {
  /** null once the file was dropped (too big, failed): the rest of the data is read and discarded. */
  writer: SpoolWriter | null;
  reader: DataReader;
  /** The size limit when DATA began: it does not move mid-message. */
  limit: number;
  receivedBytes: number;
  oversize: boolean;
  writes: Promise<void>;
  writeError: NodeJS.ErrnoException | null;
  /** Moves later with every byte received (minDataBytesPerSecond) and while the spool held input. */
  deadline: number;
  /** Since when the spool's back-pressure holds input, or null. */
  heldSince: number | null;
}

const NO_GREETING: Greeting = { helo: null, authUser: null };

export class LanSession {
  private input: Buffer = NO_INPUT;
  private state: State = { name: 'command' };
  private greeting: Greeting = NO_GREETING;
  private transaction: Transaction | null = null;
  /**
   * An async step is running: input waits. An AUTH check (slow on purpose, and open to anyone) holds
   * reading at once; a spool step only once MAX_INPUT_WHILE_BUSY waits.
   */
  private pending: 'spool' | 'auth' | null = null;
  /** The commands per turn were used up: a later turn goes on with the input (SessionOutput.later). */
  private continuing = false;
  private discardingLongLine = false;
  private errors = 0;
  private junkCommands = 0;
  /** When the command line now being received began, or null between lines. */
  private lineStartedAt: number | null = null;
  private readonly sessionDeadline: number;
  /** The session deadline passed mid-message: end once that message has its reply. */
  private expired = false;
  private readonly info: SessionInfo;

  constructor(
    private readonly host: SessionHost,
    info: SessionInfo,
    private readonly output: SessionOutput,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.info = { ...info };
    this.sessionDeadline = clock() + host.limits.sessionTimeoutMs;
  }

  /** Greets at once: no early-talker pause; input that arrives before this is just buffered. */
  start(): void {
    this.reply(`220 ${this.host.hostname} ESMTP RelayDesk ready`);
  }

  get clientIp(): string {
    return this.info.remoteAddress;
  }

  get isClosed(): boolean {
    return this.state.name === 'closed';
  }

  receive(chunk: Buffer): void {
    if (this.state.name === 'closed') return;
    this.input = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
    if (this.pending || this.continuing) this.updateReading();
    else this.pump();
  }

  /** The connection was silent for idleTimeoutMs. */
  idle(): void {
    this.replyAndClose('421 4.4.2 Idle timeout, closing connection');
  }

  /** The connection is gone: a half-received message was never acknowledged and is dropped. */
  connectionLost(): void {
    this.close();
  }

  /** Closes an idle session during shutdown; a session mid-DATA finishes first. */
  shutdownIfIdle(): boolean {
    if (this.state.name === 'data' || this.pending) return false;
    this.replyAndClose('421 4.3.2 RelayDesk is shutting down, try again later');
    return true;
  }

  /** When the next deadline falls (on the clock given), or null when none applies now. */
  deadline(): number | null {
    if (this.state.name === 'closed') return null;
    let earliest = this.expired ? Infinity : this.sessionDeadline;
    const upload = this.transaction?.upload;
    if (this.state.name === 'data' && upload && upload.heldSince === null) {
      earliest = Math.min(earliest, upload.deadline);
    }
    if (this.lineStartedAt !== null && !this.pending) {
      earliest = Math.min(earliest, this.lineStartedAt + this.host.limits.idleTimeoutMs);
    }
    return Number.isFinite(earliest) ? earliest : null;
  }

  /** Acts on the deadlines that have passed (Slowloris: each byte in time, the whole far too slow). */
  checkDeadline(): void {
    if (this.state.name === 'closed') return;
    const now = this.clock();
    const { limits } = this.host;
    const upload = this.transaction?.upload;
    if (this.state.name === 'data' && upload && upload.heldSince === null && now >= upload.deadline) {
      this.replyAndClose(
        `421 4.4.2 Message data arrived at less than ${limits.minDataBytesPerSecond} bytes per second, closing connection`,
      );
      return;
    }
    if (this.lineStartedAt !== null && !this.pending && now >= this.lineStartedAt + limits.idleTimeoutMs) {
      this.replyAndClose(
        `421 4.4.2 Command line not completed within ${Math.round(limits.idleTimeoutMs / 1000)} seconds, closing connection`,
      );
      return;
    }
    if (!this.expired && now >= this.sessionDeadline) {
      this.expired = true;
      this.endIfExpired();
    }
  }

  /** Processes buffered input until it runs out or an async step (spool, AUTH) is pending. */
  private pump(): void {
    let commands = 0;
    while (!this.pending && this.state.name !== 'closed' && this.input.length > 0) {
      if (this.endIfExpired()) return;
      if (this.state.name === 'data') {
        this.consumeData();
        continue;
      }
      const input = this.input;
      const newline = input.indexOf(0x0a);
      if (newline < 0) {
        if (input.length > MAX_LINE_BYTES) {
          this.input = NO_INPUT;
          if (!this.discardingLongLine) this.error('500 5.5.2 Line too long');
          this.discardingLongLine = true;
        }
        break;
      }
      if (commands === MAX_COMMANDS_PER_TURN && this.output.later) {
        this.continueLater();
        return;
      }
      this.input = newline + 1 === input.length ? NO_INPUT : input.subarray(newline + 1);
      this.lineStartedAt = null;
      if (this.discardingLongLine) {
        this.discardingLongLine = false;
        continue;
      }
      if (newline > MAX_LINE_BYTES) {
        this.error('500 5.5.2 Line too long');
        continue;
      }
      // Commands may end in CRLF or a bare LF (many devices); the CR is not part of the command.
      // UTF-8 (RFC 6531): bytes that are not become U+FFFD, which no address may contain.
      const end = newline > 0 && input[newline - 1] === 0x0d ? newline - 1 : newline;
      commands += 1;
      this.handleLine(input.toString('utf8', 0, end));
    }
    // A line begun (or being discarded for its length) must be finished in time, byte by byte or not.
    const midLine = this.state.name !== 'data' && (this.input.length > 0 || this.discardingLongLine);
    if (!midLine) this.lineStartedAt = null;
    else if (this.lineStartedAt === null && !this.pending) this.lineStartedAt = this.clock();
  }

  /** Goes on with the buffered commands in a later turn; reading waits if much is buffered. */
  private continueLater(): void {
    this.continuing = true;
    this.lineStartedAt = null;
    this.updateReading();
    this.output.later!(() => {
      this.continuing = false;
      if (this.state.name === 'closed') return;
      this.updateReading();
      this.pump();
    });
  }

  private handleLine(line: string): void {
    switch (this.state.name) {
      case 'auth-plain':
      case 'auth-login-user':
      case 'auth-login-password':
        this.authStep(continueAuth(this.state, line));
        return;
      default:
        this.command(line);
    }
  }

  private command(line: string): void {
    if (line.includes('\0')) {
      this.error('500 5.5.2 NUL characters are not allowed in commands');
      return;
    }
    const space = line.indexOf(' ');
    const verb = (space < 0 ? line : line.slice(0, space)).trim().toUpperCase();
    const argument = space < 0 ? '' : line.slice(space + 1).trim();
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        this.hello(verb, argument);
        return;
      case 'MAIL':
        this.mail(argument);
        return;
      case 'RCPT':
        this.rcpt(argument);
        return;
      case 'DATA':
        this.data();
        return;
      case 'RSET':
        this.resetSession('transaction');
        this.junk('250 2.0.0 Ok');
        return;
      case 'NOOP':
        this.junk('250 2.0.0 Ok');
        return;
      case 'QUIT':
        this.replyAndClose('221 2.0.0 Bye');
        return;
      case 'AUTH':
        this.auth(argument);
        return;
      case 'STARTTLS':
        this.startTls();
        return;
      case 'VRFY':
        this.junk('252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery');
        return;
      case 'HELP':
        this.junk('214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT AUTH VRFY HELP');
        return;
      case 'BDAT':
      case 'ETRN':
      case 'EXPN':
      case 'TURN':
        this.error(`502 5.5.1 ${verb} not implemented`);
        return;
      case '':
        this.error('500 5.5.2 Empty command');
        return;
      default:
        this.error(`500 5.5.2 Command not recognized: ${printable(verb, 16)}`);
    }
  }

  /**
   * The SIZE devices are held to: the configured limit, lowered once the upstream announced a smaller
   * SIZE, so a device hears 552 now rather than a 250 followed by a bounce (RFC 1870).
   */
  private sizeLimit(): number {
    const { limits } = this.host;
    const upstreamSize = this.host.upstreamCapabilities().sizeLimit;
    if (upstreamSize === undefined || upstreamSize <= 0) return limits.maxMessageBytes;
    return Math.max(1024, Math.min(limits.maxMessageBytes, upstreamSize - limits.preparedGrowthBytes));
  }

  private hello(verb: 'EHLO' | 'HELO', name: string): void {
    // HELO/EHLO without a name (a UPS, a drive controller) still gets a full session.
    this.resetSession('transaction');
    const helo = printable(name, 128) || this.info.remoteAddress;
    this.greeting = { ...this.greeting, helo };
    const welcome = `${this.host.hostname} Hello ${helo} [${this.info.remoteAddress}]`;
    if (verb === 'HELO') {
      this.reply(`250 ${welcome}`);
      return;
    }
    const lines = [
      welcome,
      'PIPELINING',
      `SIZE ${this.sizeLimit()}`,
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
    ];
    if (this.host.startTls && !this.info.tls) lines.push('STARTTLS');
    // Plain-text AUTH on the LAN is deliberate: devices that insist on it get it (PLAIN and LOGIN only;
    // a device that picks CRAM-MD5 or NTLM when offered fails).
    lines.push('AUTH PLAIN LOGIN', 'AUTH=PLAIN LOGIN', 'HELP');
    this.reply(lines.map((text, i) => `250${i === lines.length - 1 ? ' ' : '-'}${text}`).join('\r\n'));
  }

  /** RFC 6531: an address beyond ASCII goes only to an upstream that offers SMTPUTF8 (unknown: try). */
  private refusesNonAscii(address: string): boolean {
    return !isAscii(address) && this.host.upstreamCapabilities().smtpUtf8 === false;
  }

  private mail(argument: string): void {
    if (this.host.draining()) {
      this.replyAndClose('421 4.3.2 RelayDesk is shutting down, try again later');
      return;
    }
    if (this.transaction !== null) {
      this.error('503 5.5.1 Error: nested MAIL command');
      return;
    }
    const parsed = parsePathArgument(argument, 'FROM');
    if (!parsed.ok) {
      this.error(parsed.reply);
      return;
    }
    const { address, params } = parsed.value;
    const ip = this.info.remoteAddress;
    if (!this.host.isAllowed(ip) && !(this.greeting.authUser !== null && this.host.authGrantsRelay)) {
      this.host.denied(ip, address);
      const refusal = `550 5.7.1 Client ${ip} is not allowed to relay through RelayDesk; add it to "allowedClients" in the RelayDesk settings`;
      // Only a client that may still sign in (lanAuth check) has a reason to stay connected.
      if (this.host.authGrantsRelay) this.error(refusal);
      else this.replyAndClose(refusal);
      return;
    }
    if (this.refusesNonAscii(address)) {
      this.error(NON_ASCII_REFUSAL);
      return;
    }
    const sizeParam = params.get('SIZE');
    const declaredSize = typeof sizeParam === 'string' && /^\d+$/.test(sizeParam) ? Number(sizeParam) : 0;
    const limit = this.sizeLimit();
    if (declaredSize > limit) {
      this.error(tooBigReply(limit));
      return;
    }
    const body = params.get('BODY');
    const transaction: Transaction = {
      mailFrom: address,
      rcptTo: new Set(),
      eightBit: typeof body === 'string' && body.toUpperCase() === '8BITMIME',
      smtpUtf8Declared: params.has('SMTPUTF8'),
      tooManyRecipientsSeen: false,
      upload: null,
    };
    this.runAsync('spool', async () => {
      if (!(await this.host.hasRoomFor(declaredSize))) {
        this.reply('452 4.3.1 Insufficient system storage');
        return;
      }
      this.transaction = transaction;
      this.reply('250 2.1.0 Ok');
    });
  }

  private rcpt(argument: string): void {
    const transaction = this.transaction;
    if (transaction === null) {
      this.error('503 5.5.1 Error: need MAIL command');
      return;
    }
    const parsed = parsePathArgument(argument, 'TO');
    if (!parsed.ok) {
      this.error(parsed.reply);
      return;
    }
    const { address } = parsed.value;
    if (transaction.rcptTo.has(address)) {
      this.reply('250 2.1.5 Ok');
      return;
    }
    if (this.refusesNonAscii(address)) {
      this.error(NON_ASCII_REFUSAL);
      return;
    }
    if (transaction.rcptTo.size >= this.host.limits.maxRecipients) {
      transaction.tooManyRecipientsSeen = true;
      // 452 (not 5xx) per RFC 5321 §4.5.3.1.10: the client sends the rest in another transaction.
      this.reply('452 4.5.3 Error: too many recipients');
      return;
    }
    transaction.rcptTo.add(address);
    this.reply('250 2.1.5 Ok');
  }

  private data(): void {
    const transaction = this.transaction;
    if (transaction === null) {
      this.error('503 5.5.1 Error: need MAIL command');
      return;
    }
    if (transaction.rcptTo.size === 0) {
      this.error(
        transaction.tooManyRecipientsSeen
          ? '452 4.5.3 Error: too many recipients'
          : '554 5.5.1 Error: no valid recipients',
      );
      return;
    }
    const rcptTo = [...transaction.rcptTo];
    const envelope: Omit<Envelope, 'id'> = {
      receivedAt: Date.now(),
      client: {
        ip: this.info.remoteAddress,
        port: this.info.remotePort,
        helo: this.greeting.helo ?? '',
        listener: this.info.listener,
        tls: this.info.tls,
        authUser: this.greeting.authUser,
      },
      mailFrom: transaction.mailFrom,
      rcptTo,
      eightBit: transaction.eightBit,
      // Devices that write UTF-8 addresses without declaring SMTPUTF8 get it asked for upstream all the same.
      smtpUtf8:
        transaction.smtpUtf8Declared || !isAscii(transaction.mailFrom) || !rcptTo.every((a) => isAscii(a)),
    };
    this.runAsync('spool', async () => {
      let writer: SpoolWriter;
      try {
        writer = await this.host.beginMessage(envelope);
      } catch (error) {
        this.reply(storageFailureReply(error));
        return;
      }
      transaction.upload = {
        writer,
        reader: new DataReader(),
        limit: this.sizeLimit(),
        receivedBytes: 0,
        oversize: false,
        writes: Promise.resolve(),
        writeError: null,
        deadline: this.clock() + this.host.limits.idleTimeoutMs,
        heldSince: null,
      };
      this.state = { name: 'data' };
      this.reply('354 End data with <CR><LF>.<CR><LF>');
    });
  }

  private consumeData(): void {
    const upload = this.transaction!.upload!;
    const { body, done, rest } = upload.reader.feed(this.input);
    this.input = rest;
    let bytes = 0;
    for (const part of body) {
      bytes += part.length;
      upload.receivedBytes += part.length;
      if (upload.oversize) continue;
      if (upload.receivedBytes > upload.limit) {
        // Cut off at the limit: drop the file now and discard the rest without keeping it.
        upload.oversize = true;
        dropUpload(upload);
        continue;
      }
      this.queueWrite(upload, upload.writer!, part);
    }
    upload.deadline += (bytes * 1000) / this.host.limits.minDataBytesPerSecond;
    if (upload.oversize && upload.receivedBytes > 2 * upload.limit && !done) {
      // A client that keeps streaming far past the limit is not going to stop by itself.
      this.replyAndClose(tooBigReply(upload.limit), true);
      return;
    }
    if (done) this.finishData(upload);
  }

  private queueWrite(upload: Upload, writer: SpoolWriter, part: Buffer): void {
    // Subarrays of a received chunk stay valid: keep the reference and write in order.
    upload.writes = upload.writes.then(async () => {
      if (upload.writeError) return;
      try {
        await writer.write(part);
      } catch (error) {
        upload.writeError = error as NodeJS.ErrnoException;
      }
    });
    // Back-pressure: a fast sender on a slow disk pauses until the spool catches up; that wait is
    // ours, so it does not count against the sender's data rate.
    if (upload.heldSince === null && writer.bytesWritten + MAX_UNWRITTEN_BYTES < upload.receivedBytes) {
      upload.heldSince = this.clock();
      this.updateReading();
      void upload.writes.then(() => {
        if (upload.heldSince !== null) upload.deadline += this.clock() - upload.heldSince;
        upload.heldSince = null;
        this.updateReading();
      });
    }
  }

  private finishData(upload: Upload): void {
    const transaction = this.transaction!;
    const { writer } = upload;
    this.state = { name: 'command' };
    const envelope = { mailFrom: transaction.mailFrom, rcptTo: [...transaction.rcptTo] };
    if (upload.oversize || !writer) {
      this.resetSession('transaction');
      this.host.rejected(this.info, 'message too big', envelope);
      this.reply(tooBigReply(upload.limit));
      return;
    }
    this.runAsync('spool', async () => {
      await upload.writes;
      if (upload.writeError) {
        await writer.abort();
        upload.writer = null;
        this.resetSession('transaction');
        this.host.rejected(
          this.info,
          `spool write failed: ${upload.writeError.code ?? upload.writeError.message}`,
          envelope,
        );
        this.reply(storageFailureReply(upload.writeError));
        return;
      }
      let message: SpooledMessage;
      try {
        message = await writer.commit();
      } catch (error) {
        await writer.abort();
        upload.writer = null;
        this.resetSession('transaction');
        this.host.rejected(
          this.info,
          `spool commit failed: ${(error as NodeJS.ErrnoException).code ?? ''}`,
          envelope,
        );
        this.reply(storageFailureReply(error));
        return;
      }
      upload.writer = null;
      this.resetSession('transaction');
      // The message is on disk: answer first, then log and queue it (which starts its delivery).
      this.reply(`250 2.0.0 Ok: queued as ${message.envelope.id}`);
      this.host.accepted(message, this.info);
    });
  }

  private auth(argument: string): void {
    if (this.greeting.authUser !== null) {
      this.error('503 5.5.1 Error: already authenticated');
      return;
    }
    if (this.transaction !== null) {
      this.error('503 5.5.1 Error: AUTH not allowed during a mail transaction');
      return;
    }
    this.authStep(startAuth(argument));
  }

  private authStep(step: AuthStep): void {
    this.state = step.kind === 'challenge' ? step.wait : { name: 'command' };
    if (step.kind === 'challenge') this.reply(step.reply);
    else if (step.kind === 'refused') this.error(step.reply);
    else this.checkCredentials(step.user, step.password);
  }

  private checkCredentials(user: string, password: string): void {
    this.runAsync('auth', async () => {
      const ok = await this.host.authenticate(this.info.remoteAddress, user, password);
      if (ok) {
        this.greeting = { ...this.greeting, authUser: user };
        this.reply('235 2.7.0 Authentication successful');
      } else {
        this.error('535 5.7.8 Authentication credentials invalid');
      }
    });
  }

  private startTls(): void {
    if (!this.host.startTls || this.info.tls) {
      this.error('502 5.5.1 STARTTLS not available');
      return;
    }
    // RFC 3207 §4.2 / CVE-2011-0411: nothing pipelined after STARTTLS may survive into the TLS session.
    this.input = NO_INPUT;
    this.reply('220 2.0.0 Ready to start TLS');
    // RFC 3207 §4.2: forget everything learned before TLS, HELO and AUTH included.
    this.resetSession('greeting');
    this.info.tls = true;
    this.output.upgradeToTls();
  }

  /**
   * The one way session state is dropped: `transaction` for RSET, HELO/EHLO and failed messages (the
   * message being received, if any, is discarded); `greeting` also forgets HELO and AUTH (STARTTLS).
   */
  private resetSession(scope: 'transaction' | 'greeting'): void {
    const upload = this.transaction?.upload;
    if (upload) dropUpload(upload);
    this.transaction = null;
    if (scope === 'greeting') this.greeting = NO_GREETING;
  }

  /** Runs an async step with input held, then goes on with what is buffered. */
  private runAsync(kind: 'spool' | 'auth', step: () => Promise<void>): void {
    this.pending = kind;
    this.lineStartedAt = null;
    this.updateReading();
    step()
      .catch(() => this.replyAndClose('451 4.3.0 Internal error, try again later'))
      .finally(() => {
        this.pending = null;
        if (this.state.name === 'closed') return;
        this.updateReading();
        if (this.endIfExpired()) return;
        this.pump();
      });
  }

  private updateReading(): void {
    const heldBySpool = this.transaction?.upload?.heldSince != null;
    const busy =
      this.pending === 'auth' ||
      ((this.pending || this.continuing) && this.input.length >= MAX_INPUT_WHILE_BUSY);
    this.output.setReading(this.state.name !== 'closed' && !busy && !heldBySpool);
  }

  /** After the session deadline: ends the session once no message is under way. */
  private endIfExpired(): boolean {
    if (!this.expired || this.pending || this.state.name === 'data') return false;
    this.replyAndClose(
      `421 4.4.2 Session time limit of ${Math.round(this.host.limits.sessionTimeoutMs / 1000)} seconds reached, closing connection`,
    );
    return true;
  }

  /** A command that does no work: free for devices, limited for anyone else (a flood costs us CPU). */
  private junk(reply: string): void {
    const outsider = !this.host.isAllowed(this.info.remoteAddress) && this.greeting.authUser === null;
    if (outsider && (this.junkCommands += 1) > MAX_JUNK_COMMANDS) this.error(reply);
    else this.reply(reply);
  }

  private error(reply: string): void {
    this.errors += 1;
    if (this.errors >= MAX_ERRORS) {
      this.replyAndClose('421 4.7.0 Too many errors, closing connection');
      return;
    }
    this.reply(reply);
  }

  private reply(text: string): void {
    if (this.state.name === 'closed') return;
    this.output.write(text);
  }

  private replyAndClose(text: string, stopReading = false): void {
    if (this.state.name === 'closed') return;
    this.reply(text);
    this.close();
    this.output.end(stopReading);
  }

  private close(): void {
    if (this.state.name === 'closed') return;
    // A half-received message was never acknowledged: it is dropped, never delivered.
    this.resetSession('transaction');
    this.state = { name: 'closed' };
    this.input = NO_INPUT;
    this.lineStartedAt = null;
  }
}

/** Drops the message file once the writes under way have finished. */
function dropUpload(upload: Upload): void {
  const { writer } = upload;
  upload.writer = null;
  if (writer) void upload.writes.then(() => writer.abort());
}

const NON_ASCII_REFUSAL =
  '553 5.6.7 Non-ASCII address not permitted: the upstream mail server does not offer SMTPUTF8 (RFC 6531)';

/** Says the limit in bytes (what SIZE advertised) and in MB or KB (what an admin reads on a panel). */
function tooBigReply(limit: number): string {
  // Rounded down: "35 MB" for a limit a little under it would invite a scan that is refused again.
  const readable =
    limit >= 1024 * 1024
      ? `${(Math.floor((limit / (1024 * 1024)) * 10) / 10).toFixed(1)} MB`
      : `${Math.floor(limit / 1024)} KB`;
  return `552 5.3.4 Message size exceeds fixed maximum message size of ${limit} bytes (${readable}): scan fewer pages or at a lower resolution`;
}

function storageFailureReply(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (DISK_FULL_CODES.has(code)) return '452 4.3.1 Insufficient system storage';
  return '451 4.3.0 Could not store the message, try again later';
}
