/**
 * Health for monitoring tools, against the real `relaydesk serve`: /healthz (no token, states and
 * counts only) and /metrics (Prometheus text) on `--health`, and `relaydesk status`'s exit status
 * for scripts and Task Scheduler: 0 relaying, 2 held or not running.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createTeardown,
  eventually,
  freePort,
  sendMail,
  startRelayWithEmulator,
  UPSTREAM_PASSWORD,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Scan\r\n\r\npage 1\r\n';

/** The emulator takes `password`; the relay signs in with UPSTREAM_PASSWORD. */
async function setup(password: string) {
  const healthPort = await freePort();
  const { emulator, relay } = await startRelayWithEmulator(teardown, {
    emulator: { password },
    serveArgs: ['--health', `127.0.0.1:${healthPort}`],
  });
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${healthPort}${path}`);
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      body: await response.text(),
    };
  };
  return { emulator, relay, get };
}

describe('health', () => {
  it('answers /healthz 200 and counts in /metrics while relaying; status exits 0', async () => {
    const { emulator, relay, get } = await setup(UPSTREAM_PASSWORD);
    await sendMail(relay.port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: MESSAGE });
    await emulator.waitForMessages(1);

    const metrics = await eventually(async () => {
      const scrape = await get('/metrics');
      return scrape.body.includes('relaydesk_today_messages{outcome="delivered"} 1') ? scrape : undefined;
    });
    expect(metrics!.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics!.body).toContain('relaydesk_today_messages{outcome="accepted"} 1');
    expect(metrics!.body).toContain('relaydesk_queue_messages{status="queued"} 0');
    expect(metrics!.body).toContain('relaydesk_up 1');
    expect(metrics!.body).toContain('relaydesk_upstream_held 0');
    expect(metrics!.body).toContain('relaydesk_process_resident_memory_bytes');

    const health = await get('/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ health: 'ok', relay: 'running', listening: true });
    // No token, so nothing that says who sends what, or where the relay is.
    for (const secretish of ['127.0.0.1', 'contoso', 'john']) expect(health.body).not.toContain(secretish);

    expect((await get('/api/status')).status).toBe(404);
    const status = await relay.cli(['status']);
    expect(status.stdout).toContain('Health:    relaying (exit status 0)');
    expect(status.code).toBe(0);
  });

  it('flips /healthz to 503 when delivery is held, and status exits 2; also when the relay is down', async () => {
    const { relay, get } = await setup('a different password');
    await sendMail(relay.port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: MESSAGE });
    await relay.waitForLog((record) => record.event === 'held');

    const health = await eventually(async () => {
      const answer = await get('/healthz');
      return answer.status === 503 ? answer : undefined;
    });
    expect(JSON.parse(health!.body)).toMatchObject({ health: 'error', upstream: { held: true } });
    expect((await get('/metrics')).body).toContain('relaydesk_upstream_held 1');
    expect((await relay.cli(['status'])).code).toBe(2);

    expect(await relay.stop()).toBe(0);
    await expect(get('/healthz')).rejects.toThrow();
    const stopped = await relay.cli(['status']);
    expect(stopped.stdout).toContain('RelayDesk: not running');
    expect(stopped.code).toBe(2);
  });
});
