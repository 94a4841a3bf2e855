/**
 * Test harness: runs the real `relaydesk serve` as a child process against a config in a temp data
 * folder (most often in front of the Exchange Online emulator: `startRelayWithEmulator`), and talks
 * SMTP to it over loopback like a device would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { setPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspectSpool } from '../../electron/relay/spool.ts';
import { startExchangeEmulator, type Emulator, type EmulatorOptions } from '../fixtures/exchange-emulator.ts';
import { freePort } from '../fixtures/free-port.ts';
import { testCa } from '../fixtures/tls.ts';
import type { TokenEndpoint } from '../fixtures/token-endpoint.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/relaydesk.js');
export const UPSTREAM_PASSWORD = 'correct horse battery staple';
export { freePort };

export async function tempDir(prefix = 'relaydesk-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export type LogRecord = Record<string, unknown> & { event: string; level: string };

export interface RelayProcess {
  port: number;
  dataDir: string;
  configPath: string;
  logs: LogRecord[];
  stderr(): string;
  waitForLog(predicate: (record: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** SIGTERM (or another signal) and the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** The other relaydesk commands against this relay's data folder. */
  cli(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A relaydesk command, running: its output so far, and its end. `input` is its whole stdin. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, input = '') {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  child.stdin.end(input);
  const done = new Promise<CliResult>((resolveRun) =>
    child.on('close', (code) => resolveRun({ code, ...output })),
  );
  return { child, output, done };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<CliResult> {
  return spawnCli(args, env, input).done;
}

/** Config for a relay on a free loopback port that relays to `upstreamPort` with the test CA. */
export function testConfig(
  port: number,
  upstreamPort: number,
  caFile: string,
  extra: Record<string, unknown> = {},
) {
  const { upstream, queue, limits, ...rest } = extra as {
    upstream?: Record<string, unknown>;
    queue?: Record<string, unknown>;
    limits?: Record<string, unknown>;
  };
  return {
    listen: { host: '127.0.0.1', port },
    allowedClients: ['127.0.0.1'],
    upstream: {
      host: '127.0.0.1',
      port: upstreamPort,
      security: 'starttls',
      auth: 'password',
      user: 'john@contoso.com',
      caFile,
      timeoutSeconds: 10,
      ...upstream,
    },
    queue: { retryForHours: 48, minRetrySeconds: 1, maxRetrySeconds: 4, ...queue },
    limits: { ...limits },
    ...rest,
  };
}

/**
 * Config for a relay on `port` that sends as john@contoso.com through the Graph emulator at
 * `graphUrl`, with an app registration from `tokens`; `upstream` adds to the upstream section.
 */
export function graphTestConfig(
  port: number,
  tokens: Pick<TokenEndpoint, 'tenant' | 'clientId' | 'url'>,
  graphUrl: string,
  { upstream, ...rest }: Record<string, unknown> & { upstream?: Record<string, unknown> } = {},
) {
  return {
    listen: { host: '127.0.0.1', port },
    allowedClients: ['127.0.0.1'],
    upstream: {
      type: 'graph',
      oauth2: { tenant: tokens.tenant, clientId: tokens.clientId, tokenUrl: tokens.url() },
      mailbox: 'john@contoso.com',
      graphUrl,
      ...upstream,
    },
    ...rest,
  };
}

export interface StartRelayOptions {
  config: Record<string, unknown>;
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Wait for the listener (default); false for runs expected to fail at start. */
  waitForListening?: boolean;
  /** Options for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** More `serve` options (e.g. --health 127.0.0.1:PORT). */
  serveArgs?: string[];
}

export type Relay = RelayProcess & { process: ChildProcess; exited: Promise<number | null> };

export async function startRelay(options: StartRelayOptions): Promise<Relay> {
  const dataDir = options.dataDir ?? (await tempDir());
  const configPath = join(dataDir, 'config.json');
  await writeFile(configPath, JSON.stringify(options.config, null, 2));
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      BIN,
      'serve',
      '--config',
      configPath,
      '--data-dir',
      dataDir,
      ...(options.serveArgs ?? []),
    ],
    {
      cwd: ROOT,
      env: { ...process.env, RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: LogRecord[] = [];
  const waiters: { predicate: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];
  let stdoutBuffer = '';
  let stderrText = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdoutBuffer += chunk.toString();
    let newline: number;
    while ((newline = stdoutBuffer.indexOf('\n')) >= 0) {
      const line = stdoutBuffer.slice(0, newline);
      stdoutBuffer = stdoutBuffer.slice(newline + 1);
      try {
        const record = JSON.parse(line) as LogRecord;
        logs.push(record);
        for (const waiter of [...waiters]) {
          if (waiter.predicate(record)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(record);
          }
        }
      } catch {
        // Not a log line.
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderrText += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));

  const waitForLog = (predicate: (record: LogRecord) => boolean, timeoutMs = 15_000) => {
    const found = logs.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise<LogRecord>((resolveLog, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `No matching log line within ${timeoutMs} ms. Logs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderrText}`,
          ),
        );
      }, timeoutMs);
      waiters.push({
        predicate,
        resolve: (record) => {
          clearTimeout(timer);
          resolveLog(record);
        },
      });
    });
  };

  const listen = options.config.listen as { port: number };
  const relay = {
    process: child,
    exited,
    port: listen.port,
    dataDir,
    configPath,
    logs,
    stderr: () => stderrText,
    waitForLog,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
    cli: (args: string[], env?: NodeJS.ProcessEnv) => runCli([...args, '--data-dir', dataDir], env),
  };
  if (options.waitForListening !== false) {
    await Promise.race([
      waitForLog((r) => r.event === 'started', 20_000),
      exited.then((code) => {
        throw new Error(`relaydesk serve exited with ${code} before listening:\n${stderrText}`);
      }),
    ]);
  }
  return relay;
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * What a test started and must undo (relays killed, servers closed, folders removed), undone after
 * the test, most recent first: `const teardown = createTeardown(); afterEach(teardown.run);`.
 */
