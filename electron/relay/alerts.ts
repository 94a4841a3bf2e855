/**
 * Alerts by webhook: tells the admin, by a route other than the mail that failed, when mail is held,
 * a message failed for good, the queue grows old, or a device is denied. Each condition is sent once
 * while it lasts, at most MAX_PER_HOUR alerts an hour, and a webhook that fails is logged, never thrown.
 */
import type { EventEmitter } from 'node:events';
import { hostname as osHostname } from 'node:os';
import type { AlertsConfig, AlertsWebhookFormat } from '../config/types.ts';
import type { Diagnosis } from './diagnosis.ts';
import type { Logger } from './log.ts';
import type { HoldInfo } from './queue.ts';
import { redactSecrets } from './redact.ts';
import type { QueueItem } from './views.ts';

export type AlertKind = 'held' | 'failed' | 'queue-age' | 'device-denied' | 'suppressed' | 'test';

export interface Alert {
  kind: AlertKind;
  title: string;
  text: string;
  /** Epoch milliseconds. */
  time: number;
}

/** More than this many alerts in an hour become one "more alerts suppressed" line. */
export const MAX_PER_HOUR = 10;
const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const QUEUE_CHECK_MS = 60 * 1000;
const WEBHOOK_TIMEOUT_MS = 10 * 1000;
/** Queued, not yet delivered or failed: the messages whose age the admin cares about. */
const WAITING = new Set(['queued', 'active', 'deferred', 'held']);

/** The JSON body a webhook of `format` takes for `alert`. */
export function webhookPayload(alert: Alert, format: AlertsWebhookFormat, host: string): unknown {
  const title = redactSecrets(alert.title);
  const text = redactSecrets(alert.text);
  switch (format) {
    case 'json':
      return { kind: alert.kind, title, text, time: new Date(alert.time).toISOString(), host };
    case 'slack':
      // Slack incoming webhooks take `text` (mrkdwn); it is also the notification's fallback.
      return { text: `*RelayDesk on ${host}: ${title}*\n${text}` };
    case 'teams':
      // The Adaptive Card envelope both Teams Incoming Webhooks and Workflows ("Post to a channel
      // when a webhook request is received") accept.
      return {
        type: 'message',
        attachments: [
          {
            contentType: 'application/vnd.microsoft.card.adaptive',
            contentUrl: null,
            content: {
              $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
              type: 'AdaptiveCard',
              version: '1.2',
              body: [
                { type: 'TextBlock', text: `RelayDesk on ${host}: ${title}`, weight: 'Bolder', wrap: true },
                { type: 'TextBlock', text, wrap: true },
              ],
            },
          },
        ],
      };
  }
}

export type WebhookResult =
  { ok: true; status: number } | { ok: false; status: number | null; error: string };

export interface WebhookTarget {
  url: string;
  format: AlertsWebhookFormat;
  host?: string;
  fetch?: typeof fetch;
}

