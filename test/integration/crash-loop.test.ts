/**
 * kill -9 at random moments under load, 50 times, restarting each time: every message that got its
 * 250 reaches the upstream, and the duplicates (delivered, killed before the spool forgot them,
 * delivered again after the restart) are counted and reported.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createTeardown,
  eventually,
  queueFiles,
  sendMail,
  startRelay,
  startRelayWithEmulator,
  tempDir,
} from './harness.ts';

const KILLS = 50;
const SENDERS = 4;
/** The relay runs this long (random within the range) before each kill -9. */
const RUN_MS = { min: 100, max: 900 };
/** Less than any kill and restart takes. */
const RESTART_MS = 100;

const teardown = createTeardown();
afterEach(teardown.run);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kill -9 under load', () => {
  it(
    `loses no acknowledged message across ${KILLS} kills and counts the duplicates`,
    { timeout: 300_000 },
    async () => {
      const dataDir = teardown.dir(await tempDir('relaydesk-crash-'));
      const { emulator, relay, config } = await startRelayWithEmulator(teardown, {
        config: {
          upstream: { messagesPerMinute: 10_000 },
          queue: { minRetrySeconds: 1, maxRetrySeconds: 2 },
        },
        dataDir,
      });
      const port = relay.port;

      const acknowledged = new Set<string>();
      const queueIds = new Map<string, string>();
      const instances = [relay];
      let attempts = 0;
      let sending = true;
      const sender = async (senderId: number) => {
        for (let n = 0; sending; n += 1) {
          const marker = `crash-${senderId}-${n}`;
          attempts += 1;
          try {
            const sent = await sendMail(port, {
              from: 'john@contoso.com',
              to: ['alice@contoso.com'],
              data: `From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: ${marker}\r\n\r\n${marker}\r\n`,
            });
            if (sent.final.startsWith('250')) {
              acknowledged.add(marker);
              queueIds.set(marker, sent.queueId!);
            }
          } catch {
            // Refused or cut off while the relay is down: never acknowledged, a device would retry.
            await sleep(20);
          }
        }
      };
      const senders = Array.from({ length: SENDERS }, (_, i) => sender(i));

      let acknowledgedBeforeLastKill = 0;
      for (let kill = 1; kill <= KILLS; kill += 1) {
        const running = instances.at(-1)!;
        expect(running.logs.filter((r) => r.event === 'quarantined')).toEqual([]);
        await sleep(RUN_MS.min + Math.random() * (RUN_MS.max - RUN_MS.min));
        running.process.kill('SIGKILL');
        await running.exited;
        acknowledgedBeforeLastKill = acknowledged.size;
        instances.push(teardown.relay(await startRelay({ config, dataDir })));
      }
      await sleep(1000);
      sending = false;
      await Promise.all(senders);

      const markerOf = (data: Buffer) => /Subject: (crash-\d+-\d+)/.exec(data.toString('latin1'))?.[1] ?? '';
      await eventually(
        () => {
          const arrived = new Set(emulator.messages.map((m) => markerOf(m.data)));
          return [...acknowledged].every((marker) => arrived.has(marker));
        },
        90_000,
        200,
      );
      // Nothing waits any more, in the segments or in files of their own, and the segments every
      // killed run left behind (each restart starts a new one) were reclaimed.
      await eventually(async () => (await queueFiles(dataDir)).length === 0, 30_000);
      await eventually(async () => (await readdir(join(dataDir, 'spool', 'segments'))).length <= 3, 30_000);
      await sleep(1000);

      const copies = new Map<string, number>();
      for (const message of emulator.messages) {
        const marker = markerOf(message.data);
        copies.set(marker, (copies.get(marker) ?? 0) + 1);
      }
      const missing = [...acknowledged].filter((marker) => !copies.has(marker));
      const duplicates = [...copies.values()].reduce((sum, n) => sum + n - 1, 0);
      const unacknowledgedDelivered = [...copies.keys()].filter((marker) => !acknowledged.has(marker)).length;
      // Needless: a copy that arrived after the relay had logged the upstream's 250 for that message, and
      // so had to come from a later run. (The emulator stamps a message just after its 250, so the copy
      // that led to the log line can carry a stamp a millisecond later; a restart takes far longer.)
      // The others are SMTP's own duplicate window: killed after the final dot, before reading the 250.
      const firstDeliveredLog = new Map<string, number>();
      for (const record of instances.flatMap((r) => r.logs)) {
        if (record.event !== 'delivered') continue;
        const at = Date.parse(String(record.time));
        const id = String(record.queueId);
        firstDeliveredLog.set(id, Math.min(at, firstDeliveredLog.get(id) ?? at));
      }
      const needless = emulator.messages.filter((message) => {
        const loggedAt = firstDeliveredLog.get(queueIds.get(markerOf(message.data)) ?? '');
        return loggedAt !== undefined && message.receivedAt > loggedAt + RESTART_MS;
      }).length;
      console.log(
        `crash loop: ${KILLS} kills, ${attempts} attempts, ${acknowledged.size} acknowledged ` +
          `(${acknowledgedBeforeLastKill} before the last kill), ${emulator.messages.length} delivered, ` +
          `${missing.length} missing, ${duplicates} duplicates (${needless} after the relay had logged the upstream's 250), ` +
          `${unacknowledgedDelivered} delivered without a 250 seen by the device`,
      );

      expect(acknowledgedBeforeLastKill).toBeGreaterThan(KILLS);
      expect(missing).toEqual([]);
      // The relay logs a delivery only once the spool has forgotten the message.
      expect(needless).toBe(0);
      // A kill can only repeat what was in flight upstream then: at most maxConnections (3) per kill.
      expect(duplicates).toBeLessThanOrEqual(KILLS * 3);
      expect(await readdir(join(dataDir, 'spool', 'quarantine'))).toEqual([]);
    },
  );
});
