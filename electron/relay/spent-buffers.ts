/**
 * Every socket read and every file read allocates a new buffer, and V8 returns that memory only when
 * it collects garbage. While a big scan streams from the device to disk, or from disk to the upstream,
 * the relay allocates almost nothing else, and V8 lets buffer memory grow 64 MB past the last full
 * collection before it counts, so a 30 MB message would leave about 30 MB of spent buffers in the
 * process each way (measured: 30–33 MB peak growth). A young-generation collection after every few MB
 * streamed (about 0.2 ms each here) frees them while the message still streams. The collector is reached through V8's `gc` hook, exposed for a fresh context only;
 * where that is unavailable, nothing is done and memory is merely higher.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;

type Collect = (options: { type: 'minor' }) => void;
let collect: Collect | null | undefined;
let streamedSinceCollect = 0;

/** Counts bytes streamed through short-lived buffers; collects them every COLLECT_EVERY_BYTES. */
export function noteStreamed(bytes: number): void {
  streamedSinceCollect += bytes;
  if (streamedSinceCollect < COLLECT_EVERY_BYTES) return;
  streamedSinceCollect = 0;
  collect ??= loadCollector();
  collect?.({ type: 'minor' });
}

function loadCollector(): Collect | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collect) : null;
  } catch {
    return null;
  }
}
