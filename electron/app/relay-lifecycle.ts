/**
 * The relay's life inside the app: start it with a config, stop it (waiting for what is in flight),
 * and what the window shows meanwhile: the state, why it could not start, and the queue as it lies on
 * disk while no relay runs. Restarts, pauses and resumes run one at a time through `exclusive`.
 */
import { join } from 'node:path';
import type { ConfigProblem, RelayConfig } from '../config/types.ts';
import { ListenError } from '../relay/lan/listener.ts';
import type { Logger } from '../relay/log.ts';
import { offlineEntries, type QueueEntry } from '../relay/queue.ts';
import { createRelay, type Relay } from '../relay/relay.ts';
import { inspectSpool } from '../relay/spool.ts';
import type { SecretStore } from '../secrets/index.ts';
import type { QueueItem, RelayState } from '../shared/ipc.ts';

export interface RelayLifecycleDeps {
  dataDir: string;
  secrets: SecretStore;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** How long a stop waits for sessions and deliveries in flight. */
  stopTimeoutMs: number;
  /** Subscribes to a relay's events before it starts (activity, notices, status pushes). */
  attach(relay: Relay): void;
}

export interface RelayLifecycle {
  /** The running relay, or null while paused, stopped, failed or not set up. */
  readonly relay: Relay | null;
  readonly state: RelayState;
  /** Why the relay is not running, when state is 'failed'. */
  readonly startError: string | null;
  /** The queue read from the spool when the relay last stopped or failed to start. */
  readonly offlineQueue: QueueItem[];
  /** Settings changes, pause and resume run one at a time: two restarts must not interleave. */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
  /** Starts a relay with `config`; throws when it cannot (the state is then 'starting' until set). */
  run(config: RelayConfig): Promise<void>;
  /** Starts the relay with `config`; a failure (port taken) is shown, not thrown. */
  tryStart(config: RelayConfig): Promise<void>;
  /** Stops the running relay, if any, and reads the queue it leaves on disk. */
  stop(): Promise<void>;
  /** Records a state without a running relay: paused, stopped, not set up, or failed for `startError`. */
  settle(state: Exclude<RelayState, 'running' | 'starting'>, startError?: string): void;
  refreshOfflineQueue(): Promise<void>;
}

export function toItem(entry: QueueEntry): QueueItem {
  return {
    id: entry.id,
    status: entry.status,
    receivedAt: entry.receivedAt,
    client: entry.client,
    mailFrom: entry.mailFrom,
    rcptTo: entry.rcptTo,
    size: entry.size,
    attempts: entry.attempts,
    nextAttemptAt: entry.nextAttemptAt,
    lastError: entry.lastError,
    lastDiagnosis: entry.lastDiagnosis,
  };
}

/** Where a listener that could not bind sits in the config, so the window marks the right field. */
export function startProblem(error: unknown, config: RelayConfig): ConfigProblem {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ListenError) {
    const index = [config.listen, ...config.extraListeners].findIndex(
      (l) => l.port === error.port && l.host === error.host,
    );
    const path = index <= 0 ? 'listen.port' : `extraListeners[${index - 1}].port`;
    return { path, message };
  }
  return { path: '(relay)', message };
}

export function createRelayLifecycle(deps: RelayLifecycleDeps): RelayLifecycle {
  const { dataDir, logger } = deps;
  let relay: Relay | null = null;
  let state: RelayState = 'stopped';
  let startError: string | null = null;
  let offlineQueue: QueueItem[] = [];
  let chain: Promise<unknown> = Promise.resolve();

  async function refreshOfflineQueue(): Promise<void> {
    try {
      offlineQueue = offlineEntries(await inspectSpool(join(dataDir, 'spool'))).map(toItem);
    } catch {
      offlineQueue = [];
    }
  }

  async function run(config: RelayConfig): Promise<void> {
    const candidate = createRelay({
      config,
      dataDir,
      secrets: deps.secrets,
      logger,
      env: deps.env,
      fetch: deps.fetch,
    });
    deps.attach(candidate);
    state = 'starting';
    try {
      await candidate.start();
    } catch (error) {
      candidate.events.removeAllListeners();
      throw error;
    }
    relay = candidate;
    state = 'running';
    startError = null;
  }

  return {
    get relay() {
      return relay;
    },
    get state() {
      return state;
    },
    get startError() {
      return startError;
    },
    get offlineQueue() {
      return offlineQueue;
    },
    exclusive<T>(task: () => Promise<T>): Promise<T> {
      const next = chain.then(task, task);
      chain = next.catch(() => undefined);
      return next;
    },
    run,
    async tryStart(config) {
      try {
        await run(config);
      } catch (error) {
        state = 'failed';
        startError = startProblem(error, config).message;
        logger.error('start-failed', { reason: startError });
        await refreshOfflineQueue();
      }
    },
    async stop() {
      const running = relay;
      if (!running) return;
      relay = null;
      await running.stop(deps.stopTimeoutMs);
      running.events.removeAllListeners();
      await refreshOfflineQueue();
    },
    settle(next, reason) {
      state = next;
      if (reason !== undefined) startError = reason;
    },
    refreshOfflineQueue,
  };
}
