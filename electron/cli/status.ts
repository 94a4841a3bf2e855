/**
 * `relaydesk status`: asks the running relay; when none runs, reads what the last run left in the
 * data folder (status.json and the spool) and says it is not running.
 */
import { join } from 'node:path';
import { healthOf, relayHealthInput } from '../app/health.ts';
import type { Health } from '../shared/ipc.ts';
import { sendControlRequest } from '../relay/control.ts';
import { countEntries, offlineEntries } from '../relay/queue.ts';
import type { RelayStatus } from '../relay/relay.ts';
import { inspectSpool } from '../relay/spool.ts';
import { localDate, readPersistedStatus } from '../relay/status.ts';
import { dataDirFrom, type CliIo } from './context.ts';
import { formatCounts, formatSignedIn, formatTime, formatToday, formatUpstream } from './format.ts';
import { readSignedIn } from '../relay/oauth/signed-in.ts';

export interface StatusFlags {
  'data-dir'?: string;
  json?: boolean;
}

export type StatusReport = Omit<RelayStatus, 'pid' | 'startedAt'> & {
  pid: number | null;
  startedAt: number | null;
};

export async function readStatus(dataDir: string): Promise<StatusReport> {
  const live = await sendControlRequest(dataDir, { op: 'status' });
  if (live?.ok && live.status) return live.status;
  const persisted = readPersistedStatus(dataDir);
  const entries = offlineEntries(await inspectSpool(join(dataDir, 'spool')));
  const today = persisted?.today.date === localDate() ? persisted.today : null;
  const signedIn = readSignedIn(dataDir);
  return {
    running: false,
    pid: null,
    startedAt: null,
    listeners: [],
    upstream: {
      description: persisted?.upstream.description ?? '(not configured yet)',
      state: persisted?.upstream.state === 'held' ? 'held' : 'unknown',
      lastSuccessAt: persisted?.upstream.lastSuccessAt ?? null,
      lastSuccessReply: persisted?.upstream.lastSuccessReply ?? null,
      lastError: persisted?.upstream.lastError ?? null,
      heldSince: persisted?.upstream.heldSince ?? null,
      hold: null,
    },
    queue: countEntries(entries),
    today: today ?? { date: localDate(), accepted: 0, delivered: 0, deferred: 0, failed: 0, denied: 0 },
    devices: persisted?.devices ?? [],
    ...(signedIn ? { signedIn } : {}),
  };
}

/**
 * The exit status scripts and Task Scheduler read (Nagios' convention): 0 relaying, 1 worth a look
 * (mail deferred or failed, or waiting for more than 10 minutes), 2 not relaying (not running, or
 * delivery held for the relay as a whole).
 */
export const STATUS_EXIT: Record<Health, number> = { ok: 0, attention: 1, paused: 1, error: 2 };

async function queueOf(
  dataDir: string,
  report: StatusReport,
): Promise<{ status: string; receivedAt: number }[]> {
  const listed = report.running ? await sendControlRequest(dataDir, { op: 'queue-list' }) : null;
  return listed?.ok && listed.queue
    ? listed.queue
    : offlineEntries(await inspectSpool(join(dataDir, 'spool')));
}

export async function statusCommand(flags: StatusFlags, io: CliIo): Promise<number> {
  const dataDir = dataDirFrom(flags['data-dir'], io.env);
  const report = await readStatus(dataDir);
  const health = healthOf(relayHealthInput(report, await queueOf(dataDir, report), Date.now()));
  if (flags.json) {
    io.stdout.write(`${JSON.stringify({ ...report, health }, null, 2)}\n`);
    return STATUS_EXIT[health];
  }
  const lines = [
    report.running
      ? `RelayDesk: running (pid ${report.pid}, since ${formatTime(report.startedAt)})`
      : `RelayDesk: not running (data folder ${dataDir})`,
    `Listening: ${report.listeners.length ? report.listeners.map((l) => `${l.host}:${l.port}${l.tls !== 'none' ? ` (${l.tls})` : ''}`).join(', ') : '-'}`,
    ...formatUpstream(report.upstream, report.upstream.hold),
    ...formatSignedIn(report.signedIn),
    `Queue:     ${formatCounts(report.queue)}`,
    `Today:     ${formatToday(report.today)}`,
  ];
  const denied = report.devices.filter((d) => !d.allowed);
  if (denied.length > 0) {
    lines.push('Denied devices (add to "allowedClients" to let them relay):');
    for (const d of denied)
      lines.push(
        `  ${d.ip}  ${d.count} attempt(s), last ${formatTime(d.lastSeen)}, sender ${d.lastSender || '<>'}`,
      );
  }
  lines.push(`Health:    ${HEALTH_WORDS[health]} (exit status ${STATUS_EXIT[health]})`);
  io.stdout.write(`${lines.join('\n')}\n`);
  return STATUS_EXIT[health];
}

const HEALTH_WORDS: Record<Health, string> = {
  ok: 'relaying',
  attention: 'needs a look',
  paused: 'paused',
  error: 'not relaying',
};
