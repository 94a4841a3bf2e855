/**
 * Recent activity for the window: one row per message (updated as it moves from queued to delivered,
 * deferred or failed), one per refused device, one per test email. The last 200 rows, in memory.
 */
import type { ReadStream } from 'node:fs';
import { fieldValue, findField, parseHeaderBlock } from '../relay/message/headers.ts';
import type { ActivityEntry } from '../shared/ipc.ts';

export const ACTIVITY_LIMIT = 200;

export interface ActivityLog {
  /** Adds a row, or updates the row with the same id; returns the row as it now is. */
  record(entry: ActivityEntry): ActivityEntry;
  update(id: string, change: Partial<Omit<ActivityEntry, 'id'>>): ActivityEntry | null;
  /** Newest first. */
  list(): ActivityEntry[];
}

export function createActivityLog(limit = ACTIVITY_LIMIT): ActivityLog {
  // A Map keeps insertion order: the first key is the oldest row.
  const rows = new Map<string, ActivityEntry>();
  return {
    record(entry) {
      rows.delete(entry.id);
      rows.set(entry.id, { ...entry });
      while (rows.size > limit) rows.delete(rows.keys().next().value!);
      return { ...entry };
    },
    update(id, change) {
      const row = rows.get(id);
      if (!row) return null;
      Object.assign(row, change);
      return { ...row };
    },
    list: () => [...rows.values()].reverse().map((row) => ({ ...row })),
  };
}

const HEAD_BYTES = 16 * 1024;

/** RFC 2047 encoded words (`=?utf-8?B?...?=`), which is how devices write non-ASCII subjects. */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(
      /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g,
      (whole, charset: string, encoding: string, data: string) => {
        try {
          const bytes =
            encoding.toUpperCase() === 'B'
              ? Buffer.from(data, 'base64')
              : Buffer.from(
                  data
                    .replace(/_/g, ' ')
                    .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) =>
                      String.fromCharCode(parseInt(hex, 16)),
                    ),
                  'latin1',
                );
          return new TextDecoder(charset.toLowerCase(), { fatal: false }).decode(bytes);
        } catch {
          return whole;
        }
      },
    );
}

/**
 * The Subject of a spooled message, read from its first bytes (`open(end)` streams bytes 0..end-1);
 * null when it has none or the message is already gone.
 */
export async function readSubject(open: (end: number) => ReadStream, size: number): Promise<string | null> {
  if (size === 0) return null;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of open(Math.min(size, HEAD_BYTES))) chunks.push(chunk as Buffer);
  } catch {
    return null;
  }
  const head = Buffer.concat(chunks);
  const field = findField(parseHeaderBlock(head, size).fields, 'subject');
  if (!field) return null;
  const raw = Buffer.from(fieldValue(field), 'latin1');
  // Raw 8-bit subjects are nearly always UTF-8 today; latin1 would garble them.
  return decodeEncodedWords(raw.toString('utf8')).slice(0, 300);
}
