/**
 * The signals `serve` drains on. SIGINT, SIGHUP and SIGTERM are sent for real to a running relay in
 * test/integration/process-lifecycle.test.ts; SIGBREAK (Ctrl+Break) exists only on Windows, so here
 * it is emitted to this process the way Node delivers it there.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { STOP_SIGNALS, waitForStopSignal } from '../../electron/cli/context.ts';

const notStopped = () => new Promise((resolve) => setImmediate(() => resolve('still waiting')));

describe('waitForStopSignal', () => {
  const before = Object.fromEntries(STOP_SIGNALS.map((s) => [s, process.listenerCount(s)]));
  afterEach(() => {
    for (const signal of STOP_SIGNALS) expect(process.listenerCount(signal)).toBe(before[signal]);
  });

  for (const signal of ['SIGBREAK', 'SIGINT', 'SIGHUP', 'SIGTERM'] as const) {
    it(`stops on ${signal}, and lets a second one end the process`, async () => {
      const stop = waitForStopSignal();
      expect(await Promise.race([stop, notStopped()])).toBe('still waiting');
      process.emit(signal, signal);
      expect(await Promise.race([stop, notStopped()])).toBe(signal);
    });
  }
});
