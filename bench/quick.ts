/**
 * `npm run bench -- quick [rounds]` (at most 3): RelayDesk alone, the ingest load of the comparison
 * (20 clients, 2,000 × 10 KB) relayed to smtp-sink, a line per round. For trying a change in seconds, without
 * Postfix or root; `npm run bench` is the comparison that counts. With RELAYDESK_CPU_PROFILE=<dir>,
 * `serve` writes a V8 CPU profile there when it stops (open it in Chrome DevTools).
 */
import { cleanup, freePort } from '../test/integration/harness.ts';
import { readProcess, runSmtpSource, startRelayDesk, startSink } from './tools.ts';

const LOAD = { sessions: 20, messages: 2000, bodyBytes: 10_240 };
// The relay's messagesPerMinute goes up to 10,000: the warm-up and 3 × 2,000 within a minute stay below it.
const MAX_ROUNDS = 3;
/** As in the comparison (compare.ts): V8 is still compiling the per-message code before this. */
const WARMUP_MESSAGES = 2000;
const rounds = Math.min(MAX_ROUNDS, Number(process.argv[3] ?? 3));
const profileDir = process.env.RELAYDESK_CPU_PROFILE;

const sinkPort = await freePort();
const relayPort = await freePort();
const sink = await startSink(sinkPort);
const relay = await startRelayDesk(
  relayPort,
  sinkPort,
  {},
  undefined,
  profileDir ? [`--cpu-prof`, `--cpu-prof-dir=${profileDir}`] : [],
);
const pid = relay.process.pid!;
try {
  await runSmtpSource(relayPort, { ...LOAD, messages: WARMUP_MESSAGES });
  await sink.waitForCount(WARMUP_MESSAGES, 60_000);
  for (let round = 1; round <= rounds; round += 1) {
    const before = sink.count();
    const cpuBefore = readProcess(pid);
    const started = performance.now();
    const ingestMs = await runSmtpSource(relayPort, LOAD);
    const deliveredByThen = sink.count() - before;
    const reachedAt = await sink.waitForCount(before + LOAD.messages, 120_000);
    const cpuAfter = readProcess(pid);
    const cpuMs = (cpuAfter.cpuMs - cpuBefore.cpuMs) / LOAD.messages;
    const systemMs = (cpuAfter.systemMs - cpuBefore.systemMs) / LOAD.messages;
    process.stdout.write(
      `round ${round}: ingest ${((LOAD.messages * 1000) / ingestMs).toFixed(0)} msg/s, ` +
        `end to end ${((LOAD.messages * 1000) / (reachedAt - started)).toFixed(0)} msg/s ` +
        `(${deliveredByThen} delivered when ingest ended), ${cpuMs.toFixed(2)} ms CPU per message ` +
        `(${systemMs.toFixed(2)} in the kernel)\n`,
    );
  }
} finally {
  await relay.stop();
  await sink.stop();
  await cleanup(relay.dataDir);
}
