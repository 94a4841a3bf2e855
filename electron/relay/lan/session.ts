/**
 * One LAN-side SMTP session: plain, anonymous ESMTP for office devices, lenient where devices bend
 * the rules (HELO without a name, early talkers, unbracketed addresses, unadvertised AUTH), strict
 * where safety needs it (DATA ends only on CRLF.CRLF, sizes and counts capped, 250 only once the
 * message is on disk).
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SpoolWriter, SpooledMessage, Envelope } from '../spool.ts';
import { DISK_FULL_CODES } from '../spool.ts';
import { noteStreamed } from '../spent-buffers.ts';
import { DataReader } from './data-reader.ts';
import { parsePathArgument, printable } from './address.ts';

export interface SessionLimits {
  maxMessageBytes: number;
  maxRecipients: number;
  idleTimeoutMs: number;
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
  denied(ip: string, sender: string): void;
  hasRoomFor(bytes: number): Promise<boolean>;
  beginMessage(envelope: Omit<Envelope, 'id'>): Promise<SpoolWriter>;
  accepted(message: SpooledMessage, info: SessionInfo): void;
  rejected(info: SessionInfo, reason: string, envelope: { mailFrom: string; rcptTo: string[] }): void;
  /** True once the relay is shutting down: new transactions get 421. */
  draining(): boolean;
}

const MAX_LINE_BYTES = 4096;
/** Postfix's smtpd_hard_error_limit is 20; a device that bad is not going to recover. */
const MAX_ERRORS = 20;
/** Paused reading past this much unsent reply data: a pipelining flood cannot grow our memory. */
const MAX_PENDING_OUTPUT = 256 * 1024;

type Phase = 'command' | 'data' | 'auth-plain' | 'auth-login-user' | 'auth-login-password' | 'closed';

export class LanSession {
  private socket: Socket;
  private input: Buffer = Buffer.alloc(0);
  private phase: Phase = 'command';
  private busy = false;
  private discardingLongLine = false;
  private errors = 0;
  private helo: string | null = null;
  private esmtp = false;
  private authUser: string | null = null;
  private pendingAuthUser = '';
  private mailFrom: string | null = null;
  private rcptTo: string[] = [];
  private eightBit = false;
  private smtpUtf8 = false;
  private dataReader: DataReader | null = null;
  private writer: SpoolWriter | null = null;
  private writeChain: Promise<void> = Promise.resolve();
  private writeError: NodeJS.ErrnoException | null = null;
  private receivedBytes = 0;
  private oversize = false;
  private tooManyRecipientsSeen = false;
  private readonly info: SessionInfo;

  constructor(
    socket: Socket,
    private readonly host: SessionHost,
    info: SessionInfo,
  ) {
    this.socket = socket;
    this.info = { ...info };
    this.attach(socket);
    socket.setTimeout(host.limits.idleTimeoutMs);
    // Greet at once: no early-talker pause; input that arrives before this is just buffered.
    this.reply(`220 ${host.hostname} ESMTP RelayDesk ready`);
  }

  get clientIp(): string {
    return this.info.remoteAddress;
  }

