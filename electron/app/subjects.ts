/**
 * The Subject of each queued message, for the window's queue table: an admin looking at 500 waiting
 * messages recognises "Scan from the 2nd floor", not a queue id. Read once per message from its first
 * bytes (on arrival, or for what was already in the spool when the relay started) and kept in memory
 * while the message is queued.
 */
import type { ReadStream } from 'node:fs';
import { readSubject } from './activity.ts';

export interface SubjectSource {
  id: string;
  size: number;
  /** Streams bytes 0..end-1 of the device's message. */
  open(end: number): ReadStream;
}

export interface SubjectCache {
  /** The subject (null: the message has none); undefined while not read yet. */
  get(id: string): string | null | undefined;
  /** Reads the subjects not known yet, one message at a time; resolves with how many it read. */
  fill(sources: readonly SubjectSource[]): Promise<number>;
  /** Forgets every message not in `ids` (delivered, failed and deleted ones). */
  keepOnly(ids: Iterable<string>): void;
}

export function createSubjectCache(): SubjectCache {
  const subjects = new Map<string, string | null>();
  return {
    get: (id) => subjects.get(id),
    async fill(sources) {
      let read = 0;
      // One at a time: a 500-message queue must not open 500 files at once beside the relay's own work.
      for (const source of sources) {
        if (subjects.has(source.id)) continue;
        subjects.set(source.id, await readSubject(source.open, source.size));
        read += 1;
      }
      return read;
    },
    keepOnly(ids) {
      const keep = new Set(ids);
      for (const id of subjects.keys()) if (!keep.has(id)) subjects.delete(id);
    },
  };
}
