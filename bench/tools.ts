/**
 * What the benchmark, soak and crash-loop runs share: Postfix's smtp-sink as the upstream,
 * smtp-source as the load, RelayDesk's `serve` as a child process, and /proc readings of memory,
 * CPU time and open files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { SmtpDevice, startRelay, tempDir } from '../test/integration/harness.ts';

export type RelayDeskProcess = Awaited<ReturnType<typeof startRelay>>;

/** Clock ticks per second of /proc/<pid>/stat's CPU fields (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface ProcessReading {
  rssKb: number;
  /** Peak RSS since start or since the last resetPeak(). */
  peakRssKb: number;
  /** User + system CPU time. */
  cpuMs: number;
  /** Of which in the kernel (system calls, and on loopback the peer's side of TCP too). */
  systemMs: number;
}

export function readProcess(pid: number): ProcessReading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssKb: field('VmRSS'), peakRssKb: field('VmHWM'), ...cpuMsOf(pid) };
}

function cpuMsOf(pid: number): { cpuMs: number; systemMs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [user, system] = [Number(fields[11]), Number(fields[12])];
  return { cpuMs: ((user + system) * 1000) / TICKS_PER_SECOND, systemMs: (system * 1000) / TICKS_PER_SECOND };
}

/** Starts a new peak-RSS window (VmHWM) for the process. */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

export function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A process and all its descendants (Postfix's master and the daemons it forks). */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const tree: number[] = [];
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    tree.push(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/**
 * Memory and CPU summed over a process tree; processes that exit meanwhile are skipped. Memory is
 * PSS (shared pages split between the processes sharing them): a sum of RSS would count the shared
 * libraries of every Postfix daemon again.
 */
export function readTree(rootPid: number): { rssKb: number; cpuMs: number; processes: number } {
  let rssKb = 0;
  let cpuMs = 0;
  let processes = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      rssKb += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
      cpuMs += cpuMsOf(pid).cpuMs;
      processes += 1;
    } catch {
      // Gone between the listing and the reading.
    }
  }
  return { rssKb, cpuMs, processes };
}

export interface Sink {
  port: number;
  /** Messages whose DATA completed at the sink so far. */
  count(): number;
  /** Resolves with the time (performance.now) at which the count reached `n`. */
  waitForCount(n: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

/** Postfix's smtp-sink: accepts everything, stores nothing, counts completed DATA. */
export async function startSink(port: number): Promise<Sink> {
  const child = spawn('smtp-sink', ['-c', '-u', 'nobody', `127.0.0.1:${port}`, '1024'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let count = 0;
  let tail = '';
  const waiters: { n: number; resolve: (at: number) => void }[] = [];
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (chunk: string) => {
    // The counter line is rewritten in place: `sess=N quit=N mesg=N\r`.
    const text = tail + chunk;
    const matches = [...text.matchAll(/mesg=(\d+)/g)];
    tail = text.slice(Math.max(0, text.length - 64));
    const last = matches.at(-1);
    if (!last) return;
    count = Math.max(count, Number(last[1]));
    const now = performance.now();
    for (const waiter of [...waiters]) {
      if (count >= waiter.n) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(now);
      }
    }
  });
  await waitForPort(port, child);
  return {
    port,
    count: () => count,
    waitForCount(n, timeoutMs) {
      if (count >= n) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the sink counted ${count} of ${n} messages in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        });
      });
    },
    stop: () => stopChild(child),
  };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`);
    try {
      const device = await SmtpDevice.connect(port);
      device.close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export interface SourceLoad {
  sessions: number;
  messages: number;
  bodyBytes: number;
}

/** Runs smtp-source (one message per connection) and resolves with the wall time in ms. */
export function runSmtpSource(port: number, load: SourceLoad): Promise<number> {
  const started = performance.now();
  const child = spawn(
    'smtp-source',
    [
      '-s',
      String(load.sessions),
      '-m',
      String(load.messages),
      '-l',
      String(load.bodyBytes),
      '-f',
      'scanner@contoso.example',
      '-t',
      'alice@contoso.example',
      `127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`smtp-source exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** RelayDesk relaying plainly to a loopback sink, the same job Postfix gets in the comparison. */
export async function startRelayDesk(
  port: number,
  sinkPort: number,
  extra: { limits?: Record<string, unknown>; upstream?: Record<string, unknown> } = {},
  dataDir?: string,
  nodeArgs: string[] = [],
): Promise<RelayDeskProcess> {
  const config = {
    listen: { host: '127.0.0.1', port },
    allowedClients: ['127.0.0.1'],
    upstream: {
      host: '127.0.0.1',
      port: sinkPort,
      security: 'none',
      auth: 'none',
      // Postfix's default_destination_concurrency_limit is 20 in the peer script.
      maxConnections: 20,
      messagesPerMinute: 10_000,
      maxMessageBytes: 50 * 1024 * 1024,
      ...extra.upstream,
    },
    limits: {
      // Postfix's smtpd_client_connection_count_limit default.
      maxConnectionsPerClient: 50,
      maxMessageBytes: 50 * 1024 * 1024,
      ...extra.limits,
    },
    queue: { minRetrySeconds: 1, maxRetrySeconds: 2 },
  };
  return startRelay({ config, dataDir: dataDir ?? (await tempDir('relaydesk-bench-')), nodeArgs });
}

/** One message on its own connection, the way a scanner sends; resolves with connect→250 in ms. */
export async function timedMessage(port: number, body: Buffer): Promise<number> {
  const started = performance.now();
  const device = await SmtpDevice.connect(port);
  try {
    await expectReply(device.read(), '220');
    await expectReply(device.command('EHLO scanner.bench'), '250');
    await expectReply(device.command('MAIL FROM:<scanner@contoso.example>'), '250');
    await expectReply(device.command('RCPT TO:<alice@contoso.example>'), '250');
    await expectReply(device.command('DATA'), '354');
    device.write(body);
    await expectReply(device.command('.'), '250');
    const elapsed = performance.now() - started;
    device.write('QUIT\r\n');
    return elapsed;
  } finally {
    device.close();
  }
}

async function expectReply(reply: Promise<string>, code: string): Promise<void> {
  const text = await reply;
  if (!text.startsWith(code)) throw new Error(`expected ${code}, got: ${text || '(connection closed)'}`);
}

/** A message of about `bytes` bytes, CRLF lines, no line starting with a dot, ending in CRLF. */
export function messageOfSize(bytes: number, subject = 'bench'): Buffer {
  const header = `From: scanner@contoso.example\r\nTo: alice@contoso.example\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@bench.example>\r\n\r\n`;
  const line = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n';
  const lines = Math.max(1, Math.ceil((bytes - header.length) / line.length));
  return Buffer.from(header + line.repeat(lines), 'latin1');
}

export function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
