/**
 * What `status`, the tray and the window show: upstream health, today's counters, the devices seen
 * and denied. Kept in memory and written to `status.json` in the data folder (atomically, at most
 * once a second) so `relaydesk status` can still answer when the relay is not running. A write that
 * fails (another program holds the file, on Windows) is tried again a second later; it never throws.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Diagnosis } from './diagnosis.ts';
import { nodeFileSystem, replaceFile, retrying, type FileSystem } from '../platform/fs-retry.ts';
import type { DayCounters, DeviceRecord, UpstreamStatus } from './views.ts';
import { redactSecrets } from './redact.ts';

export type { DayCounters, DeviceRecord, UpstreamStatus };

export interface PersistedStatus {
  upstream: UpstreamStatus;
  today: DayCounters;
  devices: DeviceRecord[];
}

export function localDate(ms = Date.now()): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function emptyCounters(date: string): DayCounters {
  return { date, accepted: 0, delivered: 0, deferred: 0, failed: 0, denied: 0 };
}

export function readPersistedStatus(dataDir: string): PersistedStatus | null {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'status.json'), 'utf8')) as PersistedStatus;
  } catch {
    return null;
  }
}

export interface StatusTracker {
  readonly upstream: UpstreamStatus;
  today(): DayCounters;
  devices(): DeviceRecord[];
  count(counter: Exclude<keyof DayCounters, 'date'>, n?: number): void;
  deviceSeen(ip: string, sender: string, allowed: boolean): void;
  upstreamSuccess(reply: string): void;
  upstreamError(reply: string, diagnosis: Diagnosis): void;
  upstreamHeld(held: boolean): void;
  /** Writes now (shutdown); resolves when written or given up on, never rejects. */
  flush(): Promise<void>;
}

const MAX_DEVICES = 500;

export function createStatusTracker(
  dataDir: string,
  description: string,
  fs: FileSystem = nodeFileSystem,
): StatusTracker {
  const previous = readPersistedStatus(dataDir);
  const upstream: UpstreamStatus = {
    description,
    state: 'unknown',
    lastSuccessAt: previous?.upstream.lastSuccessAt ?? null,
    lastSuccessReply: previous?.upstream.lastSuccessReply ?? null,
    lastError: previous?.upstream.lastError ?? null,
    heldSince: null,
  };
  let counters = previous?.today.date === localDate() ? previous.today : emptyCounters(localDate());
  const devices = new Map((previous?.devices ?? []).map((d) => [d.ip, d]));
  let timer: NodeJS.Timeout | null = null;
  /** One write at a time: two renames over status.json must not race. */
  let writing: Promise<void> = Promise.resolve();
  const files = retrying(fs);
  removeStaleTemporaryFiles(dataDir, fs);

  function today(): DayCounters {
    const date = localDate();
    if (counters.date !== date) counters = emptyCounters(date);
    return counters;
  }

  /** `retry`: a failed write is tried again a second later; not after the last one (shutdown). */
  function write(retry: boolean): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    writing = writing.then(() => writeNow(retry));
    return writing;
  }

  async function writeNow(retry: boolean): Promise<void> {
    const snapshot: PersistedStatus = { upstream, today: today(), devices: [...devices.values()] };
    try {
      await mkdir(dataDir, { recursive: true });
      await replaceFile(
        files,
        join(dataDir, 'status.json'),
        redactSecrets(JSON.stringify(snapshot, null, 2)),
      );
    } catch {
      // The counters are safe in memory; the file only mirrors them. Try again a second from now.
      if (retry) changed();
    }
  }

  function changed(): void {
    timer ??= setTimeout(() => void write(true), 1000);
    timer.unref?.();
  }

  return {
    upstream,
    today,
    devices: () => [...devices.values()].sort((a, b) => b.lastSeen - a.lastSeen),
    count(counter, n = 1) {
      today()[counter] += n;
      changed();
    },
    deviceSeen(ip, sender, allowed) {
      const now = Date.now();
      const record = devices.get(ip) ?? {
        ip,
        firstSeen: now,
        lastSeen: now,
        count: 0,
        lastSender: '',
        allowed,
      };
      record.lastSeen = now;
      record.count += 1;
      record.lastSender = sender;
      record.allowed = allowed;
      devices.set(ip, record);
      if (devices.size > MAX_DEVICES) {
        const oldest = [...devices.values()].sort((a, b) => a.lastSeen - b.lastSeen)[0]!;
        devices.delete(oldest.ip);
      }
      changed();
    },
    upstreamSuccess(reply) {
      upstream.lastSuccessAt = Date.now();
      upstream.lastSuccessReply = reply;
      if (upstream.state !== 'held') upstream.state = 'ok';
      changed();
    },
    upstreamError(reply, diagnosis) {
      upstream.lastError = { at: Date.now(), reply, diagnosis };
      if (upstream.state !== 'held') upstream.state = 'error';
      changed();
    },
    upstreamHeld(held) {
      upstream.state = held
        ? 'held'
        : upstream.lastSuccessAt && upstream.lastError && upstream.lastError.at > upstream.lastSuccessAt
          ? 'error'
          : 'ok';
      upstream.heldSince = held ? Date.now() : null;
      changed();
    },
    flush: () => write(false),
  };
}

/** What a crash in the middle of a write leaves behind (and `status.json.tmp` of older versions). */
function removeStaleTemporaryFiles(dataDir: string, fs: FileSystem): void {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name !== 'status.json.tmp' && !(name.startsWith('.status.json.') && name.endsWith('.tmp'))) continue;
    try {
      fs.unlinkSync(join(dataDir, name));
    } catch {
      // Held by another program: gone at a later start.
    }
  }
}
