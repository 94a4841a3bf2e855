/**
 * `lanAuth: "check"` under a password-guessing flood (issue 13): outsiders on other loopback addresses
 * hammer AUTH with fresh wrong passwords while an allowed device keeps sending. Each check is a 32 MiB
 * scrypt in libuv's thread pool, the pool the spool's file writes use too; the device's time to 250
 * must not depend on how hard the outsiders try.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { hashLanPassword } from '../../electron/relay/lan-auth.ts';
import { testCa } from '../fixtures/tls.ts';
import {
  createTeardown,
  eventually,
  freePort,
  median,
  quantile,
  startOutsiders,
  sendMail,
  startRelay,
  testConfig,
} from './harness.ts';

const GUESSERS = fileURLToPath(new URL('../fixtures/auth-guessers.ts', import.meta.url));
const teardown = createTeardown();
afterEach(teardown.run);

/** Outsiders on 127.0.0.2 up. */
const ATTACKER_ADDRESSES = 9;
const CONNECTIONS_PER_ATTACKER = 3;
const MESSAGES = 12;
const ROUNDS = 3;
const MESSAGE = `Subject: scan\r\n\r\n${'0123456789abcdef'.repeat(16 * 1024)}\r\n`;

/** Time from the end of DATA to 250, for each of `count` messages sent one after another. */
async function timeToAccept(port: number, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let index = 0; index < count; index += 1) {
    const started = Date.now();
    const result = await sendMail(port, {
      from: 'scanner@contoso.com',
      to: ['john@contoso.com'],
      data: MESSAGE,
    });
    expect(result.final).toMatch(/^250 /);
    times.push(Date.now() - started);
  }
  return times;
}

describe('LAN AUTH under a guessing flood', () => {
  it("does not slow an allowed device's 250: the outsiders' hashing never holds the spool up", async () => {
    const port = await freePort();
    const relay = teardown.relay(
      await startRelay({
        config: testConfig(port, await freePort(), testCa.file, {
          lanAuth: { mode: 'check', users: [{ user: 'mfp', passwordHash: await hashLanPassword('right') }] },
          queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 },
        }),
      }),
    );

    await timeToAccept(relay.port, 2);
    const guessers = startOutsiders(teardown, GUESSERS, [
      String(relay.port),
      'mfp',
      String(ATTACKER_ADDRESSES),
      String(CONNECTIONS_PER_ATTACKER),
    ]);
    const pausedCount = () =>
      guessers
        .output()
        .split('\n')
        .filter((line) => line === 'paused').length;
    guessers.child.stdin!.write('go\n');
    await eventually(() => guessers.output().includes('under way'), 30_000);

    // Quiet and attacked rounds alternate, so that the machine's other load (a 2-core machine running
    // other test files) falls on both alike. A quiet round starts once every guess already sent has
    // been answered: the relay has nothing of the flood left to hash.
    const quiet: number[] = [];
    const attacked: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const paused = pausedCount();
      guessers.child.stdin!.write('pause\n');
      await eventually(() => pausedCount() > paused, 30_000);
      quiet.push(...(await timeToAccept(relay.port, MESSAGES / ROUNDS)));
      guessers.child.stdin!.write('go\n');
      await new Promise((resolve) => setTimeout(resolve, 300));
      attacked.push(...(await timeToAccept(relay.port, MESSAGES / ROUNDS)));
    }
    guessers.child.stdin!.end();
    await guessers.ended;
    const { attempts, answers } = JSON.parse(guessers.output().trim().split('\n').at(-1)!) as {
      attempts: number;
      answers: Record<string, number>;
    };
    // The peer for the slack: one password check (the same 32 MiB scrypt the relay runs) on this
    // machine now. Scheduler noise on a busy two-core machine exceeded a fixed 20 ms in CI (p90 50
    // against 2 x 13 + 20). The mechanism itself (one check at a time, outsiders in a short line) is
    // pinned by test/unit/lan-auth.test.ts, which fails when checks run all at once.
    const checks: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const started = performance.now();
      await hashLanPassword('peer');
      checks.push(performance.now() - started);
    }
    const checkMs = median(checks);
    console.info(
      'LAN AUTH flood:',
      JSON.stringify({
        attempts,
        answers,
        quietMedianMs: median(quiet),
        attackedMedianMs: median(attacked),
        quietP90Ms: quantile(quiet, 0.9),
        attackedP90Ms: quantile(attacked, 0.9),
        oneCheckMs: Math.round(checkMs),
      }),
    );

    // The flood was real: passwords were checked in every attacked round. (The hashing slot lets
    // outsiders have a quarter of one thread, a few checks a second, however many connections guess.)
    expect(answers['535']).toBeGreaterThanOrEqual(ROUNDS);
    // Loopback timings are a few milliseconds: one check's time of slack keeps noise from deciding.
    const allowance = (figure: number) => 2 * figure + checkMs;
    expect(median(attacked)).toBeLessThanOrEqual(allowance(median(quiet)));
    // The slow end by its 90th percentile: the single worst of 12 is whatever else this shared
    // machine did at that instant, not the relay.
    expect(quantile(attacked, 0.9)).toBeLessThanOrEqual(allowance(quantile(quiet, 0.9)));
  }, 120_000);
});
