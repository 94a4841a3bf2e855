/**
 * `npm run bench`: RelayDesk and Postfix side by side, in one run, each relaying to the same
 * smtp-sink on loopback. Prints one table with the RelayDesk/Postfix ratio per row. Both keep
 * their durability guarantees: RelayDesk fsyncs every message (file and directory) before its 250,
 * Postfix fsyncs its queue file before its 250.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { cleanup, freePort } from '../test/integration/harness.ts';
import {
  messageOfSize,
  percentile,
  readProcess,
  readTree,
  resetPeak,
  runSmtpSource,
  sleep,
  startRelayDesk,
  startSink,
  timedMessage,
  type Sink,
} from './tools.ts';

const run = promisify(execFile);
/** bin/bench.js checks it exists (RELAYDESK_BENCH_PEER, or beside the repository). */
const POSTFIX_SCRIPT = resolve(
  process.env.RELAYDESK_BENCH_PEER ?? resolve(import.meta.dirname, '../../shared/peer/postfix-relay.sh'),
);
const POSTFIX_MASTER_PID = '/var/spool/postfix/pid/master.pid';

const INGEST = { sessions: 20, messages: 2000, bodyBytes: 10_240 };
/**
 * Before it, V8 is still optimizing the per-message code (284 functions compiled in the first 2,000
 * messages, 73 in the next 2,000, 41 in the 2,000 after: --trace-opt): a shorter warm-up measures
 * the compiler along with the relay.
 */
const WARMUP = { sessions: 20, messages: 2000, bodyBytes: 10_240 };
/** Rounds alternate RelayDesk and Postfix, so a busy moment on the machine hits both alike. */
const ROUNDS = 3;
const LATENCY_SAMPLES_PER_ROUND = 200;
const BIG_MESSAGE_BYTES = 30 * 1024 * 1024;
const IDLE_SECONDS = 60;

type Name = 'RelayDesk' | 'Postfix';

interface Throughput {
  ingest: number;
  endToEnd: number;
  /** CPU time of the relay's processes (not the load generator's or the sink's) per message. */
  cpuMsPerMessage: number;
}

interface Contender {
  name: Name;
  port: number;
  /** Processes whose memory and CPU count (RelayDesk: one; Postfix: master and its daemons). */
  reading(): { rssKb: number; cpuMs: number };
  /** Starts a fresh peak window; `peakGrowthKb` then tells how far memory rose above the start. */
  startPeakWindow(): () => number;
}

interface Row {
  label: string;
  unit: string;
  relaydesk: number;
  postfix: number;
  /** Whether a higher number is the better one (throughput) or a lower one (time, memory). */
  higherIsBetter: boolean;
}

