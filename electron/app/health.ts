/**
 * The tray's four states and its one-line tooltip, from what the relay reports. Pure, so the rules
 * are tested without a relay: error is what needs the admin now, attention what is worth a look.
 */
import type { Health, QueueCountsView, RelayState, UpstreamView } from '../shared/ipc.ts';

export interface HealthInput {
  state: RelayState;
  startError: string | null;
  upstream: UpstreamView;
  queue: QueueCountsView;
  listeners: { host: string; port: number }[];
  deliveredToday: number;
  /** When the oldest message still waiting for delivery arrived; null when none waits. */
  oldestWaitingAt: number | null;
  now: number;
}

/** Mail that has waited this long means the queue is not moving, even without a reported error. */
export const STUCK_AFTER_MS = 10 * 60_000;

export function healthOf(input: HealthInput): Health {
  if (input.state === 'paused') return 'paused';
  if (input.state === 'failed' || input.state === 'stopped') return 'error';
  if (input.state === 'unconfigured') return 'attention';
  if (input.upstream.state === 'held' || input.upstream.hold !== null) return 'error';
  if (
    input.queue.deferred > 0 ||
    input.queue.failed > 0 ||
    input.upstream.state === 'error' ||
    (input.oldestWaitingAt !== null && input.now - input.oldestWaitingAt > STUCK_AFTER_MS)
  ) {
    return 'attention';
  }
  return 'ok';
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** One line, short enough for a tray tooltip (Windows cuts them at 127 characters). */
export function summaryOf(input: HealthInput): string {
  const line = ((): string => {
    switch (input.state) {
      case 'unconfigured':
        return 'RelayDesk is not set up yet: open it to run the setup';
      case 'paused':
        return 'RelayDesk is paused: devices cannot send until you resume';
      case 'starting':
        return 'RelayDesk is starting';
      case 'stopped':
        return 'RelayDesk is stopped';
      case 'failed':
        return `RelayDesk is not running: ${input.startError ?? 'it could not start'}`;
      case 'running':
        break;
    }
    const hold = input.upstream.hold;
    if (hold) return `Delivery on hold: ${hold.diagnosis.title}`;
    if (input.queue.failed > 0)
      return `RelayDesk: ${plural(input.queue.failed, 'message')} failed, see the queue`;
    if (input.queue.deferred > 0) {
      const last = input.upstream.lastError?.reply;
      return `RelayDesk: ${plural(input.queue.deferred, 'message')} deferred${last ? ` (${last})` : ''}`;
    }
    if (input.oldestWaitingAt !== null && input.now - input.oldestWaitingAt > STUCK_AFTER_MS) {
      return 'RelayDesk: mail has been waiting for more than 10 minutes';
    }
    const where = input.listeners.map((l) => `${l.host}:${l.port}`).join(', ');
    return `RelayDesk: relaying on ${where}, ${input.deliveredToday} delivered today`;
  })();
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}

/** What `relaydesk status` and /healthz know of a relay without the app around it. */
export interface RelayReport {
  running: boolean;
  listeners: { host: string; port: number }[];
  upstream: UpstreamView;
  queue: QueueCountsView;
  today: { delivered: number };
}

/**
 * When the oldest message still waiting for delivery arrived, or null when none waits. A failed
 * message waits for nobody: it stays in the queue only until the admin deletes or retries it.
 */
export function oldestWaitingAt(items: Iterable<{ status: string; receivedAt: number }>): number | null {
  let oldest: number | null = null;
  for (const item of items) {
    if (item.status !== 'failed' && (oldest === null || item.receivedAt < oldest)) oldest = item.receivedAt;
  }
  return oldest;
}

/** The same rules as the tray's, for a bare relay: running or not, and what its queue holds. */
export function relayHealthInput(
  report: RelayReport,
  queue: Iterable<{ status: string; receivedAt: number }>,
  now: number,
): HealthInput {
  return {
    state: report.running ? 'running' : 'stopped',
    startError: null,
    upstream: report.upstream,
    queue: report.queue,
    listeners: report.listeners,
    deliveredToday: report.today.delivered,
    oldestWaitingAt: oldestWaitingAt(queue),
    now,
  };
}
