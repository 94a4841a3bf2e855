/**
 * Outsiders against the LAN door of the real `relaydesk serve`: addresses outside allowedClients
 * (127.0.0.2 and up, on loopback) flooding it with connections and trickling bytes, while an allowed
 * device (127.0.0.1) keeps sending. The device must never be locked out or slowed much, and nothing
 * it sent may be lost. Times are only ever compared with the same device's times in the same run.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { readProcess } from '../../bench/tools.ts';
import {
  createTeardown,
  median,
  quantile,
  RawClient,
  startOutsiders,
  sendMail,
  startRelayWithEmulator,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const HEADER = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\n';

const setup = (config: Record<string, unknown> = {}) =>
  startRelayWithEmulator(teardown, { config: { upstream: { messagesPerMinute: 10000 }, ...config } });

/** `127.0.0.{first}` .. for `count` addresses: outsiders, none of them in allowedClients. */
function outsiders(count: number, first = 2): string[] {
  return Array.from({ length: count }, (_, i) => `127.0.0.${first + i}`);
}

describe('connection budgets', () => {
  it('answers a denied client with 550 5.7.1 and closes the connection at once', async () => {
    const { relay } = await setup();
    const denied = await RawClient.open(teardown, relay.port, { localAddress: '127.0.0.2' });
    denied.write('EHLO stranger\r\nMAIL FROM:<ceo@contoso.com>\r\nRCPT TO:<victim@contoso.com>\r\n');
    await denied.waitForClose();
    expect(denied.replies.slice(2)).toEqual([
      expect.stringMatching(/^550 5\.7\.1 Client 127\.0\.0\.2 is not allowed to relay/),
    ]);
  });

  it('cuts off an outsider flooding NOOPs after 100 of them and 20 more (Postfix junk and error limits); a device may NOOP on', async () => {
    const { relay } = await setup();
    const flooder = await RawClient.open(teardown, relay.port, { localAddress: '127.0.0.2' });
    const device = await RawClient.open(teardown, relay.port);
    flooder.write('NOOP\r\n'.repeat(1000));
    device.write('NOOP\r\n'.repeat(1000));
    await flooder.waitForClose();
    expect(flooder.replies.slice(1, 120).every((reply) => reply === '250 2.0.0 Ok')).toBe(true);
    expect(flooder.replies.slice(120)).toEqual(['421 4.7.0 Too many errors, closing connection']);
    expect(await device.waitForReplies(1001)).toHaveLength(1001);
    expect(device.closed).toBe(false);
  });

  it('counts outsiders apart: 10 outside addresses × 20 idle connections do not lock the device out', async () => {
    const { emulator, relay } = await setup();
    // The default budget is 200 connections: the outsiders alone would fill it.
    const idle = await Promise.all(
      outsiders(10).flatMap((address) =>
        Array.from({ length: 20 }, () => RawClient.open(teardown, relay.port, { localAddress: address })),
      ),
    );
    await Promise.all(idle.map((peer) => peer.waitForReplies(1)));
    const sent = await sendMail(relay.port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      data: `${HEADER}Subject: while outsiders wait\r\n\r\nstill served\r\n`,
    });
    expect(sent.final).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const [received] = await emulator.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['alice@contoso.com']);
    // The outsiders over their own small budget were told so.
    const refused = idle.filter((peer) => peer.closed);
    expect(refused.length).toBeGreaterThan(0);
    // Two per outside address (maxConnectionsPerUnlistedClient), ten in all (maxUnlistedConnections).
    for (const peer of refused) {
      expect(peer.replies).toEqual([expect.stringMatching(/^421 4\.7\.0 Too many connections from /)]);
    }
    expect(idle.length - refused.length).toBe(10);
  });

  it('stops counting a session once it answered QUIT: a program with 20 parallel sessions gets its next one', async () => {
    const { relay } = await setup();
    // The program reads 221 and connects again before its old sockets are gone: half-open keeps them.
    const sessions = await Promise.all(
      Array.from({ length: 20 }, () => RawClient.open(teardown, relay.port, { allowHalfOpen: true })),
    );
    for (const session of sessions) await session.waitForReplies(1);
    for (const session of sessions) session.write('QUIT\r\n');
    for (const session of sessions) expect((await session.waitForReplies(2))[1]).toBe('221 2.0.0 Bye');
    const next = await RawClient.open(teardown, relay.port);
    expect((await next.waitForReplies(1))[0]).toMatch(/^220 /);
  });
});

