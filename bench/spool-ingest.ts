/**
 * `npx tsx bench/spool-ingest.ts [rounds] [messages]`: the spool's ingest alone (begin, write, commit:
 * what stands between a device's final dot and its 250), 20 writers at once, 10 KB messages, on this
 * machine's disk. Each round runs the file-per-message path (every message a file of its own, as
 * before the segment log) and the segment log one after the other, alternating which goes first, and
 * prints their ratio: the machine's other load falls on both alike. docs/spool.md has the figures.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createSpool } from '../electron/relay/spool.ts';
import { cleanup, tempDir } from '../test/integration/harness.ts';

const WRITERS = 20;
const BODY_BYTES = 10_240;
const rounds = Number(process.argv[2] ?? 5);
const messages = Number(process.argv[3] ?? 2000);
const client = {
  ip: '127.0.0.1',
  port: 4000,
  helo: 'bench',
  listener: '127.0.0.1:25',
  tls: false,
  authUser: null,
};
const body = Buffer.alloc(BODY_BYTES, 'x');

async function ingest(mode: 'files' | 'segments'): Promise<number> {
  const dir = await tempDir('relaydesk-bench-spool-');
  try {
    // Messages over the limit get a file of their own: a limit of 0 sends every one there.
    const spool = await createSpool(
      join(dir, 'spool'),
      mode === 'files' ? { segmentMessageMaxBytes: 0 } : {},
    );
    await spool.load();
    // The first segment is preallocated before the clock starts, as a running relay has it.
    await commitOne(spool);
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (next++ < messages) await commitOne(spool);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    await spool.close();
    return messages / seconds;
  } finally {
    await cleanup(dir);
  }
}

async function commitOne(spool: Awaited<ReturnType<typeof createSpool>>): Promise<void> {
  const writer = await spool.begin({
    receivedAt: Date.now(),
    client,
    mailFrom: 'scanner@contoso.com',
    rcptTo: ['anna@contoso.com'],
    eightBit: false,
    smtpUtf8: false,
  });
  // In the pieces a socket hands over.
  for (let at = 0; at < body.length; at += 4096) await writer.write(body.subarray(at, at + 4096));
  await writer.commit();
}

const ratios: number[] = [];
console.log(
  `spool ingest: ${WRITERS} writers, ${messages} x ${BODY_BYTES / 1024} KB per run, ${rounds} rounds`,
);
for (let round = 1; round <= rounds; round += 1) {
  const order: ('files' | 'segments')[] = round % 2 ? ['files', 'segments'] : ['segments', 'files'];
  const rate: Record<string, number> = {};
  for (const mode of order) rate[mode] = await ingest(mode);
  const ratio = rate.segments! / rate.files!;
  ratios.push(ratio);
  console.log(
    `round ${round}: file per message ${rate.files!.toFixed(0)}/s, segment log ${rate.segments!.toFixed(0)}/s, ` +
      `x${ratio.toFixed(2)} (load average ${loadavg()[0]!.toFixed(1)})`,
  );
}
const sorted = [...ratios].sort((a, b) => a - b);
console.log(
  `segment log / file per message: median x${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)}, ` +
    `min x${sorted[0]!.toFixed(2)}, max x${sorted.at(-1)!.toFixed(2)}`,
);
