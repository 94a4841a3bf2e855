/**
 * The queue's hold on a real spool: only a relay problem holds the queue, and while held the probes
 * take turns among the waiting messages instead of trying the same one forever.
 */
import { describe, expect, it } from 'vitest';
import { DIAGNOSIS_RULES, diagnose } from '../../electron/relay/diagnosis.ts';
import { createQueue, type AttemptResult, type QueueEvents } from '../../electron/relay/queue.ts';
import type { SpooledMessage } from '../../electron/relay/spool.ts';
import type { UpstreamFailure } from '../../electron/relay/upstream-failure.ts';
import { storeMessage, useTempSpools } from '../fixtures/temp-spools.ts';
import { replyFailure } from '../fixtures/upstream-failures.ts';

const spools = useTempSpools('relaydesk-queue-');

const events: QueueEvents = {
  delivered: () => undefined,
  deferred: () => undefined,
  failed: () => undefined,
  held: () => undefined,
  released: () => undefined,
  ready: () => undefined,
};

async function queueWith(count: number) {
  const spool = await spools.fresh();
  const queue = createQueue(spool, { retryForHours: 48, minRetrySeconds: 1, maxRetrySeconds: 4 }, events);
  const messages: SpooledMessage[] = [];
  for (let index = 0; index < count; index++) {
    const message = await storeMessage(spool, [Buffer.from(`Subject: ${index}\r\n\r\nbody\r\n`)], {
      receivedAt: Date.now() + index,
      mailFrom: `device${index}@contoso.com`,
    });
    messages.push(message);
    queue.add(message);
  }
  return { queue, messages };
}

function failedWith(message: SpooledMessage, failure: UpstreamFailure): AttemptResult {
  const diagnosis = diagnose(failure);
  return {
    delivered: [],
    failed: message.envelope.rcptTo.map((address) => ({ address, response: 'x', diagnosis })),
  };
}

const wrongPassword = replyFailure('auth', '535 5.7.3 Authentication unsuccessful');

describe('queue hold', () => {
  it('holds on a relay problem, never on a problem of one message', async () => {
    const { queue, messages } = await queueWith(2);
    const first = queue.take(0)!;
    expect(first.envelope.id).toBe(messages[0]!.envelope.id);
    const oneMessage: UpstreamFailure = {
      kind: 'config',
      code: 'SMTPUTF8_NOT_OFFERED',
      message: "smtp.example.test does not offer SMTPUTF8, which this message's addresses need",
    };
    const diagnosis = diagnose(oneMessage);
    expect(diagnosis).toMatchObject({ class: 'message', action: 'fail-message' });
    queue.hold(diagnosis, 'x', 0);
    await queue.complete(first.envelope.id, failedWith(first, oneMessage), 0);
    expect(queue.holdInfo).toBeNull();
    expect(queue.take(0)?.envelope.id).toBe(messages[1]!.envelope.id);

    const relayDiagnosis = diagnose(wrongPassword);
    expect(relayDiagnosis).toMatchObject({ class: 'relay', action: 'hold' });
    queue.hold(relayDiagnosis, '535 5.7.3', 0);
    expect(queue.holdInfo).not.toBeNull();
  });

  it('probes each waiting message in turn while held', async () => {
    const { queue, messages } = await queueWith(3);
    const probed: string[] = [];
    let now = 0;
    for (let round = 0; round < 6; round++) {
      const message = queue.take(now);
      expect(message).not.toBeNull();
      probed.push(message!.envelope.id);
      queue.hold(diagnose(wrongPassword), '535 5.7.3', now);
      await queue.complete(message!.envelope.id, failedWith(message!, wrongPassword), now);
      now = queue.holdInfo!.retryAt;
    }
    // The first attempt finds the problem; then each probe tries the next message, round and round.
    const ids = messages.map((message) => message.envelope.id);
    expect(probed).toEqual([...ids, ...ids]);
  });
});

describe('failure classes', () => {
  it('lets only relay rows hold the queue', () => {
    for (const rule of DIAGNOSIS_RULES) {
      if (rule.action === 'hold') expect(rule.class, rule.id).toBe('relay');
      if (rule.action === 'fail-recipient') expect(rule.class, rule.id).toBe('recipient');
      if (rule.action === 'fail-message') expect(rule.class, rule.id).toBe('message');
    }
  });
});
