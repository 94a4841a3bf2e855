/**
 * /healthz's snapshot of a relay with a large backlog: the oldest waiting message is found without
 * spreading the whole queue into one call (which overflows the stack past ~125,000 messages).
 */
import { describe, expect, it } from 'vitest';
import { relaySnapshot } from '../../electron/admin/health-endpoint.ts';
import { oldestWaitingAt } from '../../electron/app/health.ts';
import { countEntries } from '../../electron/relay/queue.ts';
import type { Relay } from '../../electron/relay/relay.ts';
import { relayStatus } from '../fixtures/relay-status.ts';

const status = relayStatus({ queue: { ...countEntries([]), queued: 200_000, failed: 1 } });

describe('the oldest waiting message', () => {
  it('skips failed mail, and is null when nothing waits', () => {
    expect(oldestWaitingAt([])).toBeNull();
    expect(oldestWaitingAt([{ status: 'failed', receivedAt: 5 }])).toBeNull();
    expect(
      oldestWaitingAt([
        { status: 'deferred', receivedAt: 30 },
        { status: 'failed', receivedAt: 10 },
        { status: 'queued', receivedAt: 20 },
      ]),
    ).toBe(20);
  });

  it('is found in a backlog of 200,000 messages', () => {
    const now = 1_000_000_000;
    const queue: { status: 'queued' | 'failed'; receivedAt: number }[] = Array.from(
      { length: 200_000 },
      (_, i) => ({ status: 'queued', receivedAt: now - 1000 * ((i % 700) + 1) }),
    );
    // A failed message waits for nobody: it does not make the queue look stuck.
    queue.push({ status: 'failed', receivedAt: 0 });
    const relay = {
      status: () => status,
      listQueue: () => queue,
    } as unknown as Pick<Relay, 'status' | 'listQueue'>;
    const snapshot = relaySnapshot(relay, now);
    expect(snapshot.oldestWaitingSeconds).toBe(700);
  });
});
