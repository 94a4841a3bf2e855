/**
 * One handler per channel of the IPC contract, over the relay service. Main's IPC registration and the
 * admin web server both call `handle`, which validates the payload first: neither trusts its caller.
 * Adding a request: its entry in the contract (electron/shared/ipc.ts), then its handler here.
 */
import type { EventEmitter } from 'node:events';
import { hashLanPassword } from '../relay/lan-auth.ts';
import type { Logger } from '../relay/log.ts';
import {
  PUSH_CHANNELS,
  PUSHES,
  validatePayload,
  type Channel,
  type PayloadOf,
  type PushChannel,
  type PushEvents,
  type ResultOf,
} from '../shared/ipc.ts';
import type { RelayService, ServiceEvents } from './service.ts';

export type Handlers = { [C in Channel]: (payload: PayloadOf<C>) => Promise<ResultOf<C>> };

export interface HandlerDeps {
  service: RelayService;
  /** Where the window's own errors go (electron-log in the app, the relay's log in admin mode). */
  reportRendererError(message: string, stack: string | null): void;
}

/** Removals in flight at once for a bulk delete. */
const BULK_PARALLEL = 16;

export function createHandlers({ service, reportRendererError }: HandlerDeps): Handlers {
  // One scrypt at a time (~32 MiB, ~100 ms each, in the thread pool the spool's file writes use too):
  // a burst of requests queues here instead of holding up mail being written to disk.
  let hashing: Promise<unknown> = Promise.resolve();
  const hashOneAtATime = (password: string): Promise<string> => {
    const next = hashing.then(() => hashLanPassword(password));
    hashing = next.catch(() => undefined);
    return next;
  };
  return {
    'relay:status': async () => service.status(),
    'relay:pause': () => service.pause(),
    'relay:resume': () => service.resume(),
    'queue:list': async () => service.listQueue(),
    'queue:retry': async ({ id }) => service.retry(id),
    'queue:delete': ({ id }) => service.remove(id),
    'queue:retry-many': async ({ ids }) => ids.filter((id) => service.retry(id)).length,
    'queue:delete-many': async ({ ids }) => {
      let deleted = 0;
      // A few at a time: each removal ends with a folder flush, and concurrent ones share it.
      for (let start = 0; start < ids.length; start += BULK_PARALLEL) {
        const done = await Promise.all(
          ids.slice(start, start + BULK_PARALLEL).map((id) => service.remove(id)),
        );
        deleted += done.filter(Boolean).length;
      }
      return deleted;
    },
    'queue:flush': async () => service.flush(),
    'activity:list': async () => service.activity(),
    'config:get': () => service.getConfig(),
    'config:validate': async ({ config }) => service.validateConfig(config),
    'config:apply': ({ config }) => service.applyConfig(config),
    'secret:store': ({ kind, secret, config }) => service.storeSecret(kind, secret, config),
    'upstream:check': ({ config }) => service.testConnection(config),
    'signin:start': ({ method, config }) => service.signIn(method, config),
    'mail:send-test': ({ to }) => service.sendTestEmail(to),
    'alerts:test': () => service.sendTestAlert(),
    'device:allow': ({ ip }) => service.allowDevice(ip),
    'network:suggest': async () => service.suggestNetwork(),
    'lan-user:hash': ({ password }) => hashOneAtATime(password),
    'log:renderer-error': async ({ message, stack }) => {
      reportRendererError(message, stack);
      return null;
    },
  };
}

/** Validates `payload` for `channel` (throws PayloadError) and runs its handler. */
export async function handle(handlers: Handlers, channel: Channel, payload: unknown): Promise<unknown> {
  const valid = validatePayload(channel, payload);
  return (handlers[channel] as (p: typeof valid) => Promise<unknown>)(valid);
}

/** For callers that log a refused request: the channel and why, never the payload itself. */
export function logRefusal(logger: Logger, source: string, channel: string, reason: string): void {
  logger.warn('request-refused', { source, channel: channel.slice(0, 60), reason });
}

/**
 * Sends the service's events that the contract pushes (`PUSHES`) to the window through `send` (the
 * window's webContents, or the admin server's event streams). Returns the function that stops it.
 */
export function forwardPushes(
  events: EventEmitter<ServiceEvents>,
  send: <C extends PushChannel>(channel: C, value: PushEvents[C]) => void,
): () => void {
  const emitter = events as unknown as EventEmitter;
  const stops = PUSH_CHANNELS.map((channel) => {
    const forward = (value: PushEvents[typeof channel]) => send(channel, value);
    emitter.on(PUSHES[channel].event, forward);
    return () => emitter.off(PUSHES[channel].event, forward);
  });
  return () => {
    for (const stop of stops) stop();
  };
}
