/**
 * `npm run bench -- soak [minutes]`: RelayDesk under steady load for a long time (default 10
 * minutes), relaying to smtp-sink. Samples the relay's RSS and open files every few seconds and
 * prints one line per minute, then compares the second minute (after warm-up) with the last one.
 * Exits 1 when memory or open files kept growing, or when an acknowledged message did not arrive.
 */
import { cleanup, freePort } from '../test/integration/harness.ts';
import {
  messageOfSize,
  openFiles,
  readProcess,
  sleep,
  startRelayDesk,
  startSink,
  timedMessage,
} from './tools.ts';

const minutes = Number(process.argv[3] ?? 10);
const SENDERS = 4;
/** Each sender sends one message, then waits this long: about 40 messages a second in all. */
const PAUSE_MS = 100;
const SAMPLE_MS = 5000;
/** Growth from the second minute to the last that still counts as flat. */
const MAX_RSS_GROWTH_MB = 16;
const MAX_FD_GROWTH = 5;

interface Sample {
  at: number;
  rssMb: number;
  fds: number;
  acknowledged: number;
}

async function main(): Promise<void> {
  const sinkPort = await freePort();
  const sink = await startSink(sinkPort);
  const relay = await startRelayDesk(await freePort(), sinkPort);
  const pid = relay.process.pid!;
  const body = messageOfSize(10_240, 'soak');
  const started = Date.now();
  const deadline = started + minutes * 60_000;
  let acknowledged = 0;
  let failures = 0;
  const samples: Sample[] = [];

  const sender = async () => {
    while (Date.now() < deadline) {
      try {
        await timedMessage(relay.port, body);
        acknowledged += 1;
      } catch (error) {
        failures += 1;
        process.stderr.write(`soak: ${(error as Error).message}\n`);
      }
      await sleep(PAUSE_MS);
    }
  };
  const sampler = async () => {
    while (Date.now() < deadline) {
      samples.push({
        at: Date.now() - started,
        rssMb: readProcess(pid).rssKb / 1024,
        fds: openFiles(pid),
        acknowledged,
      });
      const last = samples.at(-1)!;
      if (samples.length % (60_000 / SAMPLE_MS) === 0) {
        process.stderr.write(
          `soak: minute ${Math.round(last.at / 60_000)}: ${last.acknowledged} acknowledged, RSS ${last.rssMb.toFixed(1)} MB, ${last.fds} open files\n`,
        );
      }
      await sleep(SAMPLE_MS);
    }
  };

  process.stderr.write(
    `soak: ${minutes} min, ${SENDERS} senders, 10 KB messages, relay pid ${pid}, sink :${sinkPort}\n`,
  );
  await Promise.all([sampler(), ...Array.from({ length: SENDERS }, sender)]);
  let delivered = true;
  try {
    await sink.waitForCount(acknowledged, 60_000);
  } catch {
    delivered = false;
  }
  await relay.stop();
  await sink.stop();
  await cleanup(relay.dataDir);

  const window = (from: number, to: number) => samples.filter((s) => s.at >= from && s.at < to);
  const average = (list: Sample[], key: 'rssMb' | 'fds') =>
    list.reduce((sum, s) => sum + s[key], 0) / Math.max(1, list.length);
  const early = window(60_000, 120_000);
  const late = window((minutes - 1) * 60_000, minutes * 60_000);
  const rssGrowth = average(late, 'rssMb') - average(early, 'rssMb');
  const fdGrowth = average(late, 'fds') - average(early, 'fds');
  const lines = [
    '| minute | acknowledged | RSS MB (avg) | open files (avg) |',
    '|---:|---:|---:|---:|',
    ...Array.from({ length: minutes }, (_, m) => {
      const list = window(m * 60_000, (m + 1) * 60_000);
      return `| ${m + 1} | ${list.at(-1)?.acknowledged ?? 0} | ${average(list, 'rssMb').toFixed(1)} | ${average(list, 'fds').toFixed(1)} |`;
    }),
    '',
    `acknowledged ${acknowledged}, arrived at the sink ${sink.count()}, client errors ${failures}`,
    `RSS minute 2 → minute ${minutes}: ${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(1)} MB; open files: ${fdGrowth >= 0 ? '+' : ''}${fdGrowth.toFixed(1)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const ok = delivered && failures === 0 && rssGrowth < MAX_RSS_GROWTH_MB && fdGrowth < MAX_FD_GROWTH;
  process.stdout.write(ok ? 'soak: no growth\n' : 'soak: FAILED\n');
  process.exitCode = ok ? 0 : 1;
}

await main();