export interface Teardown {
  /** Runs `undo` after the test. */
  add(undo: () => unknown): void;
  /** Closes it after the test (an emulator, a token endpoint...); returns it. */
  closing<T extends { close(): unknown }>(closable: T): T;
  /** Kills the relay after the test and removes its data folder; returns it. */
  relay<T extends Pick<RelayProcess, 'stop' | 'dataDir'>>(relay: T): T;
  /** Removes the folder after the test; returns it. */
  dir(dir: string): string;
  run(): Promise<void>;
}

export function createTeardown(): Teardown {
  const steps: (() => unknown)[] = [];
  return {
    add: (undo) => void steps.push(undo),
    closing(closable) {
      steps.push(() => closable.close());
      return closable;
    },
    relay(relay) {
      steps.push(async () => {
        await relay.stop('SIGKILL');
        await cleanup(relay.dataDir);
      });
      return relay;
    },
    dir(dir) {
      steps.push(() => cleanup(dir));
      return dir;
    },
    async run() {
      for (let step = steps.pop(); step; step = steps.pop()) await step();
    },
  };
}

/** The Exchange Online emulator, its mailbox password UPSTREAM_PASSWORD unless `options` say; closed after the test. */
export async function startEmulator(teardown: Teardown, options: EmulatorOptions = {}): Promise<Emulator> {
  return teardown.closing(await startExchangeEmulator({ password: UPSTREAM_PASSWORD, ...options }));
}

export interface RelayWithEmulatorOptions extends Omit<StartRelayOptions, 'config'> {
  /** The relay's config beyond `testConfig`'s (merged as `testConfig`'s `extra`). */
  config?: Record<string, unknown>;
  /** The emulator's options beyond the mailbox password `UPSTREAM_PASSWORD`. */
  emulator?: EmulatorOptions;
}

/**
 * How most integration tests begin: the Exchange Online emulator, and a relay on a free loopback port
 * that relays to it with the test CA; both undone by `teardown` after the test.
 */
export async function startRelayWithEmulator(
  teardown: Teardown,
  options: RelayWithEmulatorOptions = {},
): Promise<{ emulator: Emulator; relay: Relay; config: Record<string, unknown> }> {
  const { config: extra, emulator: emulatorOptions, ...relayOptions } = options;
  const emulator = await startEmulator(teardown, emulatorOptions);
  const config = testConfig(await freePort(), emulator.port, testCa.file, extra);
  const relay = teardown.relay(await startRelay({ ...relayOptions, config }));
  return { emulator, relay, config };
}

