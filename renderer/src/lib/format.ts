/** How times, sizes and results read in the window. */
import type { ActivityResult } from '../../../electron/shared/ipc.ts';

export function formatTime(ms: number | null): string {
  if (!ms) return '–';
  const date = new Date(ms);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : date.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
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
};

export const HEALTH_LABELS = {
  ok: 'Running',
  attention: 'Needs a look',
  error: 'Needs a fix',
  paused: 'Paused',
} as const;
