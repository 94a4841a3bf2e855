/**
 * Health for monitoring tools: `GET /healthz` (no token: the state only, never an address, a
 * sender or a reply text) and `GET /metrics` in Prometheus' text format (prom-client). Served on
 * the admin listener (`serve --admin`) and on a loopback port of its own (`serve --health`).
 * /healthz answers 200 while the relay accepts and delivers (also when mail merely waits), 503 when
 * it does not: stopped, not listening, or delivery held for the relay as a whole.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { healthOf, oldestWaitingAt, relayHealthInput } from '../app/health.ts';
import type { RelayService } from '../app/service.ts';
import type { Relay } from '../relay/relay.ts';
import type { DayCounters, QueueCounts } from '../relay/views.ts';

export type HealthState = 'ok' | 'attention' | 'error' | 'paused';

/** What the endpoint shows: counts and states only. */
export interface HealthSnapshot {
  health: HealthState;
  /** The relay's own state: running, paused, stopped, unconfigured, failed. */
  relay: string;
  listening: boolean;
  upstream: { state: string; held: boolean };
  queue: QueueCounts;
  /** Today's counters (local date): accepted, delivered, deferred, failed, denied. */
  today: DayCounters;
  /** Seconds the oldest message still waiting has waited; 0 when none waits. */
  oldestWaitingSeconds: number;
}

/** A bare relay's snapshot (`serve`): its status, and when the mail still waiting arrived. */
export function relaySnapshot(relay: Pick<Relay, 'status' | 'listQueue'>, now = Date.now()): HealthSnapshot {
  const status = relay.status();
  const input = relayHealthInput(status, relay.listQueue(), now);
  const oldest = input.oldestWaitingAt;
  return {
    health: healthOf(input),
    relay: input.state,
    listening: status.listeners.length > 0,
    upstream: {
      state: status.upstream.state,
      held: status.upstream.hold !== null || status.upstream.state === 'held',
    },
    queue: { ...status.queue },
    today: { ...status.today },
    oldestWaitingSeconds: oldest === null ? 0 : Math.round((now - oldest) / 1000),
  };
}

/** The app's snapshot (`serve --admin`, the desktop app): its relay may be paused or not set up. */
export function appSnapshot(
  service: Pick<RelayService, 'status' | 'listQueue'>,
  now = Date.now(),
): HealthSnapshot {
  const status = service.status();
  const oldest = oldestWaitingAt(service.listQueue());
  return {
    health: status.health,
    relay: status.state,
    listening: status.listeners.length > 0,
    upstream: {
      state: status.upstream.state,
      held: status.upstream.hold !== null || status.upstream.state === 'held',
    },
    queue: { ...status.queue },
    today: { ...status.today },
    oldestWaitingSeconds: oldest === null ? 0 : Math.round((now - oldest) / 1000),
  };
}

export interface HealthEndpoint {
  /** Answers /healthz and /metrics; returns false for any other request (left to the caller). */
  handle(request: IncomingMessage, response: ServerResponse): boolean;
}

export function createHealthEndpoint(snapshot: () => HealthSnapshot): HealthEndpoint {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'relaydesk_' });
  new Gauge({
    name: 'relaydesk_today_messages',
    help: 'Messages today (local date, reset at midnight), by outcome: accepted from a device, delivered, deferred for a retry, failed for good, refused to a denied client.',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      const { date: _date, ...today } = snapshot().today;
      for (const [outcome, count] of Object.entries(today)) this.set({ outcome }, count);
    },
  });
  new Gauge({
    name: 'relaydesk_queue_messages',
    help: 'Messages in the queue now, by status.',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      const { queue } = snapshot();
      for (const [status, count] of Object.entries(queue)) this.set({ status }, count);
    },
  });
  new Gauge({
    name: 'relaydesk_oldest_waiting_seconds',
    help: 'How long the oldest message still waiting for delivery has waited (0 when none waits).',
    registers: [registry],
    collect() {
      this.set(snapshot().oldestWaitingSeconds);
    },
  });
  new Gauge({
    name: 'relaydesk_up',
    help: '1 while the relay accepts and delivers mail (what /healthz answers 200 for), else 0.',
    registers: [registry],
    collect() {
      this.set(isUp(snapshot()) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'relaydesk_upstream_held',
    help: '1 while delivery is held for the relay as a whole (sign-in, policy, TLS), else 0.',
    registers: [registry],
    collect() {
      this.set(snapshot().upstream.held ? 1 : 0);
    },
  });

  function send(response: ServerResponse, status: number, type: string, body: string): void {
    response.writeHead(status, {
      'Content-Type': type,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    response.end(body);
  }

  return {
    handle(request, response) {
      const path = (request.url ?? '').split('?')[0];
      if (path !== '/healthz' && path !== '/metrics') return false;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        send(response, 405, 'text/plain; charset=utf-8', 'GET only\n');
        return true;
      }
      if (path === '/healthz') {
        const state = snapshot();
        send(response, isUp(state) ? 200 : 503, 'application/json', `${JSON.stringify(state)}\n`);
        return true;
      }
      registry.metrics().then(
        (text) => send(response, 200, registry.contentType, text),
        (error: Error) => send(response, 500, 'text/plain; charset=utf-8', `${error.message}\n`),
      );
      return true;
    },
  };
}

function isUp(state: HealthSnapshot): boolean {
  return state.health !== 'error' && state.listening;
}

export interface HealthServer {
  readonly url: string;
  close(): Promise<void>;
}

/** /healthz and /metrics on a listener of their own (everything else is 404). */
export async function startHealthServer(
  host: string,
  port: number,
  endpoint: HealthEndpoint,
): Promise<HealthServer> {
  const server: Server = createServer((request, response) => {
    if (!endpoint.handle(request, response)) {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('Not found: /healthz and /metrics only\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
