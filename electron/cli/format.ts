/** Human-readable output for `status` and `queue list`. */
import type { QueueCounts, QueueEntry } from '../relay/queue.ts';
import type { SignedInAccount } from '../relay/oauth/signed-in.ts';
import type { DayCounters, UpstreamStatus } from '../relay/status.ts';

export function formatTime(ms: number | null | undefined): string {
  if (!ms || !Number.isFinite(ms)) return '-';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatCounts(counts: QueueCounts): string {
  return `${counts.queued} queued, ${counts.active} being sent, ${counts.deferred} deferred, ${counts.held} held, ${counts.failed} failed`;
}

export function formatToday(today: DayCounters): string {
  return `${today.accepted} accepted, ${today.delivered} delivered, ${today.deferred} deferred, ${today.failed} failed, ${today.denied} denied`;
}

export function formatUpstream(
  upstream: UpstreamStatus,
  hold: { since: number; reason: string } | null,
): string[] {
  const lines = [
    `Upstream:  ${upstream.description}: ${hold ? 'HELD (mail waits until this is fixed)' : upstream.state}`,
  ];
  lines.push(
    `  last success: ${formatTime(upstream.lastSuccessAt)}${upstream.lastSuccessReply ? `  ${upstream.lastSuccessReply}` : ''}`,
  );
  const error = upstream.lastError;
  if (error) {
    lines.push(`  last error:   ${formatTime(error.at)}  ${error.reply}`);
    lines.push(`    what it means: ${error.diagnosis.explanation}`);
    lines.push(`    how to fix:    ${error.diagnosis.fix}`);
    for (const command of error.diagnosis.commands) {
      lines.push(`    ${command.shell}: ${command.lines.replace(/\n/g, '\n      ')}`);
    }
  }
  if (hold) lines.push(`  held since ${formatTime(hold.since)}: ${hold.reason}`);
  return lines;
}

export function formatQueue(entries: QueueEntry[]): string {
  if (entries.length === 0) return 'The queue is empty.\n';
  const rows = entries.map((e) => {
    const head = `${e.id}  ${e.status.padEnd(8)}  ${formatTime(e.receivedAt)}  ${String(e.size).padStart(9)}  ${e.client}  ${e.mailFrom || '<>'}`;
    const recipients = e.recipients.map(
      (r) => `    ${r.address}  ${r.status}${r.response ? `  ${r.response}` : ''}`,
    );
    const next = e.nextAttemptAt ? [`    next attempt: ${formatTime(e.nextAttemptAt)}`] : [];
    return [head, ...recipients, ...next].join('\n');
  });
  return `ID                     STATUS    RECEIVED                  SIZE  CLIENT  SENDER\n${rows.join('\n')}\n`;
}

/** Delegated OAuth 2.0: who is signed in and since when; nothing for other upstreams (undefined). */
export function formatSignedIn(account: SignedInAccount | null | undefined): string[] {
  if (account === undefined) return [];
  if (account === null) return ['Signed in: nobody (run `relaydesk signin`)'];
  const who = account.name ? `${account.name} <${account.username}>` : account.username;
  return [
    `Signed in: ${who} since ${formatTime(account.signedInAt)} (${account.method}), last renewed ${formatTime(account.lastRefreshAt)}`,
  ];
}
