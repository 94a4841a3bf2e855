/**
 * What the Status page says, worked out in one place from everything the window knows: the relay's
 * status, the queue, recent activity and the last test email. Every sentence on the page comes from
 * here, so two parts of the page cannot disagree (issue 15: "Nothing sent yet" beside a delivered test
 * email, a green "Running" while the test fails, a held message shown as "Queued"). Pure: tested
 * without a browser.
 */
import type { RelayConfig } from '../../../electron/config/types.ts';
import type {
  ActivityEntry,
  ActivityResult,
  AppStatus,
  Health,
  ListenerView,
  NetworkSuggestion,
  QueueItem,
  TestEmailView,
} from '../../../electron/shared/ipc.ts';
import { formatTime, HEALTH_LABELS, RESULT_LABELS } from './format.ts';

export interface StatusInput {
  status: AppStatus;
  /** The whole queue (the page shows it a page at a time). */
  queue: QueueItem[];
  activity: ActivityEntry[];
  /** The test email this window sent or was told about; null when none. */
  lastTest: TestEmailView | null;
  config: RelayConfig | null;
  network: NetworkSuggestion | null;
  /** False while the relay cannot be reached: everything else is then the last thing it said. */
  reachable: boolean;
  now: number;
}

export type BadgeState = Health | 'unreachable';

export interface QueueRowView {
  id: string;
  received: string;
  device: string;
  from: string;
  to: string;
  subject: string;
  size: number;
  /** What is happening to it, in words: "Waiting", "On hold", "Tries again at 14:05". */
  state: string;
  /** The upstream's last reply, when there was one. */
  lastError: string | null;
}

export interface ActivityRowView extends ActivityEntry {
  label: string;
}

export interface StatusView {
  badge: BadgeState;
  badgeLabel: string;
  /** One plain sentence of health. */
  headline: string;
  /** Where to point the devices; null when the relay does not listen. */
  devicesSentence: string | null;
  /** The relay listens on every network but only this PC may send. */
  onlyThisPcWarning: string | null;
  /** The upstream's state in words ("Delivering", "Nothing sent yet"). */
  upstreamLine: string;
  today: {
    received: number;
    delivered: number;
    /** Of `delivered`, how many were test emails (the relay's own counters do not count them). */
    testEmails: number;
    deferred: number;
    failed: number;
    refused: number;
  };
  queue: {
    total: number;
    /** Messages still to be sent (not failed). */
    waiting: number;
    /** "500 messages: 480 waiting, 20 failed." or the empty-queue sentence. */
    summary: string;
    /** "About 17 minutes to send at Microsoft's 30 a minute"; null when not Microsoft 365 or short. */
    estimate: string | null;
  };
  activity: ActivityRowView[];
}

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

function isLoopback(client: string): boolean {
  const address = client.replace(/\/\d+$/, '').toLowerCase();
  return (
    address.startsWith('127.') ||
    address === '::1' ||
    address === 'localhost' ||
    address === '::ffff:127.0.0.1'
  );
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '' || host === '*';
}

/** Microsoft 365's SMTP limits (30 messages a minute per mailbox) apply to its hosts and presets. */
export function isMicrosoft365(config: RelayConfig | null): boolean {
  if (!config || config.upstream.type !== 'smtp') return false;
  return (
    config.upstream.preset.startsWith('microsoft365') ||
    /(^|\.)(office365\.com|outlook\.com)$/i.test(config.upstream.host)
  );
}

/** The newest test email: what this window sent, or what activity says the tray or another window sent. */
export function latestTest(
  lastTest: TestEmailView | null,
  activity: ActivityEntry[],
): { ok: boolean; at: number; reply: string | null; title: string | null } | null {
  const row = activity.find((r) => r.result === 'test-delivered' || r.result === 'test-failed');
  const fromActivity = row
    ? { ok: row.result === 'test-delivered', at: row.time, reply: row.reply, title: null }
    : null;
  const fromWindow = lastTest
    ? { ok: lastTest.ok, at: lastTest.at, reply: lastTest.reply, title: lastTest.diagnosis?.title ?? null }
    : null;
  if (!fromActivity) return fromWindow;
  if (!fromWindow) return fromActivity;
  return fromWindow.at >= fromActivity.at ? fromWindow : fromActivity;
}

function sameDay(a: number, b: number): boolean {
  return new Date(a).toDateString() === new Date(b).toDateString();
}

const TLS_WORDS: Record<string, string> = {
  none: 'no encryption',
  starttls: 'encryption optional (STARTTLS)',
  implicit: 'SSL/TLS from the start',
};

