/**
 * The segment spool through `relaydesk serve` (issue 19): a data folder from the file-per-message
 * spool is delivered after the upgrade; `queue list`, `queue delete`, `queue flush` and `status` work
 * on it without a relay; a second process reading the spool while thousands of messages go through
 * never disturbs it; and memory and the number of segment files stay flat over that soak.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inspectSpool } from '../../electron/relay/spool.ts';
import { writeLegacyMessage } from '../fixtures/legacy-spool.ts';
import {
  createTeardown,
  eventually,
  median,
  queueFiles,
  runCli,
  sendMail,
  startRelay,
  startRelayWithEmulator,
  startRelayWithUpstreamDown,
  tempDir,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const message = (marker: string, padding = 0) =>
  `From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: ${marker}\r\n\r\n${marker}\r\n${'y'.repeat(padding)}\r\n`;
const markerOf = (data: Buffer) => /Subject: (\S+)/.exec(data.toString('latin1'))?.[1] ?? '';

describe('upgrading from the file-per-message spool', () => {
  it('lists the old queue without a relay, then delivers it once, to the recipients still pending', async () => {
    const dataDir = teardown.dir(await tempDir('relaydesk-upgrade-'));
    const spool = join(dataDir, 'spool');
    await writeLegacyMessage(spool, {
      id: 'OLDQ000000000001',
      rcptTo: ['alice@contoso.com'],
      body: message('old-1'),
      receivedAt: Date.now() - 120_000,
    });
    await writeLegacyMessage(spool, {
      id: 'OLDQ000000000002',
      rcptTo: ['alice@contoso.com', 'bob@contoso.com'],
      body: message('old-2'),
      receivedAt: Date.now() - 60_000,
      state: {
        nextAttemptAt: Date.now() + 3_600_000,
        attempts: 1,
        recipients: [
          {
            address: 'alice@contoso.com',
            status: 'delivered',
            attempts: 1,
            firstAttemptAt: 1,
            lastAttemptAt: 1,
            response: '250 2.0.0 OK',
          },
          {
            address: 'bob@contoso.com',
            status: 'pending',
            attempts: 1,
            firstAttemptAt: 1,
            lastAttemptAt: 1,
            response: '451 4.3.0 busy',
          },
        ],
        lastDiagnosis: 'upstream-busy',
        lastError: '451 4.3.0 busy',
      },
    });
    const env = { RELAYDESK_DATA_DIR: dataDir };
    const listed = JSON.parse((await runCli(['queue', 'list', '--json', '--data-dir', dataDir], env)).stdout);
    expect(listed.map((e: { id: string; status: string }) => [e.id, e.status])).toEqual([
      ['OLDQ000000000001', 'queued'],
      ['OLDQ000000000002', 'deferred'],
    ]);

    const { emulator, relay } = await startRelayWithEmulator(teardown, { dataDir });
    expect(relay.logs.filter((r) => r.event === 'quarantined')).toEqual([]);
    // New mail goes to the segments, beside the old files.
    expect(
      (
        await sendMail(relay.port, {
          from: 'john@contoso.com',
          to: ['alice@contoso.com'],
          data: message('new-1'),
        })
      ).final,
    ).toMatch(/^250 /);
    await relay.cli(['queue', 'flush']);
    await emulator.waitForMessages(3);
    await eventually(async () => (await queueFiles(dataDir)).length === 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(emulator.messages.map((m) => [markerOf(m.data), m.rcptTo]).sort()).toEqual([
      ['new-1', ['alice@contoso.com']],
      ['old-1', ['alice@contoso.com']],
      ['old-2', ['bob@contoso.com']],
    ]);
    expect(await readdir(join(spool, 'queue'))).toEqual([]);
  });
});

describe('the queue commands without a relay', () => {
  it('list, delete, flush and status read and change the segments; the relay then does what they said', async () => {
    const dataDir = teardown.dir(await tempDir('relaydesk-offline-'));
    // The upstream is down: three messages wait.
    const { relay: first, config, upstreamComesUp } = await startRelayWithUpstreamDown(teardown, { dataDir });
    const ids: string[] = [];
    for (const marker of ['keep-1', 'drop-2', 'keep-3']) {
      const sent = await sendMail(first.port, {
        from: 'john@contoso.com',
        to: ['alice@contoso.com'],
        data: message(marker),
      });
      ids.push(sent.queueId!);
    }
    await eventually(() => first.logs.filter((r) => r.event === 'deferred').length === 3);
    await first.stop();

    const cli = (args: string[]) => runCli([...args, '--data-dir', dataDir]);
    const listed = JSON.parse((await cli(['queue', 'list', '--json'])).stdout) as {
      id: string;
      status: string;
    }[];
    expect(listed.map((e) => [e.id, e.status])).toEqual(ids.map((id) => [id, 'deferred']));
    expect((await cli(['queue', 'delete', ids[1]!])).stdout).toContain(`Message ${ids[1]} deleted.`);
    expect((await cli(['queue', 'flush'])).stdout).toContain(
      '2 message(s) will be tried as soon as it starts.',
    );
    const status = JSON.parse((await cli(['status', '--json'])).stdout);
    expect(status).toMatchObject({ running: false, queue: { queued: 2, deferred: 0 } });

    const emulator = await upstreamComesUp();
    const second = teardown.relay(await startRelay({ config, dataDir }));
    await emulator.waitForMessages(2);
    await eventually(async () => (await queueFiles(dataDir)).length === 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(emulator.messages.map((m) => markerOf(m.data)).sort()).toEqual(['keep-1', 'keep-3']);
    expect(second.logs.filter((r) => r.event === 'quarantined')).toEqual([]);
  });
});

/** Resident memory of a process, from /proc (Linux; this test is skipped elsewhere). */
async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe.skipIf(process.platform !== 'linux')('soak', () => {
  it(
    'thousands of messages from 20 devices: memory and segment files stay flat, a reader in another process disturbs nothing',
    { timeout: 600_000 },
    async () => {
      const TOTAL = 1500;
      const SENDERS = 20;
      const dataDir = teardown.dir(await tempDir('relaydesk-soak-'));
      const { emulator, relay } = await startRelayWithEmulator(teardown, {
        config: { upstream: { messagesPerMinute: 10_000, maxConnections: 5 } },
        dataDir,
        // V8 grows its heap while the machine has memory to spare and collects lazily: without a
        // cap this soak went from 175 to 373 MB resident with nothing leaked (the same run under a
        // 48 MB cap stayed at 124-131 MB). Under a cap a leak cannot hide behind a lazy collector:
        // it ends the relay out of memory or shows in the resident memory below.
        nodeArgs: ['--max-old-space-size=64'],
      });
      const pid = relay.process.pid!;

      let next = 0;
      const acknowledged = new Set<string>();
      const sender = async () => {
        for (let n = next++; n < TOTAL; n = next++) {
          // 30 KB, a scan with a small attachment.
          const sent = await sendMail(relay.port, {
            from: 'john@contoso.com',
            to: ['alice@contoso.com'],
            data: message(`soak-${n}`, 30_000),
          });
          expect(sent.final).toMatch(/^250 /);
          acknowledged.add(`soak-${n}`);
        }
      };
      const samples: { rss: number; segments: number; waiting: number }[] = [];
      let sending = true;
      // The second process: what `queue list` and the window do while the relay runs.
      let reads = 0;
      const reader = (async () => {
        while (sending) {
          const queued = await inspectSpool(join(dataDir, 'spool'));
          for (const m of queued) expect(m.envelope.rcptTo).toEqual(['alice@contoso.com']);
          reads += 1;
          // As often as an admin's window refreshes, not in a loop that starves the senders.
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      })();
      const sampler = (async () => {
        while (sending && relay.process.exitCode === null) {
          const segments = (await readdir(join(dataDir, 'spool', 'segments'))).length;
          const waiting = acknowledged.size - emulator.messages.length;
          samples.push({ rss: await rssBytes(pid), segments, waiting });
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      await Promise.all(Array.from({ length: SENDERS }, sender));
      await emulator.waitForMessages(TOTAL, 300_000);
      await eventually(async () => (await queueFiles(dataDir)).length === 0, 30_000);
      sending = false;
      await Promise.all([reader, sampler]);

      const delivered = new Set(emulator.messages.map((m) => markerOf(m.data)));
      expect([...acknowledged].filter((marker) => !delivered.has(marker))).toEqual([]);
      expect(emulator.messages).toHaveLength(TOTAL);
      // 45 MB through 8 MB segments: five or more were filled, yet never more than a few exist.
      const maxSegments = Math.max(...samples.map((s) => s.segments));
      // Beyond the segments the messages still waiting fill: the one being written, the next one
      // prepared, one whose last messages just went, and one more because the waiting messages
      // straddle a segment boundary (the bytes they fill are rounded up once, not per segment), and
      // one for the messages on their way in (written, their device not yet told 250), which this
      // count of waiting messages cannot see and which may cross a segment boundary of their own.
      const beyondBacklog = samples.map(
        (s) => s.segments - Math.ceil((s.waiting * 30_000) / (8 * 1024 * 1024)),
      );
      const firstQuarter = samples.slice(0, Math.ceil(samples.length / 4));
      const lastQuarter = samples.slice(-Math.ceil(samples.length / 4));
      console.log(
        `soak: ${TOTAL} messages, ${samples.length} samples, ${reads} reads by a second process, ` +
          `segment files max ${maxSegments} (at most ${Math.max(...beyondBacklog)} beyond what the waiting messages fill), RSS median first quarter ${(median(firstQuarter.map((s) => s.rss)) / 1e6).toFixed(1)} MB, ` +
          `last quarter ${(median(lastQuarter.map((s) => s.rss)) / 1e6).toFixed(1)} MB`,
      );
      expect(reads).toBeGreaterThan(0);
      expect(relay.process.exitCode).toBeNull();
      expect(Math.max(...beyondBacklog)).toBeLessThanOrEqual(5);
      // Reclaiming runs after the last `done` records are written: give it its moment.
      await eventually(async () => (await readdir(join(dataDir, 'spool', 'segments'))).length <= 3, 10_000);
      // Flat: the relay's memory at the end of the soak is that of its first quarter, give or take
      // what the garbage collector had not yet taken back.
      expect(median(lastQuarter.map((s) => s.rss))).toBeLessThan(
        median(firstQuarter.map((s) => s.rss)) * 1.3,
      );
      expect(relay.logs.filter((r) => r.level === 'error')).toEqual([]);
    },
  );
});
