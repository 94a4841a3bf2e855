/**
 * The delivery queue: which spooled message goes next, what an upstream's answer does to it, and
 * when the whole queue waits for the admin (held). Whether a failure is retried, held or final is
 * decided by the diagnosis table, not here.
 */
import { holdsRelay, type Diagnosis } from './diagnosis.ts';
import type { MessageState, Spool, SpooledMessage } from './spool.ts';
import type { MessageStatus, QueueCounts, QueueItem } from './views.ts';

export type { MessageStatus, QueueCounts };

export interface QueueEntry extends QueueItem {
  recipients: MessageState['recipients'];
}

export interface HoldInfo {
  since: number;
  diagnosis: Diagnosis;
  /** The upstream's reply or the failure, as a line. */
  reason: string;
  /** When the relay tries the upstream again by itself. */
  retryAt: number;
}

export interface RetryPolicy {
  retryForHours: number;
  minRetrySeconds: number;
  maxRetrySeconds: number;
}

/** What one delivery attempt came back with, per recipient. */
export interface AttemptResult {
  /** Recipients the upstream took. */
  delivered: { address: string; response: string }[];
  /** Recipients that failed, with the diagnosis deciding what happens to them. */
  failed: { address: string; response: string; diagnosis: Diagnosis }[];
}

export interface QueueEvents {
  delivered(message: SpooledMessage, recipients: { address: string; response: string }[]): void;
  deferred(message: SpooledMessage, response: string, diagnosis: Diagnosis, retryAt: number): void;
  failed(
    message: SpooledMessage,
    recipients: { address: string; response: string }[],
    diagnosis: Diagnosis,
  ): void;
  held(hold: HoldInfo): void;
  released(): void;
  /** Something became ready to send. */
  ready(): void;
}

function entryOf(m: SpooledMessage, status: MessageStatus, holdRetryAt: number | null): QueueEntry {
  return {
    id: m.envelope.id,
    status,
    receivedAt: m.envelope.receivedAt,
    client: m.envelope.client.ip,
    mailFrom: m.envelope.mailFrom,
    rcptTo: m.envelope.rcptTo,
    size: m.size,
    attempts: m.state.attempts,
    nextAttemptAt: status === 'deferred' ? m.state.nextAttemptAt : status === 'held' ? holdRetryAt : null,
    lastError: m.state.lastError,
    lastDiagnosis: m.state.lastDiagnosis,
    recipients: m.state.recipients,
  };
}

/** Queue entries read from the spool while no relay runs (nothing is active or held then). */
export function offlineEntries(messages: SpooledMessage[], now = Date.now()): QueueEntry[] {
  return messages.map((m) => {
    const failed = m.state.recipients.every((r) => r.status !== 'pending');
    return entryOf(m, failed ? 'failed' : m.state.nextAttemptAt > now ? 'deferred' : 'queued', null);
  });
}

/** How many messages are in each state: the queue's own counts, `relaydesk status` and the app's. */
export function countEntries(entries: Iterable<{ status: MessageStatus }>): QueueCounts {
  const counts: QueueCounts = { queued: 0, active: 0, deferred: 0, held: 0, failed: 0 };
  for (const e of entries) counts[e.status] += 1;
  return counts;
}

export function backoffSeconds(attempts: number, policy: RetryPolicy): number {
  const exponent = Math.max(0, attempts - 1);
  return Math.min(policy.maxRetrySeconds, policy.minRetrySeconds * 2 ** Math.min(exponent, 30));
}

export interface Queue {
  add(message: SpooledMessage): void;
  /** The oldest message ready to send now, marked active; null when none (or held). */
  take(now?: number): SpooledMessage | null;
  /**
   * Ends an attempt; every path through delivery calls exactly one of complete/release. Rejects when
   * the outcome could not be written to the spool: the message is then deferred, nothing is lost.
   */
  complete(id: string, result: AttemptResult, now?: number): Promise<void>;
  /** The attempt did not happen for a reason that is not the message's (shutdown): back to ready. */
  release(id: string): void;
  hold(diagnosis: Diagnosis, reason: string, now?: number): void;
  unhold(): void;
  readonly holdInfo: HoldInfo | null;
  /** Retry everything now, like `postqueue -f`; also lifts a hold. Returns how many messages are waiting. */
  flush(): number;
  retry(id: string): boolean;
  remove(id: string): Promise<boolean>;
  list(now?: number): QueueEntry[];
  counts(now?: number): QueueCounts;
  /** When the next deferred message (or the held upstream) is due, for the scheduler's timer. */
  nextWakeAt(): number | null;
  readonly size: number;
}

