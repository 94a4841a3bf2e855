/**
 * Runs a LanSession on a socket: feeds it what arrives, writes its replies, swaps in TLS at STARTTLS,
 * and owns the timers (the idle timer, and one timer for the session's next deadline).
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { noteStreamed } from '../spent-buffers.ts';
import { LanSession, type SessionHost, type SessionInfo } from './session.ts';

/** Reading pauses past this much unsent reply data: a pipelining flood cannot grow our memory. */
const MAX_PENDING_OUTPUT = 256 * 1024;
/** A client that never reads its last reply must not keep the socket open forever. */
const CLOSE_GRACE_MS = 2000;

export class LanConnection {
  private socket: Socket;
  private readonly session: LanSession;
  private sessionWantsInput = true;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;
  private ended = false;
  /** Replies of the chunk being read, written together when it is done (null outside a chunk). */
  private batch: string | null = null;

  /** `onEnd`: once, when the session is over (QUIT answered, timed out, refused) or the socket is gone. */
  constructor(
    socket: Socket,
    private readonly host: SessionHost,
    info: SessionInfo,
    private readonly onEnd: () => void,
  ) {
    this.socket = socket;
    this.session = new LanSession(host, info, {
      write: (reply) => this.write(reply),
      end: (stopReading) => this.end(stopReading),
      upgradeToTls: () => this.upgradeToTls(),
      setReading: (reading) => {
        this.sessionWantsInput = reading;
        this.updateFlow();
      },
      later: (step) => setImmediate(() => this.inBatch(step)),
    });
    this.attach(socket);
    socket.once('close', () => this.finish());
    this.session.start();
    this.armDeadline();
  }

  get isClosed(): boolean {
    return this.session.isClosed;
  }

  /** Closes an idle session during shutdown; a session mid-DATA finishes first. */
  shutdownIfIdle(): boolean {
    return this.session.shutdownIfIdle();
  }

  private attach(socket: Socket): void {
    socket.setTimeout(this.host.limits.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      noteStreamed(chunk.length);
      this.inBatch(() => this.session.receive(chunk));
    });
    socket.on('timeout', () => this.session.idle());
    socket.on('error', () => this.finish());
    socket.on('drain', () => this.updateFlow());
  }

  /**
   * Replies to pipelined commands leave together, as one write: the 256 NOOPs a turn answers are one
   * 3.5 KB write, not 256 queued writes with their own bookkeeping.
   */
  private inBatch(step: () => void): void {
    this.batch = '';
    try {
      step();
    } finally {
      this.flushBatch();
    }
    this.armDeadline();
  }

  private write(reply: string): void {
    if (this.batch !== null) {
      this.batch += `${reply}\r\n`;
      return;
    }
    this.send(`${reply}\r\n`);
  }

  private flushBatch(): void {
    const batch = this.batch;
    this.batch = null;
    if (batch) this.send(batch);
  }

  private send(text: string): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.write(text);
    if (socket.writableLength > MAX_PENDING_OUTPUT && !socket.isPaused()) socket.pause();
  }

  private updateFlow(): void {
    const socket = this.socket;
    if (this.ended || socket.destroyed) return;
    if (this.sessionWantsInput && socket.writableLength <= MAX_PENDING_OUTPUT) {
      if (socket.isPaused()) socket.resume();
    } else if (!socket.isPaused()) {
      socket.pause();
    }
    this.armDeadline();
  }

  private end(stopReading: boolean): void {
    const socket = this.socket;
    this.flushBatch();
    this.clearDeadline();
    socket.end();
    if (stopReading) socket.pause();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
    // The session is over even while its socket lingers: it no longer counts as a connection.
    this.finish();
  }

  private upgradeToTls(): void {
    const plain = this.socket;
    // The 220 must be on the wire before the handshake takes the socket over.
    this.flushBatch();
    plain.removeAllListeners('data');
    plain.removeAllListeners('timeout');
    plain.removeAllListeners('drain');
    plain.setTimeout(0);
    const secure: TLSSocket = this.host.startTls!(plain);
    watchHandshake(secure, (error) => this.host.tlsFailed(this.session.clientIp, error));
    this.socket = secure;
    this.attach(secure);
  }

  private armDeadline(): void {
    const at = this.session.deadline();
    if (at === null) {
      this.clearDeadline();
      return;
    }
    // Deadlines only move later (more data, time held by the spool): a timer set earlier still
    // stands, and re-arms for the later one when it fires.
    if (this.deadlineTimer && this.armedFor <= at) return;
    this.clearDeadline();
    this.armedFor = at;
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = null;
        this.armedFor = Infinity;
        this.session.checkDeadline();
        this.armDeadline();
      },
      Math.max(0, at - performance.now()),
    );
  }

  private clearDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.armedFor = Infinity;
  }

  private finish(): void {
    this.session.connectionLost();
    this.clearDeadline();
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
  }
}

/** Reports a failed handshake once; errors after the handshake are ordinary connection ends. */
export function watchHandshake(socket: TLSSocket, report: (error: Error) => void): void {
  socket.once('error', report);
  socket.once('secure', () => socket.off('error', report));
}
