/**
 * What the relay's events mean for the window and the desktop: activity rows (queued, delivered,
 * deferred, held, failed, refused), notifications worth interrupting the admin for, and a status
 * refresh after each.
 */
import type { EventEmitter } from 'node:events';
import type { AttemptEvent } from '../relay/delivery.ts';
import type { Diagnosis } from '../relay/diagnosis.ts';
import type { HoldInfo } from '../relay/queue.ts';
import type { Relay } from '../relay/relay.ts';
import type { Spool, SpooledMessage } from '../relay/spool.ts';
import { describeFailure } from '../relay/upstream-failure.ts';
import type { ActivityEntry } from '../shared/ipc.ts';
import { createActivityLog } from './activity.ts';
import type { ServiceEvents } from './service.ts';
import type { SubjectCache } from './subjects.ts';

/** A device refused again within this time does not notify again. */
const DENIED_NOTICE_INTERVAL_MS = 60 * 60_000;

export interface RelayActivityDeps {
  events: EventEmitter<ServiceEvents>;
  /** The spool the relay writes to, for reading a new message's subject; null before the service starts. */
  spool(): Spool | null;
  /** Something the status shows changed. */
  changed(): void;
  /** Where a new message's subject is read into, for its activity row and the queue table alike. */
  subjects: SubjectCache;
}

export interface RelayActivity {
  /** Subscribes to a relay's events; the lifecycle calls it for each relay it creates. */
  attach(relay: Relay): void;
  /** Adds a row (a test email) and pushes it to the window. */
  record(entry: ActivityEntry): void;
  /** A queued message deleted by the admin: its row says so, not "Queued". */
  deleted(id: string): void;
  /** Newest first. */
  list(): ActivityEntry[];
}

export function createRelayActivity({ events, spool, changed, subjects }: RelayActivityDeps): RelayActivity {
  const activity = createActivityLog();
  const deniedNoticeAt = new Map<string, number>();

  function pushActivity(entry: ActivityEntry | null): void {
    if (entry) events.emit('activity', entry);
  }

  function attach(target: Relay): void {
    target.events.on('accepted', (message: SpooledMessage) => {
      const { envelope } = message;
      pushActivity(
        activity.record({
          id: envelope.id,
          time: envelope.receivedAt,
          device: envelope.client.ip,
          from: envelope.mailFrom,
          to: envelope.rcptTo,
          subject: null,
          size: message.size,
          result: 'queued',
          reply: null,
        }),
      );
      const source = spool();
      if (source) {
        const open = (end: number) => source.openBody(message, { end });
        void subjects.fill([{ id: envelope.id, size: message.size, open }]).then(() => {
          const subject = subjects.get(envelope.id);
          if (subject) pushActivity(activity.update(envelope.id, { subject }));
          changed();
        });
      }
      changed();
    });
    target.events.on('attempt', (event: AttemptEvent) => {
      if (event.kind === 'failure') {
        const action = event.diagnosis.action;
        const result = action === 'retry' ? 'deferred' : action === 'hold' ? 'held' : 'failed';
        pushActivity(
          activity.update(event.message.envelope.id, { result, reply: describeFailure(event.failure) }),
        );
      }
      changed();
    });
    target.events.on('delivered', (message: SpooledMessage) => {
      const reply = message.state.recipients.find((r) => r.status === 'delivered')?.response ?? null;
      const pending = message.state.recipients.some((r) => r.status === 'pending');
      if (!pending) pushActivity(activity.update(message.envelope.id, { result: 'delivered', reply }));
      changed();
    });
    target.events.on(
      'failed',
      (event: {
        message: SpooledMessage;
        recipients: { address: string; response: string }[];
        diagnosis: Diagnosis;
      }) => {
        const { envelope } = event.message;
        pushActivity(
          activity.update(envelope.id, { result: 'failed', reply: event.recipients[0]?.response ?? null }),
        );
        events.emit('notice', {
          kind: 'failed',
          title: 'A message could not be delivered',
          body: `From ${envelope.mailFrom || '<>'} to ${event.recipients.map((r) => r.address).join(', ')}: ${event.diagnosis.title}`,
        });
        changed();
      },
    );
    target.events.on('held', (hold: HoldInfo) => {
      events.emit('notice', {
        kind: 'held',
        title: 'Delivery is on hold',
        body: `${hold.diagnosis.title}. Mail is kept until this is fixed: open RelayDesk.`,
      });
      changed();
    });
    target.events.on('released', changed);
    target.events.on('denied', ({ ip, sender }: { ip: string; sender: string }) => {
      const now = Date.now();
      pushActivity(
        activity.record({
          id: `denied-${now}-${ip}`,
          time: now,
          device: ip,
          from: sender,
          to: [],
          subject: null,
          size: null,
          result: 'denied',
          reply: '550 5.7.1 not in the allowed devices',
        }),
      );
      if (now - (deniedNoticeAt.get(ip) ?? 0) > DENIED_NOTICE_INTERVAL_MS) {
        deniedNoticeAt.set(ip, now);
        events.emit('notice', {
          kind: 'denied',
          title: `A device was refused: ${ip}`,
          body: `${ip} tried to send mail${sender ? ` as ${sender}` : ''} but is not an allowed device. Open RelayDesk to allow it.`,
        });
      }
      changed();
    });
  }

  return {
    attach,
    record: (entry) => pushActivity(activity.record(entry)),
    deleted: (id) => pushActivity(activity.update(id, { result: 'deleted' })),
    list: () => activity.list(),
  };
}
