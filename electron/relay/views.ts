/**
 * Shapes the relay engine reports and the window shows as they are: types only, so the renderer's
 * type-check (through electron/shared/ipc.ts) can use them without following imports into Node code.
 */
import type { Diagnosis } from './diagnosis/types.ts';

export type MessageStatus = 'queued' | 'active' | 'deferred' | 'held' | 'failed';

/** How many queued messages are in each state. */
export interface QueueCounts {
  queued: number;
  active: number;
  deferred: number;
  held: number;
  failed: number;
}

/** Today's counters (the local date, `YYYY-MM-DD`). */
export interface DayCounters {
  date: string;
  accepted: number;
  delivered: number;
  deferred: number;
  failed: number;
  denied: number;
}

/** A queued message as `queue list` and the window show it. */
export interface QueueItem {
  id: string;
  status: MessageStatus;
  receivedAt: number;
  client: string;
  mailFrom: string;
  rcptTo: string[];
  size: number;
  attempts: number;
  nextAttemptAt: number | null;
  lastError: string | null;
  lastDiagnosis: string | null;
  /** The window's list only: the message's Subject (null: it has none; absent: not read yet). */
  subject?: string | null;
}

/** A device seen on the LAN side. */
export interface DeviceRecord {
  ip: string;
  firstSeen: number;
  lastSeen: number;
  /** Messages accepted (allowed devices) or attempts refused (denied ones). */
  count: number;
  lastSender: string;
  allowed: boolean;
}

/** What the relay knows of its upstream, as it keeps it across restarts. */
export interface UpstreamStatus {
  description: string;
  /** ok: last attempt worked; error: last attempt failed (mail deferred); held: waiting for the admin; unknown: nothing tried yet. */
  state: 'ok' | 'error' | 'held' | 'unknown';
  lastSuccessAt: number | null;
  lastSuccessReply: string | null;
  lastError: { at: number; reply: string; diagnosis: Diagnosis } | null;
  heldSince: number | null;
}