describe('slow clients (Slowloris)', () => {
  it('closes a client that trickles a command line byte by byte with 421 4.4.2', async () => {
    const { relay } = await setup({ limits: { idleTimeoutSeconds: 2 } });
    const slow = await RawClient.open(teardown, relay.port);
    await slow.waitForReplies(1);
    const started = Date.now();
    // 400 ms per byte never trips the 2 s idle timer; the whole line would take 20 s.
    void slow.trickle(`MAIL FROM:<${'j'.repeat(40)}@contoso.com>\r\n`, 400);
    await slow.waitForClose(15_000);
    expect(slow.replies.at(-1)).toMatch(/^421 4\.4\.2 .*command/i);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it('closes a client that trickles its message data, and keeps nothing of it', async () => {
    const { emulator, relay } = await setup({ limits: { idleTimeoutSeconds: 2 } });
    const slow = await RawClient.open(teardown, relay.port);
    slow.write('EHLO slow\r\nMAIL FROM:<john@contoso.com>\r\nRCPT TO:<alice@contoso.com>\r\nDATA\r\n');
    expect((await slow.waitForReplies(5))[4]).toMatch(/^354 /);
    void slow.trickle(`${HEADER}Subject: slow\r\n\r\n${'x'.repeat(100)}\r\n.\r\n`, 400);
    await slow.waitForClose(15_000);
    expect(slow.replies.at(-1)).toMatch(/^421 4\.4\.2 .*bytes per second/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(emulator.messages).toHaveLength(0);
  });

  it('ends a session that goes on past sessionTimeoutSeconds with complete but endless commands', async () => {
    const { relay } = await setup({ limits: { idleTimeoutSeconds: 2, sessionTimeoutSeconds: 3 } });
    const chatty = await RawClient.open(teardown, relay.port);
    await chatty.waitForReplies(1);
    for (let i = 0; i < 40 && !chatty.closed; i += 1) {
      chatty.write('NOOP\r\n');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(chatty.closed).toBe(true);
    expect(chatty.replies.at(-1)).toMatch(/^421 4\.4\.2 .*session/i);
  });
});

const OUTSIDERS = fileURLToPath(new URL('../fixtures/outsiders.ts', import.meta.url));

describe('load and abuse', () => {
  it("keeps the device's time to 250 within twice its quiet figure while outsiders flood and trickle, and loses nothing it sent", async () => {
    const { emulator, relay } = await setup();
    let sent = 0;
    /** One message from the device, timed from its connect to the 250 after its data. */
    const timeTo250 = async () => {
      const subject = `load ${(sent += 1)}`;
      const started = performance.now();
      const result = await sendMail(relay.port, {
        from: 'john@contoso.com',
        to: ['alice@contoso.com'],
        data: `${HEADER}Subject: ${subject}\r\n\r\n${'A scanned page. '.repeat(200)}\r\n`,
      });
      expect(result.final).toMatch(/^250 2\.0\.0 Ok: queued as /);
      return performance.now() - started;
    };
    const series = async (count: number) => {
      const times: number[] = [];
      for (let i = 0; i < count; i += 1) times.push(await timeTo250());
      return times;
    };

    const relayCpuMs = () => readProcess(relay.process.pid!).cpuMs;
    /** The relay's CPU time per second of wall time while `run` runs: how hard it had to work. */
    const cpu = { quiet: { cpuMs: 0, wallMs: 0 }, attack: { cpuMs: 0, wallMs: 0 } };
    const measured = async (phase: keyof typeof cpu, run: () => Promise<number[]>) => {
      const [cpuAt, wallAt] = [relayCpuMs(), performance.now()];
      const times = await run();
      cpu[phase].cpuMs += relayCpuMs() - cpuAt;
      cpu[phase].wallMs += performance.now() - wallAt;
      return times;
    };

    const attack = startOutsiders(teardown, OUTSIDERS, [String(relay.port), '2', '10', '120']);
    // Under way once outsiders are being denied.
    await relay.waitForLog((r) => r.event === 'denied');

    // Quiet and attack in turns (the outsiders frozen with SIGSTOP, then let go), so that whatever
    // else this machine does meanwhile falls on both alike.
    const quiet: number[] = [];
    const underAttack: number[] = [];
    for (let round = 0; round < 6; round += 1) {
      attack.child.kill('SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 200));
      quiet.push(...(await measured('quiet', () => series(3))));
      attack.child.kill('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 300));
      underAttack.push(...(await measured('attack', () => series(3))));
    }
    attack.child.stdin!.end();
    await attack.ended;

    const stats = JSON.parse(attack.output()) as {
      connections: number;
      refused: number;
      denied: number;
      replies: number;
    };
    const figures = {
      quietMedianMs: Math.round(median(quiet) * 10) / 10,
      quietWorstMs: Math.round(Math.max(...quiet) * 10) / 10,
      attackMedianMs: Math.round(median(underAttack) * 10) / 10,
      attackWorstMs: Math.round(Math.max(...underAttack) * 10) / 10,
      quietP90Ms: Math.round(quantile(quiet, 0.9) * 10) / 10,
      attackP90Ms: Math.round(quantile(underAttack, 0.9) * 10) / 10,
      relayCoreShareQuiet: Math.round((cpu.quiet.cpuMs / cpu.quiet.wallMs) * 100) / 100,
      relayCoreShareAttack: Math.round((cpu.attack.cpuMs / cpu.attack.wallMs) * 100) / 100,
      ...stats,
    };
    console.info('load and abuse:', JSON.stringify(figures));
    // The attack was real: many connections, most refused, the rest denied after their floods.
    expect(stats.connections).toBeGreaterThan(200);
    expect(stats.refused).toBeGreaterThan(0);
    expect(stats.denied).toBeGreaterThan(0);
    expect(median(underAttack)).toBeLessThanOrEqual(2 * median(quiet));
    // The slow end too, by its 90th percentile: on a shared two-core machine a single sample of 18
    // (the worst) is whatever else the machine did at that instant (CI once saw 344 ms against a
    // quiet worst of 94 ms while its medians held). The relay's work for the outsiders takes longer
    // the less of a core it gets, so the tail stretches with the machine's load (at load 16: 314 ms
    // against 114 ms, medians 98 and 59 in one CI-like run): the tail gets three times, the median
    // (the figure) twice.
    expect(quantile(underAttack, 0.9)).toBeLessThanOrEqual(3 * quantile(quiet, 0.9));

    const received = await emulator.waitForMessages(sent, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(emulator.messages).toHaveLength(sent);
    const subjects = received.map((m) => /Subject: (load \d+)/.exec(m.data.toString('latin1'))?.[1]);
    expect(new Set(subjects).size).toBe(sent);
  });
});
