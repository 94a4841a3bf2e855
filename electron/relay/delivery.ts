/**
 * The delivery scheduler: takes ready messages from the queue, keeps within the upstream's
 * connection and per-minute limits, sends through the transport, and turns each answer into queue
 * state through the diagnosis table.
 */
import { diagnose, type Diagnosis, type DiagnosisContext } from './diagnosis.ts';
import type { Queue, AttemptResult } from './queue.ts';
import type { SpooledMessage } from './spool.ts';
import type { OutboundJob, Transport } from './transport.ts';
import { describeFailure, type UpstreamFailure } from './upstream-failure.ts';

export interface DeliveryOptions {
  queue: Queue;
  transport: Transport;
  maxConnections: number;
  messagesPerMinute: number;
  prepare: (message: SpooledMessage) => Promise<OutboundJob>;
  diagnosisContext: DiagnosisContext;
  onAttempt?: (event: AttemptEvent) => void;
  /** An attempt whose outcome the spool could not record; the queue has deferred the message. To log. */
  onError: (message: SpooledMessage, error: unknown) => void;
}

export type AttemptEvent =
  | { kind: 'success'; message: SpooledMessage; response: string; at: number }
  | { kind: 'failure'; message: SpooledMessage; failure: UpstreamFailure; diagnosis: Diagnosis; at: number };

export interface Delivery {
  /** Look for work now (a message arrived, a flush, a hold lifted). */
  kick(): void;
  /** Stops taking new work and waits (bounded) for attempts in flight. */
  stop(timeoutMs: number): Promise<void>;
  readonly inFlight: number;
}

const WINDOW_MS = 60_000;

export function createDelivery(options: DeliveryOptions): Delivery {
  const { queue, transport } = options;
  const inFlight = new Set<Promise<void>>();
  /** Start times of the attempts in the last minute: a sliding window for messagesPerMinute. */
  const recentStarts: number[] = [];
  let timer: NodeJS.Timeout | null = null;
  let timerAt = 0;
  let stopping = false;

  function schedule(at: number): void {
    if (stopping) return;
    if (timer && timerAt <= at) return;
    if (timer) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(
      () => {
        timer = null;
        kick();
      },
      Math.max(0, at - Date.now()),
    );
  }

  function kick(): void {
    if (stopping) return;
    const now = Date.now();
    while (recentStarts.length > 0 && recentStarts[0]! <= now - WINDOW_MS) recentStarts.shift();
    while (inFlight.size < options.maxConnections) {
      if (recentStarts.length >= options.messagesPerMinute) {
        schedule(recentStarts[0]! + WINDOW_MS);
        return;
      }
      const message = queue.take(now);
      if (!message) break;
      recentStarts.push(now);
      // A rejection here would end the process: a file system that refuses must only defer mail.
      const run = deliver(message)
        .catch((error: unknown) => options.onError(message, error))
        .finally(() => {
          inFlight.delete(run);
          kick();
        });
      inFlight.add(run);
    }
    // With every connection busy, the next completion kicks again: no need to scan the queue now.
    if (inFlight.size >= options.maxConnections) return;
    const wake = queue.nextWakeAt();
    if (wake !== null && Number.isFinite(wake)) schedule(wake);
  }

  async function deliver(message: SpooledMessage): Promise<void> {
    const id = message.envelope.id;
    let result: AttemptResult;
    try {
      const job = await options.prepare(message);
      const outcome = await transport.send(job);
      result = outcome.ok
        ? interpretSuccess(outcome.recipients, message)
        : interpretFailure(outcome.failure, job, message);
    } catch (error) {
      const failure: UpstreamFailure = {
        kind: 'network',
        stage: 'message',
        code: (error as NodeJS.ErrnoException).code ?? 'EINTERNAL',
        message: (error as Error).message,
      };
      result = interpretFailure(failure, { rcptTo: pendingOf(message) }, message);
    }
    await queue.complete(id, result);
  }

  function interpretSuccess(
    recipients: { address: string; accepted: boolean; response: string; failure: UpstreamFailure | null }[],
    message: SpooledMessage,
  ): AttemptResult {
    const result: AttemptResult = { delivered: [], failed: [] };
    let anyAccepted = false;
    for (const r of recipients) {
      if (r.accepted) {
        anyAccepted = true;
        result.delivered.push({ address: r.address, response: r.response });
        continue;
      }
      const failure: UpstreamFailure = r.failure ?? {
        kind: 'network',
        stage: 'rcpt',
        code: 'EUNKNOWN',
        message: r.response,
      };
      const diagnosis = diagnose(failure, options.diagnosisContext);
      result.failed.push({ address: r.address, response: r.response, diagnosis });
      if (diagnosis.action === 'hold') queue.hold(diagnosis, r.response);
      options.onAttempt?.({ kind: 'failure', message, failure, diagnosis, at: Date.now() });
    }
    if (anyAccepted) {
      queue.unhold();
      options.onAttempt?.({
        kind: 'success',
        message,
        response: result.delivered[0]!.response,
        at: Date.now(),
      });
    }
    return result;
  }

  function interpretFailure(
    failure: UpstreamFailure,
    job: Pick<OutboundJob, 'rcptTo'>,
    message: SpooledMessage,
  ): AttemptResult {
    const diagnosis = diagnose(failure, options.diagnosisContext);
    const response = describeFailure(failure);
    if (diagnosis.action === 'hold') queue.hold(diagnosis, response);
    options.onAttempt?.({ kind: 'failure', message, failure, diagnosis, at: Date.now() });
    return { delivered: [], failed: job.rcptTo.map((address) => ({ address, response, diagnosis })) };
  }

  return {
    kick,
    async stop(timeoutMs) {
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = null;
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((resolve) => {
          deadline = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(deadline);
      await transport.close();
    },
    get inFlight() {
      return inFlight.size;
    },
  };
}

function pendingOf(message: SpooledMessage): string[] {
  return message.state.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
}
