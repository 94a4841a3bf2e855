/**
 * The desktop app beside a relay that runs as a service (started at boot, before anyone signs in):
 * the app does not start a second relay; it shows that service's state and drives it over the data
 * folder's control channel, the same one `relaydesk status` and `relaydesk queue` use.
 */
import { EventEmitter } from 'node:events';
import { ControlAccessError, sendControlRequest } from '../relay/control.ts';
import type { QueueEntry } from '../relay/queue.ts';
import type { RelayStatus } from '../relay/relay.ts';
import type { AppStatus } from '../shared/ipc.ts';
import { healthOf, relayHealthInput, summaryOf } from './health.ts';

/** How often the tray asks the service for its state. */
export const SERVICE_POLL_MS = 5_000;

/** What the tray shows of a relay it does not run: its own report, said to be the service's. */
export function appStatusOfService(status: RelayStatus, queue: QueueEntry[], now: number): AppStatus {
  const input = relayHealthInput(status, queue, now);
  const { heldSince: _heldSince, ...upstream } = status.upstream;
  return {
    state: 'running',
    health: healthOf(input),
    summary: summaryOf(input).replace(/^RelayDesk\b/, 'RelayDesk service'),
    startError: null,
    listeners: status.listeners,
    upstream,
    queue: status.queue,
    today: status.today,
    // The service's allowedClients are in its own config, which this account may not read.
    devices: status.devices.map((device) => ({ ...device, allowed: true })),
    allowedClients: [],
    ...(status.signedIn !== undefined
      ? {
          signedIn: status.signedIn && {
            username: status.signedIn.username,
            name: status.signedIn.name,
            method: status.signedIn.method,
            signedInAt: status.signedIn.signedInAt,
            lastRefreshAt: status.signedIn.lastRefreshAt,
          },
        }
      : {}),
  };
}

/**
 * The state a service that stopped answering is shown in: honest "not running", not stale figures;
 * `refusal`, when its channel shuts this account out, says which group admits it and how to join.
 */
function unreachable(dataDir: string, refusal: string | null): AppStatus {
  return {
    state: 'stopped',
    health: 'error',
    summary: refusal
      ? "The RelayDesk service's control channel does not admit this account"
      : 'The RelayDesk service is not answering: see `relaydesk service status`',
    startError: refusal ?? `no relay answers on the control channel of ${dataDir}`,
    listeners: [],
    upstream: {
      description: '',
      state: 'unknown',
      lastSuccessAt: null,
      lastSuccessReply: null,
      lastError: null,
      hold: null,
    },
    queue: { queued: 0, active: 0, deferred: 0, held: 0, failed: 0 },
    today: { date: '', accepted: 0, delivered: 0, deferred: 0, failed: 0, denied: 0 },
    devices: [],
    allowedClients: [],
  };
}

export interface ServiceRemote {
  readonly dataDir: string;
  readonly events: EventEmitter<{ status: [AppStatus] }>;
  /** Asks the service now; emits and returns what it said (a "not answering" status when it does not). */
  refresh(): Promise<AppStatus>;
  /** "Retry queued mail now": how many messages were due again, null when the service did not answer. */
  flush(): Promise<number | null>;
  retry(id: string): Promise<boolean>;
  remove(id: string): Promise<boolean>;
  /** Asks every `intervalMs` until stopped. */
  watch(intervalMs?: number): () => void;
}

/**
 * Whether a relay answers on `dataDir`'s control channel (a service, or `relaydesk serve`):
 * `refused` when one is there but its channel does not admit this account (a service's own account).
 */
export async function serviceAnswers(dataDir: string): Promise<'answering' | 'refused' | 'absent'> {
  try {
    const answer = await sendControlRequest(dataDir, { op: 'hello' }, 3_000);
    return answer?.ok === true ? 'answering' : 'absent';
  } catch (error) {
    return error instanceof ControlAccessError ? 'refused' : 'absent';
  }
}

export function createServiceRemote(dataDir: string): ServiceRemote {
  const events = new EventEmitter<{ status: [AppStatus] }>();
  let refusal: string | null = null;
  const ask = (request: Parameters<typeof sendControlRequest>[1]) =>
    sendControlRequest(dataDir, request).then(
      (answer) => {
        refusal = null;
        return answer;
      },
      (error: Error) => {
        refusal = error instanceof ControlAccessError ? error.message : null;
        return null;
      },
    );

  async function refresh(): Promise<AppStatus> {
    const [status, queue] = await Promise.all([ask({ op: 'status' }), ask({ op: 'queue-list' })]);
    const view =
      status?.ok && status.status
        ? appStatusOfService(status.status, queue?.ok ? (queue.queue ?? []) : [], Date.now())
        : unreachable(dataDir, refusal);
    events.emit('status', view);
    return view;
  }

  return {
    dataDir,
    events,
    refresh,
    async flush() {
      const answer = await ask({ op: 'flush' });
      void refresh();
      return answer?.ok ? (answer.count ?? 0) : null;
    },
    async retry(id) {
      return (await ask({ op: 'retry', id }))?.ok === true;
    },
    async remove(id) {
      return (await ask({ op: 'delete', id }))?.ok === true;
    },
    watch(intervalMs = SERVICE_POLL_MS) {
      const timer = setInterval(() => void refresh(), intervalMs);
      timer.unref?.();
      return () => clearInterval(timer);
    },
  };
}
