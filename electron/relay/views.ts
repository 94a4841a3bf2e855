/**
 * Shapes the relay engine reports and the window shows as they are: types only, so the renderer's
 * type-check (through electron/shared/ipc.ts) can use them without following imports into Node code.
 */

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