function listenersOf(input: StatusInput): ListenerView[] {
  if (input.status.listeners.length > 0) return input.status.listeners;
  if (!input.config) return [];
  return [input.config.listen, ...input.config.extraListeners];
}

function addressesFor(host: string, network: NetworkSuggestion | null): string {
  if (!isWildcard(host)) return host;
  const addresses = [...new Set((network?.networks ?? []).map((n) => n.address))];
  if (addresses.length === 0) return network?.hostname ?? 'this PC';
  return addresses.join(' or ');
}

function devicesSentence(input: StatusInput): string | null {
  const listeners = listenersOf(input);
  const [first, ...others] = listeners;
  if (!first || input.status.state === 'unconfigured') return null;
  const signIn =
    input.config?.lanAuth.mode === 'check' ? 'sign-in with a device user name and password' : 'no sign-in';
  if (isLoopback(first.host)) {
    return `Only programs on this PC can send: the relay listens on ${first.host}, port ${first.port}, ${TLS_WORDS[first.tls] ?? first.tls}, ${signIn}.`;
  }
  const more = others.map((l) => `port ${l.port} (${TLS_WORDS[l.tls] ?? l.tls})`);
  return (
    `Devices send to ${addressesFor(first.host, input.network)}, port ${first.port}, ` +
    `${TLS_WORDS[first.tls] ?? first.tls}, ${signIn}.` +
    (more.length > 0 ? ` They may also use ${more.join(' or ')}.` : '')
  );
}

function onlyThisPcWarning(input: StatusInput): string | null {
  const listeners = listenersOf(input);
  const everyNetwork = listeners.some((l) => isWildcard(l.host));
  const clients = input.status.allowedClients;
  if (!everyNetwork || clients.length === 0 || !clients.every(isLoopback)) return null;
  return (
    'RelayDesk listens on every network, but only this PC may send through it: other devices are refused ' +
    'until you add their addresses to the allowed devices.'
  );
}

function badgeOf(input: StatusInput, testFailedLast: boolean): BadgeState {
  if (!input.reachable) return 'unreachable';
  const health = input.status.health;
  if (health === 'ok' && testFailedLast) return 'attention';
  return health;
}

const BADGE_LABELS: Record<BadgeState, string> = { ...HEALTH_LABELS, unreachable: 'Cannot be reached' };

function headlineOf(
  input: StatusInput,
  view: Pick<StatusView, 'queue'>,
  test: ReturnType<typeof latestTest>,
  testFailedLast: boolean,
): string {
  const { status } = input;
  if (!input.reachable) {
    return 'RelayDesk cannot be reached: it stopped, or this page lost its connection to it. This page reconnects by itself.';
  }
  switch (status.state) {
    case 'unconfigured':
      return 'RelayDesk is not set up yet: run the setup wizard.';
    case 'paused':
      return 'RelayDesk is paused: devices cannot send until you resume it.';
    case 'starting':
      return 'RelayDesk is starting.';
    case 'stopped':
      return 'RelayDesk is stopped.';
    case 'failed':
      return `RelayDesk is not running: ${status.startError ?? 'it could not start'}.`;
    case 'running':
      break;
  }
  if (status.upstream.hold) {
    return `Delivery is on hold: ${status.upstream.hold.diagnosis.title}. Mail is kept until this is fixed.`;
  }
  if (testFailedLast) {
    return `The last test email was not delivered${test?.title ? `: ${test.title}` : ''}. Mail from the devices may not get through either.`;
  }
  if (status.queue.failed > 0)
    return `${plural(status.queue.failed, 'message')} could not be delivered: see the queue.`;
  if (status.queue.deferred > 0) {
    return `${plural(status.queue.deferred, 'message')} ${status.queue.deferred === 1 ? 'waits' : 'wait'} for another try: the mail server did not take ${status.queue.deferred === 1 ? 'it' : 'them'} yet.`;
  }
  if (view.queue.waiting > 0)
    return `RelayDesk is running and sending ${plural(view.queue.waiting, 'message')}.`;
  const delivered = status.today.delivered > 0 || status.upstream.lastSuccessAt !== null || test?.ok === true;
  return delivered
    ? 'RelayDesk is running and delivering mail.'
    : 'RelayDesk is running and ready: no mail has been sent through it yet.';
}

