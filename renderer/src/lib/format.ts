/** How times, sizes and results read in the window. */
import type { ActivityResult } from '../../../electron/shared/ipc.ts';

/** A time of day for today, with the date for any other day (a queue can hold mail for days). */
export function formatTime(ms: number | null, now: number = Date.now()): string {
  if (!ms) return '–';
  const date = new Date(ms);
  const today = new Date(now);
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === today.toDateString()) return time;
  const day = date.toLocaleDateString([], {
    day: 'numeric',
    month: 'short',
    ...(date.getFullYear() === today.getFullYear() ? {} : { year: 'numeric' }),
  });
  return `${day}, ${time}`;
}

export function formatSize(bytes: number | null): string {
  if (bytes === null) return '–';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export const RESULT_LABELS: Record<ActivityResult, string> = {
  queued: 'Queued',
  delivered: 'Delivered',
  deferred: 'Deferred (will retry)',
  held: 'Held (needs a fix)',
  failed: 'Failed',
  denied: 'Refused device',
  'test-delivered': 'Test email delivered',
  'test-failed': 'Test email failed',
  deleted: 'Deleted, not delivered',
};

export const HEALTH_LABELS = {
  ok: 'Running',
  attention: 'Needs a look',
  error: 'Needs a fix',
  paused: 'Paused',
} as const;