export function createQueue(spool: Spool, policy: RetryPolicy, events: QueueEvents): Queue {
  const messages = new Map<string, SpooledMessage>();
  const active = new Set<string>();
  let hold: HoldInfo | null = null;
  /** Failed probes since the hold began: the probe interval backs off like a message's retries. */
  let holdProbes = 0;
  /** The message taken last: a probe while held takes the one after it. */
  let lastTakenId: string | null = null;

  const pending = (m: SpooledMessage) => m.state.recipients.filter((r) => r.status === 'pending');
  const isFailed = (m: SpooledMessage) => pending(m).length === 0;

  function statusOf(m: SpooledMessage, now: number): MessageStatus {
    if (active.has(m.envelope.id)) return 'active';
    if (isFailed(m)) return 'failed';
    if (hold) return 'held';
    return m.state.nextAttemptAt > now ? 'deferred' : 'queued';
  }

  const entry = (m: SpooledMessage, now: number) => entryOf(m, statusOf(m, now), hold?.retryAt ?? null);

  async function complete(id: string, result: AttemptResult, now = Date.now()): Promise<void> {
    const message = messages.get(id);
    active.delete(id);
    if (!message) return;
    const state = message.state;
    state.attempts += 1;
    const byAddress = new Map(
      state.recipients.filter((r) => r.status === 'pending').map((r) => [r.address, r]),
    );
    for (const r of byAddress.values()) {
      r.attempts += 1;
      r.firstAttemptAt ??= now;
      r.lastAttemptAt = now;
    }
    for (const d of result.delivered) {
      const r = byAddress.get(d.address);
      if (r) Object.assign(r, { status: 'delivered', response: d.response });
    }

    const finalFailures: { address: string; response: string }[] = [];
    let finalDiagnosis: Diagnosis | null = null;
    let retryDiagnosis: { response: string; diagnosis: Diagnosis } | null = null;
    for (const f of result.failed) {
      const r = byAddress.get(f.address);
      if (!r) continue;
      r.response = f.response;
      state.lastError = f.response;
      state.lastDiagnosis = f.diagnosis.id;
      if (f.diagnosis.action === 'fail-recipient' || f.diagnosis.action === 'fail-message') {
        r.status = 'failed';
        finalFailures.push({ address: f.address, response: f.response });
        finalDiagnosis = f.diagnosis;
      } else {
        retryDiagnosis = f;
      }
    }

    if (finalFailures.length > 0 && finalDiagnosis) events.failed(message, finalFailures, finalDiagnosis);

    const stillPending = pending(message);
    if (stillPending.length > 0 && retryDiagnosis) {
      const expired = now - message.envelope.receivedAt > policy.retryForHours * 3600_000;
      if (expired && retryDiagnosis.diagnosis.action === 'retry') {
        const response = `4.4.7 Gave up after ${policy.retryForHours} hours (queue.retryForHours); last reply: ${retryDiagnosis.response}`;
        for (const r of stillPending) Object.assign(r, { status: 'failed', response });
        state.lastError = response;
        events.failed(
          message,
          stillPending.map((r) => ({ address: r.address, response })),
          retryDiagnosis.diagnosis,
        );
      } else if (retryDiagnosis.diagnosis.action === 'retry') {
        const afterSeconds =
          retryDiagnosis.diagnosis.retryAfterSeconds ?? backoffSeconds(state.attempts, policy);
        state.nextAttemptAt = now + afterSeconds * 1000;
        events.deferred(message, retryDiagnosis.response, retryDiagnosis.diagnosis, state.nextAttemptAt);
      } else {
        // Held: the message waits for the admin's fix, it does not age out.
        state.nextAttemptAt = 0;
      }
    }

    let storageError: unknown = null;
    try {
      if (pending(message).length === 0 && message.state.recipients.every((r) => r.status === 'delivered')) {
        messages.delete(id);
        await spool.remove(id);
      } else {
        await spool.saveState(id, state);
      }
    } catch (error) {
      // The attempt happened but its outcome is not on disk (a full disk, or a file another program
      // holds past fs-retry's retries). The message waits for its next turn, which writes the state
      // again; the error goes to the caller to be logged (issue 11).
      storageError = error;
      if (pending(message).length > 0) {
        state.nextAttemptAt = Math.max(
          state.nextAttemptAt,
          now + backoffSeconds(state.attempts, policy) * 1000,
        );
      }
    }
    // Announced only once the spool knows: a crash in between costs a log line, not a second copy.
    if (result.delivered.length > 0) events.delivered(message, result.delivered);
    events.ready();
    if (storageError) throw storageError;
  }

  function unhold(): void {
    holdProbes = 0;
    if (!hold) return;
    hold = null;
    events.released();
    events.ready();
  }

  return {
    add(message) {
      messages.set(message.envelope.id, message);
      events.ready();
    },
    take(now = Date.now()) {
      if (hold) {
        // While held, one message at a time probes whether the admin fixed the upstream.
        if (now < hold.retryAt || active.size > 0) return null;
        // Each probe takes the message after the one tried last, so that one message that keeps
        // failing cannot be the only one ever tried.
        const ready = [...messages.values()].filter((m) => !isFailed(m));
        const next = ready[(ready.findIndex((m) => m.envelope.id === lastTakenId) + 1) % ready.length];
        if (!next) return null;
        lastTakenId = next.envelope.id;
        active.add(next.envelope.id);
        hold.retryAt = Number.POSITIVE_INFINITY;
        return next;
      }
      // The map keeps arrival order, so the first ready message is the oldest ready one.
      for (const m of messages.values()) {
        if (active.has(m.envelope.id) || isFailed(m) || m.state.nextAttemptAt > now) continue;
        active.add(m.envelope.id);
        lastTakenId = m.envelope.id;
        return m;
      }
      return null;
    },
    complete,
    release(id) {
      active.delete(id);
    },
    hold(diagnosis, reason, now = Date.now()) {
      // A problem of one message or one recipient never stops the others.
      if (!holdsRelay(diagnosis)) return;
      holdProbes += 1;
      const first = hold === null;
      hold = {
        since: hold?.since ?? now,
        diagnosis,
        reason,
        retryAt: now + backoffSeconds(holdProbes, policy) * 1000,
      };
      if (first) events.held(hold);
    },
    unhold,
    get holdInfo() {
      return hold;
    },
    flush() {
      let waiting = 0;
      for (const m of messages.values()) {
        if (isFailed(m)) continue;
        m.state.nextAttemptAt = 0;
        waiting += 1;
      }
      unhold();
      events.ready();
      return waiting;
    },
    retry(id) {
      const m = messages.get(id);
      if (!m) return false;
      for (const r of m.state.recipients) if (r.status === 'failed') r.status = 'pending';
      m.state.nextAttemptAt = 0;
      unhold();
      void spool.saveState(id, m.state).catch(() => undefined);
      events.ready();
      return true;
    },
    async remove(id) {
      if (!messages.has(id) || active.has(id)) return false;
      messages.delete(id);
      await spool.remove(id);
      return true;
    },
    list(now = Date.now()) {
      return [...messages.values()].map((m) => entry(m, now));
    },
    counts(now = Date.now()) {
      return countEntries([...messages.values()].map((m) => ({ status: statusOf(m, now) })));
    },
    nextWakeAt() {
      if (hold) return hold.retryAt;
      let next: number | null = null;
      for (const m of messages.values()) {
        if (active.has(m.envelope.id) || isFailed(m) || m.state.nextAttemptAt === 0) continue;
        if (next === null || m.state.nextAttemptAt < next) next = m.state.nextAttemptAt;
      }
      return next;
    },
    get size() {
      return messages.size;
    },
  };
}