/** POSTs one alert; resolves with the outcome, never rejects. */
export async function sendWebhook(alert: Alert, target: WebhookTarget): Promise<WebhookResult> {
  const send = target.fetch ?? fetch;
  try {
    const response = await send(target.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(webhookPayload(alert, target.format, target.host ?? osHostname())),
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    await response.body?.cancel();
    if (response.ok) return { ok: true, status: response.status };
    return { ok: false, status: response.status, error: `HTTP ${response.status} ${response.statusText}` };
  } catch (error) {
    const { name, message } = error as Error;
    const reason = name === 'TimeoutError' ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s` : message;
    return { ok: false, status: null, error: redactSecrets(reason) };
  }
}

/** Where the webhook goes in a log line: scheme and host only, the path often holds its key. */
function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

export interface AlertsOptions {
  config: AlertsConfig;
  /** The relay's events: 'held', 'released', 'failed', 'denied'. */
  events: EventEmitter;
  listQueue: () => QueueItem[];
  logger: Logger;
  fetch?: typeof fetch;
  host?: string;
  /** The clock; tests pass their own. */
  now?: () => number;
}

export interface Alerts {
  /** Looks for a message waiting longer than `queueAgeMinutes`; the timer calls it every minute. */
  checkQueueAge(): void;
  /** Resolves when every alert raised so far has been sent or has failed. */
  settled(): Promise<void>;
  stop(): void;
}

export function createAlerts(options: AlertsOptions): Alerts {
  const { config, events, logger } = options;
  const now = options.now ?? Date.now;
  const url = config.webhookUrl;
  const target: WebhookTarget = {
    url: url ?? '',
    format: config.webhookFormat,
    host: options.host,
    fetch: options.fetch,
  };
  /** Conditions already reported and still true: not reported again until they clear. */
  const active = new Set<string>();
  /** A denied device's IP → when it was last reported (once a day each). */
  const deniedAt = new Map<string, number>();
  let sentTimes: number[] = [];
  let suppressed = 0;
  const pending = new Set<Promise<void>>();

  function deliver(alert: Alert): void {
    const sending = sendWebhook(alert, target).then((result) => {
      if (result.ok) logger.info('alert-sent', { kind: alert.kind, status: result.status });
      else {
        logger.warn('alert-failed', {
          kind: alert.kind,
          webhook: webhookOrigin(target.url),
          status: result.status,
          error: result.error,
        });
      }
    });
    pending.add(sending);
    void sending.finally(() => pending.delete(sending));
  }

  function raise(alert: Alert): void {
    if (!url) return;
    const time = alert.time;
    sentTimes = sentTimes.filter((sent) => time - sent < HOUR_MS);
    if (sentTimes.length < MAX_PER_HOUR) {
      if (suppressed > 0) logger.info('alerts-suppressed', { count: suppressed });
      suppressed = 0;
      sentTimes.push(time);
      deliver(alert);
      return;
    }
    suppressed += 1;
    // The first alert over the limit becomes the one line that says more are being held back.
    if (suppressed === 1) {
      deliver({
        kind: 'suppressed',
        title: 'More alerts suppressed',
        text: `More than ${MAX_PER_HOUR} alerts within an hour: further alerts are not sent until the hour has passed. See the RelayDesk log for every event.`,
        time,
      });
    }
  }

  function describe(diagnosis: Diagnosis): string {
    return `${diagnosis.title}. How to fix: ${diagnosis.fix}`;
  }

  function onHeld(hold: HoldInfo): void {
    if (active.has('held')) return;
    active.add('held');
    raise({
      kind: 'held',
      title: `Mail is held: ${hold.diagnosis.title}`,
      text: `RelayDesk stopped sending to the upstream and keeps the mail queued. ${describe(hold.diagnosis)} Upstream said: ${hold.reason}`,
      time: now(),
    });
  }

  function onReleased(): void {
    active.delete('held');
  }

  function onFailed(failure: {
    message: { envelope: { id: string } };
    recipients: unknown[];
    diagnosis: Diagnosis;
  }): void {
    const id = failure.message.envelope.id;
    if (active.has(`failed:${id}`)) return;
    active.add(`failed:${id}`);
    const count = failure.recipients.length;
    raise({
      kind: 'failed',
      title: `A message failed for good: ${failure.diagnosis.title}`,
      text: `Message ${id} could not be delivered to ${count} recipient${count === 1 ? '' : 's'} and will not be retried. ${describe(failure.diagnosis)}`,
      time: now(),
    });
  }

  function onDenied(denied: { ip: string }): void {
    const time = now();
    const last = deniedAt.get(denied.ip);
    if (last !== undefined && time - last < DAY_MS) return;
    deniedAt.set(denied.ip, time);
    raise({
      kind: 'device-denied',
      title: `A device was refused: ${denied.ip}`,
      text: `The device at ${denied.ip} tried to send mail but is not in allowedClients. If it is yours, add its address to "allowedClients" in the config.`,
      time,
    });
  }

  function checkQueueAge(): void {
    const time = now();
    const limitMs = config.queueAgeMinutes * 60 * 1000;
    const waiting = options.listQueue().filter((item) => WAITING.has(item.status));
    const oldest = waiting.reduce<QueueItem | null>(
      (older, item) => (older === null || item.receivedAt < older.receivedAt ? item : older),
      null,
    );
    if (!oldest || time - oldest.receivedAt <= limitMs) {
      active.delete('queue-age');
      return;
    }
    if (active.has('queue-age')) return;
    active.add('queue-age');
    const minutes = Math.floor((time - oldest.receivedAt) / 60_000);
    raise({
      kind: 'queue-age',
      title: `Mail has waited ${minutes} minutes in the queue`,
      text: `${waiting.length} message${waiting.length === 1 ? ' is' : 's are'} waiting; the oldest (${oldest.id}) arrived ${minutes} minutes ago, over the ${config.queueAgeMinutes}-minute alert line.${oldest.lastDiagnosis ? ` Last problem: ${oldest.lastDiagnosis}.` : ''}`,
      time,
    });
  }

  const timer = url ? setInterval(checkQueueAge, QUEUE_CHECK_MS) : null;
  timer?.unref();
  if (url) {
    events.on('held', onHeld);
    events.on('released', onReleased);
    events.on('failed', onFailed);
    events.on('denied', onDenied);
  }

  return {
    checkQueueAge,
    async settled() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
    stop() {
      if (timer) clearInterval(timer);
      events.off('held', onHeld);
      events.off('released', onReleased);
      events.off('failed', onFailed);
      events.off('denied', onDenied);
    },
  };
}