  /** Closes an idle session during shutdown; a session mid-DATA finishes first. */
  shutdownIfIdle(): boolean {
    if (this.phase === 'data' || this.busy) return false;
    this.replyAndClose('421 4.3.2 RelayDesk is shutting down, try again later');
    return true;
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => {
      this.replyAndClose('421 4.4.2 Idle timeout, closing connection');
    });
    socket.on('error', () => this.cleanup());
    socket.on('close', () => this.cleanup());
    socket.on('drain', () => {
      if (!this.busy && this.phase !== 'closed') socket.resume();
    });
  }

  private onData(chunk: Buffer): void {
    noteStreamed(chunk.length);
    if (this.phase === 'closed') return;
    this.input = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
    this.pump();
  }

  /** Processes buffered input until it runs out or an async step (spool, auth) is pending. */
  private pump(): void {
    // STARTTLS swaps this.socket mid-loop: uncork the socket that was corked.
    const corked = this.socket;
    corked.cork();
    try {
      while (!this.busy && this.phase !== 'closed' && this.input.length > 0) {
        if (this.phase === 'data') {
          this.consumeData();
          continue;
        }
        const newline = this.input.indexOf(0x0a);
        if (newline < 0) {
          if (this.input.length > MAX_LINE_BYTES) {
            this.input = Buffer.alloc(0);
            if (!this.discardingLongLine) this.error('500 5.5.2 Line too long');
            this.discardingLongLine = true;
          }
          break;
        }
        const lineBytes = this.input.subarray(0, newline);
        this.input = this.input.subarray(newline + 1);
        if (this.discardingLongLine) {
          this.discardingLongLine = false;
          continue;
        }
        if (lineBytes.length > MAX_LINE_BYTES) {
          this.error('500 5.5.2 Line too long');
          continue;
        }
        // Commands may end in CRLF or a bare LF (many devices); the CR is not part of the command.
        const line = lineBytes.toString('latin1').replace(/\r$/, '');
        this.handleLine(line);
      }
    } finally {
      corked.uncork();
    }
    if (this.socket.writableLength > MAX_PENDING_OUTPUT) this.socket.pause();
  }

  private handleLine(line: string): void {
    switch (this.phase) {
      case 'auth-plain':
        this.finishAuthPlain(line);
        return;
      case 'auth-login-user':
        this.authLoginUser(line);
        return;
      case 'auth-login-password':
        this.authLoginPassword(line);
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
        this.resetTransaction();
        this.reply('250 2.0.0 Ok');
        return;
      case 'NOOP':
        this.reply('250 2.0.0 Ok');
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
        this.reply('252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery');
        return;
      case 'HELP':
        this.reply('214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT AUTH VRFY HELP');
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

  private hello(verb: 'EHLO' | 'HELO', name: string): void {
    // HELO/EHLO without a name (a UPS, a drive controller) still gets a full session.
    this.resetTransaction();
    this.helo = printable(name, 128) || this.info.remoteAddress;
    this.esmtp = verb === 'EHLO';
    const greeting = `${this.host.hostname} Hello ${this.helo} [${this.info.remoteAddress}]`;
    if (!this.esmtp) {
      this.reply(`250 ${greeting}`);
      return;
    }
    const lines = [
      greeting,
      'PIPELINING',
      `SIZE ${this.host.limits.maxMessageBytes}`,
      '8BITMIME',
      'ENHANCEDSTATUSCODES',
    ];
    if (this.host.startTls && !this.info.tls) lines.push('STARTTLS');
    // Plain-text AUTH on the LAN is deliberate: devices that insist on it get it (PLAIN and LOGIN only;
    // a device that picks CRAM-MD5 or NTLM when offered fails).
    lines.push('AUTH PLAIN LOGIN', 'AUTH=PLAIN LOGIN', 'HELP');
    this.reply(lines.map((text, i) => `250${i === lines.length - 1 ? ' ' : '-'}${text}`).join('\r\n'));
  }

  private mail(argument: string): void {
    if (this.host.draining()) {
      this.replyAndClose('421 4.3.2 RelayDesk is shutting down, try again later');
      return;
    }
    if (this.mailFrom !== null) {
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
    if (!this.host.isAllowed(ip) && !(this.authUser !== null && this.host.authGrantsRelay)) {
      this.host.denied(ip, address);
      this.error(
        `550 5.7.1 Client ${ip} is not allowed to relay through RelayDesk; add it to "allowedClients" in the RelayDesk settings`,
      );
      return;
    }
    const sizeParam = params.get('SIZE');
    const declaredSize = typeof sizeParam === 'string' && /^\d+$/.test(sizeParam) ? Number(sizeParam) : 0;
    if (declaredSize > this.host.limits.maxMessageBytes) {
      this.error(tooBigReply(this.host.limits.maxMessageBytes));
      return;
    }
    const body = params.get('BODY');
    this.eightBit = typeof body === 'string' && body.toUpperCase() === '8BITMIME';
    this.smtpUtf8 = params.has('SMTPUTF8');
    this.runAsync(async () => {
      if (!(await this.host.hasRoomFor(declaredSize))) {
        this.reply('452 4.3.1 Insufficient system storage');
        return;
      }
      this.mailFrom = address;
      this.rcptTo = [];
      this.tooManyRecipientsSeen = false;
      this.reply('250 2.1.0 Ok');
    });
  }

  private rcpt(argument: string): void {
    if (this.mailFrom === null) {
      this.error('503 5.5.1 Error: need MAIL command');
      return;
    }
    const parsed = parsePathArgument(argument, 'TO');
    if (!parsed.ok) {
      this.error(parsed.reply);
      return;
    }
    if (this.rcptTo.length >= this.host.limits.maxRecipients) {
      this.tooManyRecipientsSeen = true;
      // 452 (not 5xx) per RFC 5321 §4.5.3.1.10: the client sends the rest in another transaction.
      this.reply('452 4.5.3 Error: too many recipients');
      return;
    }
    this.rcptTo.push(parsed.value.address);
    this.reply('250 2.1.5 Ok');
  }

  private data(): void {
    if (this.mailFrom === null) {
      this.error('503 5.5.1 Error: need MAIL command');
      return;
    }
    if (this.rcptTo.length === 0) {
      this.error(
        this.tooManyRecipientsSeen
          ? '452 4.5.3 Error: too many recipients'
          : '554 5.5.1 Error: no valid recipients',
      );
      return;
    }
    const envelope: Omit<Envelope, 'id'> = {
      receivedAt: Date.now(),
      client: {
        ip: this.info.remoteAddress,
        port: this.info.remotePort,
        helo: this.helo ?? '',
        listener: this.info.listener,
        tls: this.info.tls,
        authUser: this.authUser,
      },
      mailFrom: this.mailFrom,
      rcptTo: this.rcptTo,
      eightBit: this.eightBit,
      smtpUtf8: this.smtpUtf8,
    };
    this.runAsync(async () => {
      try {
        this.writer = await this.host.beginMessage(envelope);
      } catch (error) {
        this.reply(storageFailureReply(error));
        return;
      }
      this.phase = 'data';
      this.dataReader = new DataReader();
      this.receivedBytes = 0;
      this.oversize = false;
      this.writeError = null;
      this.writeChain = Promise.resolve();
      this.reply('354 End data with <CR><LF>.<CR><LF>');
    });
  }

  private consumeData(): void {
    const reader = this.dataReader!;
    const { body, done, rest } = reader.feed(this.input);
    this.input = rest;
    const limit = this.host.limits.maxMessageBytes;
    for (const part of body) {
      this.receivedBytes += part.length;
      if (this.oversize) continue;
      if (this.receivedBytes > limit) {
        // Cut off at the limit: drop the file now and discard the rest without keeping it.
        this.oversize = true;
        this.abortWriter();
        continue;
      }
      this.queueWrite(part);
    }
    if (this.oversize && this.receivedBytes > 2 * limit && !done) {
      // A client that keeps streaming far past the limit is not going to stop by itself.
      this.replyAndClose(tooBigReply(limit), true);
      return;
    }
    if (done) this.finishData();
  }

  private queueWrite(part: Buffer): void {
    // The socket's buffer may be reused after this tick only if we copied; subarrays of a received
    // chunk stay valid, so keep the reference and write in order.
    const writer = this.writer!;
    this.writeChain = this.writeChain.then(async () => {
      if (this.writeError) return;
      try {
        await writer.write(part);
      } catch (error) {
        this.writeError = error as NodeJS.ErrnoException;
      }
    });
    // Back-pressure: a fast sender on a slow disk pauses until the spool catches up.
    if (writer.bytesWritten + 4 * 1024 * 1024 < this.receivedBytes) {
      this.socket.pause();
      void this.writeChain.then(() => {
        if (this.phase !== 'closed' && !this.busy) this.socket.resume();
      });
    }
  }

  private finishData(): void {
    const writer = this.writer;
    this.phase = 'command';
    this.dataReader = null;
    const envelope = { mailFrom: this.mailFrom ?? '', rcptTo: this.rcptTo };
    if (this.oversize || !writer) {
      this.resetTransaction();
      this.host.rejected(this.info, 'message too big', envelope);
      this.reply(tooBigReply(this.host.limits.maxMessageBytes));
      return;
    }
    this.runAsync(async () => {
      await this.writeChain;
      if (this.writeError) {
        await writer.abort();
        this.writer = null;
        this.resetTransaction();
        this.host.rejected(
          this.info,
          `spool write failed: ${this.writeError.code ?? this.writeError.message}`,
          envelope,
        );
        this.reply(storageFailureReply(this.writeError));
        return;
      }
      let message: SpooledMessage;
      try {
        message = await writer.commit();
      } catch (error) {
        await writer.abort();
        this.writer = null;
        this.resetTransaction();
        this.host.rejected(
          this.info,
          `spool commit failed: ${(error as NodeJS.ErrnoException).code ?? ''}`,
          envelope,
        );
        this.reply(storageFailureReply(error));
        return;
      }
      this.writer = null;
      this.resetTransaction();
      // The message is on disk: answer first, then log and queue it (which starts its delivery).
      this.reply(`250 2.0.0 Ok: queued as ${message.envelope.id}`);
      this.host.accepted(message, this.info);
    });
  }

  private auth(argument: string): void {
    if (this.authUser !== null) {
      this.error('503 5.5.1 Error: already authenticated');
      return;
    }
    if (this.mailFrom !== null) {
      this.error('503 5.5.1 Error: AUTH not allowed during a mail transaction');
      return;
    }
    const [mechanismRaw = '', initial] = argument.split(/\s+/, 2);
    const mechanism = mechanismRaw.toUpperCase();
    if (mechanism === 'PLAIN') {
      if (initial !== undefined) this.finishAuthPlain(initial);
      else {
        this.phase = 'auth-plain';
        this.reply('334 ');
      }
      return;
    }
    if (mechanism === 'LOGIN') {
      if (initial !== undefined) this.authLoginUser(initial);
      else {
        this.phase = 'auth-login-user';
        this.reply('334 VXNlcm5hbWU6');
      }
      return;
    }
    this.error('504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)');
  }

  private finishAuthPlain(response: string): void {
    this.phase = 'command';
    if (response === '*') {
      this.error('501 5.7.0 Authentication cancelled');
      return;
    }
    const decoded = decodeBase64(response);
    if (decoded === null) {
      this.error('501 5.5.2 Cannot decode AUTH response');
      return;
    }
    const [, user = '', password = ''] = decoded.split('\0');
    this.checkCredentials(user, password);
  }

  private authLoginUser(response: string): void {
    if (response === '*') {
      this.phase = 'command';
      this.error('501 5.7.0 Authentication cancelled');
      return;
    }
    const user = decodeBase64(response);
    if (user === null) {
      this.phase = 'command';
      this.error('501 5.5.2 Cannot decode AUTH response');
      return;
    }
    this.pendingAuthUser = user;
    this.phase = 'auth-login-password';
    this.reply('334 UGFzc3dvcmQ6');
  }

  private authLoginPassword(response: string): void {
    this.phase = 'command';
    if (response === '*') {
      this.error('501 5.7.0 Authentication cancelled');
      return;
    }
    const password = decodeBase64(response);
    if (password === null) {
      this.error('501 5.5.2 Cannot decode AUTH response');
      return;
    }
    this.checkCredentials(this.pendingAuthUser, password);
  }

  private checkCredentials(user: string, password: string): void {
    this.runAsync(async () => {
      const ok = await this.host.authenticate(this.info.remoteAddress, user, password);
      if (ok) {
        this.authUser = user;
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
    if (this.input.length > 0) {
      // RFC 3207 §4.2 / CVE-2011-0411: nothing pipelined after STARTTLS may survive into the TLS session.
      this.input = Buffer.alloc(0);
    }
    this.reply('220 2.0.0 Ready to start TLS');
    const plain = this.socket;
    // The 220 must be on the wire before the handshake takes the socket over.
    while (plain.writableCorked > 0) plain.uncork();
    plain.removeAllListeners('data');
    plain.removeAllListeners('timeout');
    plain.removeAllListeners('drain');
    const secure = this.host.startTls(plain);
    watchHandshake(secure, (error) => this.host.tlsFailed(this.info.remoteAddress, error));
    this.socket = secure;
    this.info.tls = true;
    this.helo = null;
    this.resetTransaction();
    this.attach(secure);
    secure.setTimeout(this.host.limits.idleTimeoutMs);
  }

  /** Runs an async step with input processing paused, then continues with what is buffered. */
  private runAsync(step: () => Promise<void>): void {
    this.busy = true;
    this.socket.pause();
    step()
      .catch(() => this.replyAndClose('451 4.3.0 Internal error, try again later'))
      .finally(() => {
        this.busy = false;
        if (this.phase === 'closed') return;
        this.socket.resume();
        this.pump();
      });
  }

  private resetTransaction(): void {
    if (this.writer) this.abortWriter();
    this.mailFrom = null;
    this.rcptTo = [];
    this.eightBit = false;
    this.smtpUtf8 = false;
  }

  private abortWriter(): void {
    const writer = this.writer;
    this.writer = null;
    if (writer) void this.writeChain.then(() => writer.abort());
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
    if (this.phase === 'closed' || this.socket.destroyed) return;
    this.socket.write(`${text}\r\n`);
  }

  /** `stopReading`: for a client that keeps sending regardless; it is held off by TCP until closed. */
  private replyAndClose(text: string, stopReading = false): void {
    if (this.phase === 'closed') return;
    this.reply(text);
    this.cleanup();
    this.socket.end();
    if (stopReading) this.socket.pause();
    // A client that never reads must not keep the socket open forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private cleanup(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.input = Buffer.alloc(0);
    // A half-received message was never acknowledged: it is dropped, never delivered.
    if (this.writer) this.abortWriter();
  }
}

/** Reports a failed handshake once; errors after the handshake are ordinary connection ends. */
export function watchHandshake(socket: TLSSocket, report: (error: Error) => void): void {
  socket.once('error', report);
  socket.once('secure', () => socket.off('error', report));
}

function decodeBase64(text: string): string | null {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed)) return null;
  return Buffer.from(trimmed, 'base64').toString('utf8');
}

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