/**
 * A relay whose upstream is down: it relays to a free port nobody listens on yet, retrying only an
 * hour apart so that nothing is retried behind the test's back; `upstreamComesUp` starts the
 * Exchange emulator on that port. All undone by `teardown`.
 */
export async function startRelayWithUpstreamDown(
  teardown: Teardown,
  options: { dataDir?: string } = {},
): Promise<{ relay: Relay; config: Record<string, unknown>; upstreamComesUp(): Promise<Emulator> }> {
  const upstreamPort = await freePort();
  const config = testConfig(await freePort(), upstreamPort, testCa.file, {
    queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 },
  });
  const relay = teardown.relay(await startRelay({ config, dataDir: options.dataDir }));
  const upstreamComesUp = () => startEmulator(teardown, { port: upstreamPort });
  return { relay, config, upstreamComesUp };
}

/** `config` as config.json in a folder of its own (for the CLI's --config), removed after the test. */
export async function writeConfigFile(
  teardown: Teardown,
  config: object,
): Promise<{ dir: string; file: string }> {
  const dir = teardown.dir(await tempDir());
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify(config));
  return { dir, file };
}

/**
 * The ids of the messages waiting in a relay's spool (segments and files of their own), read the way
 * `relaydesk queue list` reads it while the relay runs.
 */
export async function queueFiles(dataDir: string): Promise<string[]> {
  return (await inspectSpool(join(dataDir, 'spool'))).map((m) => m.envelope.id);
}

/** A device on the LAN: a raw SMTP client that sends what it is told and collects the replies. */
export class SmtpDevice {
  private buffer = '';
  private waiting: ((reply: string) => void) | null = null;
  private replies: string[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.drain();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.('');
      this.waiting = null;
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, options: { host?: string; localAddress?: string } = {}): Promise<SmtpDevice> {
    return new Promise((resolveDevice, reject) => {
      const socket = connect({ port, host: options.host ?? '127.0.0.1', localAddress: options.localAddress });
      socket.once('connect', () => resolveDevice(new SmtpDevice(socket)));
      socket.once('error', reject);
    });
  }

  private drain(): void {
    // A reply is complete at a line whose 4th character is a space (or a bare 3-digit line).
    for (;;) {
      const lines = this.buffer.split('\r\n');
      let end = -1;
      for (let i = 0; i < lines.length - 1; i += 1) {
        if (/^\d{3}( |$)/.test(lines[i]!)) {
          end = i;
          break;
        }
      }
      if (end < 0) return;
      const reply = lines.slice(0, end + 1).join('\r\n');
      this.buffer = lines.slice(end + 1).join('\r\n');
      if (this.waiting) {
        const waiter = this.waiting;
        this.waiting = null;
        waiter(reply);
      } else {
        this.replies.push(reply);
      }
    }
  }