async function main(): Promise<void> {
  const sinkPort = await freePort();
  const relayPort = await freePort();
  const postfixPort = await freePort();
  const sink = await startSink(sinkPort);
  const relay = await startRelayDesk(relayPort, sinkPort);
  await run('bash', [POSTFIX_SCRIPT, 'start', String(postfixPort), String(sinkPort)]);
  const postfixMaster = Number(readFileSync(POSTFIX_MASTER_PID, 'utf8').trim());
  const relayPid = relay.process.pid!;

  const relaydesk: Contender = {
    name: 'RelayDesk',
    port: relayPort,
    reading: () => readProcess(relayPid),
    startPeakWindow() {
      resetPeak(relayPid);
      const base = readProcess(relayPid).rssKb;
      return () => readProcess(relayPid).peakRssKb - base;
    },
  };
  const postfix: Contender = {
    name: 'Postfix',
    port: postfixPort,
    reading: () => readTree(postfixMaster),
    startPeakWindow() {
      // Postfix forks smtpd, cleanup and smtp processes: sample the whole tree's sum.
      const base = readTree(postfixMaster).rssKb;
      let peak = base;
      const timer = setInterval(() => {
        peak = Math.max(peak, readTree(postfixMaster).rssKb);
      }, 20);
      return () => {
        clearInterval(timer);
        return peak - base;
      };
    },
  };

  const rows: Row[] = [];
  const loadBefore = loadAverage();
  try {
    log(`sink :${sinkPort}, RelayDesk :${relayPort} (pid ${relayPid}), Postfix :${postfixPort}`);
    for (const c of [relaydesk, postfix]) await throughput(c, sink, WARMUP);

    const runs = { RelayDesk: [] as Throughput[], Postfix: [] as Throughput[] };
    const samples = { RelayDesk: [] as number[], Postfix: [] as number[] };
    for (let round = 1; round <= ROUNDS; round += 1) {
      log(`round ${round} of ${ROUNDS}, load average ${loadAverage()}`);
      for (const c of [relaydesk, postfix]) runs[c.name].push(await throughput(c, sink, INGEST));
      for (const c of [relaydesk, postfix]) samples[c.name].push(...(await latencies(c, sink)));
    }
    const median = (name: Name, key: keyof Throughput) =>
      percentile(
        runs[name].map((r) => r[key]).sort((a, b) => a - b),
        50,
      );
    const latency = (name: Name, p: number) =>
      percentile(
        [...samples[name]].sort((a, b) => a - b),
        p,
      );
    rows.push(
      {
        label: `ingest (${INGEST.sessions} clients, ${INGEST.messages} × 10 KB), median of ${ROUNDS}`,
        unit: 'msg/s',
        relaydesk: median('RelayDesk', 'ingest'),
        postfix: median('Postfix', 'ingest'),
        higherIsBetter: true,
      },
      {
        label: 'end to end (until the last reached the sink)',
        unit: 'msg/s',
        relaydesk: median('RelayDesk', 'endToEnd'),
        postfix: median('Postfix', 'endToEnd'),
        higherIsBetter: true,
      },
      {
        label: 'CPU time per message, end to end',
        unit: 'ms',
        relaydesk: median('RelayDesk', 'cpuMsPerMessage'),
        postfix: median('Postfix', 'cpuMsPerMessage'),
        higherIsBetter: false,
      },
      {
        label: `latency p50 (1 client, connect → 250, ${ROUNDS * LATENCY_SAMPLES_PER_ROUND} messages)`,
        unit: 'ms',
        relaydesk: latency('RelayDesk', 50),
        postfix: latency('Postfix', 50),
        higherIsBetter: false,
      },
      {
        label: 'latency p99',
        unit: 'ms',
        relaydesk: latency('RelayDesk', 99),
        postfix: latency('Postfix', 99),
        higherIsBetter: false,
      },
    );

    const big: Record<string, number> = {};
    for (const c of [relaydesk, postfix]) big[c.name] = await bigMessage(c, sink);
    rows.push({
      label: 'big message (30 MB): peak memory growth',
      unit: 'MB',
      relaydesk: big.RelayDesk!,
      postfix: big.Postfix!,
      higherIsBetter: false,
    });

    log(`idle for ${IDLE_SECONDS} s, both at once`);
    const before = { relaydesk: relaydesk.reading(), postfix: postfix.reading() };
    await sleep(IDLE_SECONDS * 1000);
    const after = { relaydesk: relaydesk.reading(), postfix: postfix.reading() };
    rows.push(
      {
        label: `idle ${IDLE_SECONDS} s: memory (RelayDesk RSS, Postfix PSS sum)`,
        unit: 'MB',
        relaydesk: after.relaydesk.rssKb / 1024,
        postfix: after.postfix.rssKb / 1024,
        higherIsBetter: false,
      },
      {
        label: `idle ${IDLE_SECONDS} s: CPU time`,
        unit: 'ms',
        relaydesk: after.relaydesk.cpuMs - before.relaydesk.cpuMs,
        postfix: after.postfix.cpuMs - before.postfix.cpuMs,
        higherIsBetter: false,
      },
    );
  } finally {
    await relay.stop();
    await run('bash', [POSTFIX_SCRIPT, 'stop']);
    await sink.stop();
    await cleanup(relay.dataDir);
  }
  printTable(rows);
  process.stdout.write(
    `\n${cpus().length} cores; load average (1, 5, 15 min) at the start: ${loadBefore}, at the end: ${loadAverage()}\n`,
  );
}

async function throughput(c: Contender, sink: Sink, load: typeof INGEST): Promise<Throughput> {
  const target = sink.count() + load.messages;
  const cpuBefore = c.reading().cpuMs;
  const started = performance.now();
  const ingestMs = await runSmtpSource(c.port, load);
  const reachedAt = await sink.waitForCount(target, 120_000);
  const result = {
    ingest: (load.messages * 1000) / ingestMs,
    endToEnd: (load.messages * 1000) / (reachedAt - started),
    cpuMsPerMessage: (c.reading().cpuMs - cpuBefore) / load.messages,
  };
  log(
    `${c.name}: ${load.messages} messages, ingest ${ingestMs.toFixed(0)} ms, end to end ${(reachedAt - started).toFixed(0)} ms, ${result.cpuMsPerMessage.toFixed(2)} ms CPU per message`,
  );
  return result;
}

async function latencies(c: Contender, sink: Sink): Promise<number[]> {
  const body = messageOfSize(INGEST.bodyBytes, 'latency');
  const target = sink.count() + LATENCY_SAMPLES_PER_ROUND;
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES_PER_ROUND; i += 1) samples.push(await timedMessage(c.port, body));
  // Let delivery finish before the next measurement starts.
  await sink.waitForCount(target, 60_000);
  const sorted = [...samples].sort((a, b) => a - b);
  log(
    `${c.name}: latency p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms`,
  );
  return samples;
}

async function bigMessage(c: Contender, sink: Sink): Promise<number> {
  const body = messageOfSize(BIG_MESSAGE_BYTES, 'big');
  const target = sink.count() + 1;
  await sleep(500);
  const peakGrowthKb = c.startPeakWindow();
  const ms = await timedMessage(c.port, body);
  await sink.waitForCount(target, 120_000);
  const growthMb = peakGrowthKb() / 1024;
  log(
    `${c.name}: 30 MB message acknowledged in ${ms.toFixed(0)} ms, peak RSS growth ${growthMb.toFixed(1)} MB`,
  );
  return growthMb;
}

function printTable(rows: Row[]): void {
  const format = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(2));
  const lines = [
    '| row | unit | RelayDesk | Postfix | RelayDesk/Postfix | better when |',
    '|---|---|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.unit} | ${format(r.relaydesk)} | ${format(r.postfix)} | ${r.postfix === 0 ? '–' : (r.relaydesk / r.postfix).toFixed(2)} | ${r.higherIsBetter ? 'ratio > 1' : 'ratio < 1'} |`,
    ),
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

function loadAverage(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

await main();