function upstreamLineOf(input: StatusInput, test: ReturnType<typeof latestTest>): string {
  const { upstream } = input.status;
  const lastSuccess = Math.max(upstream.lastSuccessAt ?? 0, test?.ok ? test.at : 0);
  switch (upstream.state) {
    case 'held':
      return 'On hold: needs a fix';
    case 'error':
      return 'Last attempt failed (mail is retried)';
    case 'ok':
    case 'unknown':
      if (test && !test.ok && test.at >= lastSuccess) return 'The last test email failed';
      if (lastSuccess > 0) return `Delivering (last delivery ${formatTime(lastSuccess, input.now)})`;
      return 'Nothing sent yet';
  }
}

function queueStateOf(item: QueueItem, now: number): string {
  const tries = item.attempts > 0 ? `, ${plural(item.attempts, 'attempt')}` : '';
  switch (item.status) {
    case 'queued':
      return `Waiting to be sent${tries}`;
    case 'active':
      return 'Sending now';
    case 'deferred':
      return `Tries again ${item.nextAttemptAt ? `at ${formatTime(item.nextAttemptAt, now)}` : 'soon'}${tries}`;
    // A held message waits for the fix, not for a time of its own: the relay section says when it probes.
    case 'held':
      return `On hold until the problem above is fixed${tries}`;
    case 'failed':
      return `Failed: will not be sent${tries}`;
  }
}

export function queueRows(items: QueueItem[], now: number): QueueRowView[] {
  return items.map((item) => ({
    id: item.id,
    received: formatTime(item.receivedAt, now),
    device: item.client,
    from: item.mailFrom || '<>',
    to: item.rcptTo.join(', '),
    subject: item.subject ?? '(no subject)',
    size: item.size,
    state: queueStateOf(item, now),
    lastError: item.lastError,
  }));
}

/** A message's row in recent activity says what the queue says of it, while it is in the queue. */
const QUEUE_RESULT: Record<QueueItem['status'], ActivityResult> = {
  queued: 'queued',
  active: 'queued',
  deferred: 'deferred',
  held: 'held',
  failed: 'failed',
};

function queueSummary(input: StatusInput, total: number, waiting: number): string {
  if (total === 0) return 'No mail is waiting to be sent.';
  const failed = total - waiting;
  const parts = [waiting > 0 ? `${waiting} waiting` : null, failed > 0 ? `${failed} failed` : null].filter(
    Boolean,
  );
  const held = input.status.upstream.hold ? ' Delivery is on hold.' : '';
  return `${plural(total, 'message')} in the queue: ${parts.join(', ')}.${held}`;
}

function estimateOf(input: StatusInput, waiting: number): string | null {
  if (!isMicrosoft365(input.config) || !input.config) return null;
  const rate = input.config.upstream.messagesPerMinute;
  // Under a minute's worth the limit does not show; no need to mention it.
  if (waiting <= rate) return null;
  const minutes = Math.max(1, Math.round(waiting / rate));
  return `About ${plural(minutes, 'minute')} to send at Microsoft's ${rate} a minute.`;
}

export function statusView(input: StatusInput): StatusView {
  const { status } = input;
  const test = latestTest(input.lastTest, input.activity);
  const lastDelivery = status.upstream.lastSuccessAt ?? 0;
  const testFailedLast = test !== null && !test.ok && test.at >= lastDelivery;
  const total = input.queue.length;
  const waiting = input.queue.filter((item) => item.status !== 'failed').length;
  const queue = {
    total,
    waiting,
    summary: queueSummary(input, total, waiting),
    estimate: estimateOf(input, waiting),
  };
  const inQueue = new Map(input.queue.map((item) => [item.id, item.status]));
  const activity = input.activity.map((row) => {
    const queued = inQueue.get(row.id);
    const result = queued ? QUEUE_RESULT[queued] : row.result;
    return { ...row, result, label: RESULT_LABELS[result] };
  });
  const testEmails = input.activity.filter(
    (r) => r.result === 'test-delivered' && sameDay(r.time, input.now),
  ).length;
  const badge = badgeOf(input, testFailedLast);
  return {
    badge,
    badgeLabel: BADGE_LABELS[badge],
    headline: headlineOf(input, { queue }, test, testFailedLast),
    devicesSentence: devicesSentence(input),
    onlyThisPcWarning: onlyThisPcWarning(input),
    upstreamLine: upstreamLineOf(input, test),
    today: {
      received: status.today.accepted,
      delivered: status.today.delivered + testEmails,
      testEmails,
      deferred: status.today.deferred,
      failed: status.today.failed,
      refused: status.today.denied,
    },
    queue,
    activity,
  };
}