  /** The next reply (multi-line replies joined with CRLF); '' when the connection closed. */
  read(timeoutMs = 15_000): Promise<string> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve('');
    return new Promise((resolveRead, reject) => {
      const timer = setTimeout(() => reject(new Error('No SMTP reply within the timeout')), timeoutMs);
      this.waiting = (reply) => {
        clearTimeout(timer);
        resolveRead(reply);
      };
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A client that writes whatever it is told, whenever, and keeps every byte of the answer: for floods,
 * pipelining and trickling, where reading reply by reply would itself be the bottleneck. Its socket
 * is destroyed after the test by the `teardown` it was opened with.
 */
export class RawClient {
  text = '';
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (this.text += chunk));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  /** `allowHalfOpen` keeps its side open after the relay's FIN. */
  static open(
    teardown: Teardown,
    port: number,
    options: { localAddress?: string; allowHalfOpen?: boolean } = {},
  ): Promise<RawClient> {
    return new Promise((resolveClient, reject) => {
      const socket = connect({ port, host: '127.0.0.1', ...options });
      teardown.add(() => socket.destroy());
      socket.once('connect', () => resolveClient(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Complete reply lines so far. */
  get lines(): string[] {
    const complete = this.text.slice(0, this.text.lastIndexOf('\r\n') + 2);
    return complete.split('\r\n').slice(0, -1);
  }

  /** Final reply lines (`250 ...`, not `250-...`) so far. */
  get replies(): string[] {
    return this.lines.filter((line) => /^\d{3} /.test(line));
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  async waitForReplies(n: number, timeoutMs = 20_000): Promise<string[]> {
    await eventually(() => this.replies.length >= n || this.closed, timeoutMs, 20);
    return this.replies;
  }

  async waitForClose(timeoutMs = 15_000): Promise<void> {
    await eventually(() => this.closed, timeoutMs, 20);
  }

  /** Sends `text` one byte every `intervalMs`, until it is all sent or the relay closes. */
  async trickle(text: string, intervalMs: number): Promise<void> {
    for (const byte of text) {
      if (this.closed) return;
      this.write(byte);
      await new Promise((resolveByte) => setTimeout(resolveByte, intervalMs));
    }
  }
}

export interface SendResult {
  replies: string[];
  final: string;
  queueId: string | null;
}

/** A device's message to alice@contoso.com, as a scanner writes it; no From header when `from` is null. */
export function scanMessage(subject: string, from: string | null = 'john@contoso.com'): string {
  return `${from ? `From: ${from}\r\n` : ''}To: alice@contoso.com\r\nSubject: ${subject}\r\n\r\nScan attached.\r\n`;
}

/** john@contoso.com's scanner sends `scanMessage(subject)` to `to`. */
export function sendScan(port: number, subject: string, to = 'alice@contoso.com'): Promise<SendResult> {
  return sendMail(port, { from: 'john@contoso.com', to: [to], data: scanMessage(subject) });
}

/** One complete SMTP transaction, the way a well-behaved device sends it. */
export async function sendMail(
  port: number,
  mail: { from: string; to: string[]; data: string | Buffer; localAddress?: string; helo?: string },
): Promise<SendResult> {
  const device = await SmtpDevice.connect(port, { localAddress: mail.localAddress });
  const replies: string[] = [await device.read()];
  try {
    replies.push(await device.command(`EHLO ${mail.helo ?? 'scanner.local'}`));
    const mailReply = await device.command(`MAIL FROM:<${mail.from}>`);
    replies.push(mailReply);
    if (!mailReply.startsWith('250')) return { replies, final: mailReply, queueId: null };
    for (const rcpt of mail.to) replies.push(await device.command(`RCPT TO:<${rcpt}>`));
    const dataReply = await device.command('DATA');
    replies.push(dataReply);
    if (!dataReply.startsWith('354')) return { replies, final: dataReply, queueId: null };
    const body = Buffer.isBuffer(mail.data) ? mail.data : Buffer.from(mail.data, 'latin1');
    device.write(dotStuff(body));
    device.write('.\r\n');
    const final = await device.read(60_000);
    replies.push(final);
    await device.command('QUIT').catch(() => '');
    return { replies, final, queueId: /queued as (\S+)/.exec(final)?.[1] ?? null };
  } finally {
    device.close();
  }
}

/** Dot-stuffs a CRLF message and makes sure it ends with CRLF, as an SMTP client must. */
export function dotStuff(message: Buffer): Buffer {
  let text = message.toString('latin1');
  if (!text.endsWith('\r\n')) text += '\r\n';
  text = text.replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(text, 'latin1');
}

/** Waits until `check` returns a truthy value (bounded). */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`Condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
}

/** The value below which `share` of the values lie (nearest rank): 0.5 the median, 0.9 the slow end. */
export function quantile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * share))]!;
}

export const median = (values: number[]): number => quantile(values, 0.5);

/**
 * Outsiders (other machines) as a process of their own: `script` run under tsx at the lowest
 * priority, so that on this machine their CPU time does not count against the relay. Killed at
 * teardown; `output()` is all it printed so far.
 */
export function startOutsiders(teardown: Teardown, script: string, args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  teardown.add(() => child.kill('SIGKILL'));
  setPriority(child.pid!, 19);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const ended = new Promise((resolve) => child.once('exit', resolve));
  return { child, output: () => output, ended };
}
