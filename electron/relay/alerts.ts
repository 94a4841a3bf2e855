/**
 * Alerts: tells the admin, by a route other than the mail that failed, when mail is held, a message
 * failed for good, the queue grows old, a device is denied, or a delegated sign-in is about to end.
 * Channels: a webhook (alerts-webhook.ts) and mail to `alerts.email` through the upstream
 * (alerts-mail.ts); when the upstream is what failed the mail is not attempted and the webhook says so.
 * Each condition is sent once while it lasts, at most MAX_PER_HOUR alerts an hour, or all of them in
 * one daily digest. A channel that fails is logged, never thrown. A message that failed for good also
 * earns its sender a notice, as IIS SMTP's NDR did.
 */
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import type { AlertsConfig } from '../config/types.ts';
import {
  buildAlertMail,
  buildFailureNotice,
  isAutomatedMessage,
  type AlertMailer,
  type MailResult,
} from './alerts-mail.ts';
import { sendWebhook, webhookOrigin, type WebhookResult } from './alerts-webhook.ts';
import type { Diagnosis } from './diagnosis.ts';
import { nodeFileSystem, replaceFile, retrying } from '../platform/fs-retry.ts';
import type { Logger } from './log.ts';
import type { SignedInAccount } from './oauth/signed-in.ts';
import type { HoldInfo } from './queue.ts';
import type { SpooledMessage } from './spool.ts';
import type { QueueItem } from './views.ts';

export type AlertKind =
  | 'held'
  | 'failed'
  | 'queue-age'
  | 'device-denied'
  | 'signin-expiring'
  | 'suppressed'
  | 'digest'
  | 'mail-flows-again'
  | 'test';

export interface Alert {
  kind: AlertKind;
  title: string;
  text: string;
  /** Epoch milliseconds. */
  time: number;
  /** The upstream itself is what failed: a mail alert could not get through, so none is attempted. */
  upstreamDown?: boolean;
}

/** More than this many alerts in an hour become one "more alerts suppressed" line. */
export const MAX_PER_HOUR = 10;
/** Notices to devices' senders: at most this many an hour in all, and NOTICES_PER_SENDER to one address. */
export const NOTICES_PER_HOUR = 20;
export const NOTICES_PER_SENDER = 5;
/** Entra ID ends a delegated sign-in unused this long (AADSTS700082)... */
export const SIGNIN_INACTIVE_DAYS = 90;
/** ...and the admin hears of it this many days before, when daily renewals have kept failing. */
export const SIGNIN_WARN_DAYS = 14;
/** A digest lists this many alerts in full, then counts the rest. */
const DIGEST_MAX_LISTED = 50;
const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const TICK_MS = 60 * 1000;
/** Queued, not yet delivered or failed: the messages whose age the admin cares about. */
const WAITING = new Set(['queued', 'active', 'deferred', 'held']);

export interface FailedEvent {
  message: SpooledMessage;
  recipients: { address: string; response: string }[];
  diagnosis: Diagnosis;
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
  /** Mail through the upstream: absent, neither `alerts.email` nor sender notices are sent. */
  mailer?: AlertMailer;
  /** True while the queue is held for the upstream: no mail is attempted then. */
  upstreamHeld?: () => boolean;
  /** The first bytes of a queued message (its headers), for the notice to its sender. */
  readHeaders?: (message: SpooledMessage) => Promise<Buffer>;
  /** The delegated sign-in, if the upstream uses one: for the "sign-in expiring" alert. */
  signedIn?: () => SignedInAccount | null;
  /**
   * Where the daily digest keeps what it collected and when it is due, so that a restart (Windows
   * Update at night) loses neither. Absent: kept in memory only.
   */
  digestFile?: string;
}

interface DigestState {
  collected: Alert[];
  dueAt: number;
}

/** The saved digest, or null when there is none or it cannot be read (then it starts afresh). */
function readDigest(file: string | undefined): DigestState | null {
  if (!file) return null;
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<DigestState>;
    if (!Array.isArray(saved.collected) || typeof saved.dueAt !== 'number') return null;
    return { collected: saved.collected, dueAt: saved.dueAt };
  } catch {
    return null;
  }
}

export interface Alerts {
  /** Looks for a message waiting longer than `queueAgeMinutes`. */
  checkQueueAge(): void;
  /** What the timer does every minute: queue age, sign-in expiry, and the daily digest when it is due. */
  tick(): void;
  /** Resolves when every alert raised so far has been sent or has failed. */
  settled(): Promise<void>;
  stop(): void;
}

/** The next time the local clock shows `hour`:00 after `after`. */
export function nextDigestTime(after: number, hour: number): number {
  const next = new Date(after);
  next.setHours(hour, 0, 0, 0);
  if (next.getTime() <= after) next.setDate(next.getDate() + 1);
  return next.getTime();
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

export function createAlerts(options: AlertsOptions): Alerts {
  const { config, events, logger } = options;
  const now = options.now ?? Date.now;
  const host = options.host ?? osHostname();
  const url = config.webhookUrl;
  const mailer = options.mailer ?? null;
  const emailTo = mailer ? config.email : null;
  const upstreamHeld = options.upstreamHeld ?? (() => false);
  const alerting = url !== null || emailTo !== null;
  const noticing = config.senderNotices && mailer !== null && options.readHeaders !== undefined;
  /** Conditions already reported and still true: not reported again until they clear. */
  const active = new Set<string>();
  /** A denied device's IP → when it was last reported (once a day each). */
  const deniedAt = new Map<string, number>();
  let sentTimes: number[] = [];
  let suppressed = 0;
  /** Alerts waiting for the daily digest, and when it is due (kept in `digestFile` across restarts). */
  const savedDigest = config.digest === 'daily' ? readDigest(options.digestFile) : null;
  let collected: Alert[] = savedDigest?.collected ?? [];
  let digestAt = savedDigest?.dueAt ?? nextDigestTime(now(), config.digestHour);
  let savingDigest: Promise<void> = Promise.resolve();
  /** Alerts that could not be mailed while the upstream was down: mailed once it takes mail again. */
  let missedByEmail: Alert[] = [];
  let noticeTimes: { time: number; to: string }[] = [];
  const pending = new Set<Promise<void>>();

  function track(work: Promise<void>): void {
    pending.add(work);
    void work.finally(() => pending.delete(work));
  }

  async function mailAlert(alert: Alert, to: string): Promise<MailResult> {
    const from = mailer!.from();
    if (!from) return { ok: false, error: 'no sending mailbox is known (sign in, or set upstream.user)' };
    return mailer!.send(to, await buildAlertMail(alert, { from, to, host }));
  }

  /** Mail first, then the webhook, which says when the mail did not go. */
  async function dispatch(alert: Alert): Promise<void> {
    let emailNote = '';
    if (emailTo) {
      if (alert.upstreamDown || upstreamHeld()) {
        missedByEmail.push(alert);
        emailNote = `Not emailed to ${emailTo}: the upstream is what failed, so that mail would not get through; it is sent once the upstream takes mail again.`;
        logger.warn('alert-email-skipped', { kind: alert.kind, reason: 'the upstream is held' });
      } else {
        const result = await mailAlert(alert, emailTo);
        if (result.ok) logger.info('alert-sent', { kind: alert.kind, channel: 'email', reply: result.reply });
        else {
          emailNote = `The email alert to ${emailTo} could not be sent: ${result.error}`;
          logger.warn('alert-failed', { kind: alert.kind, channel: 'email', error: result.error });
        }
      }
    }
    if (url) {
      const text = emailNote ? `${alert.text}\n\n${emailNote}` : alert.text;
      const result = await sendWebhook(
        { ...alert, text },
        { url, format: config.webhookFormat, host, fetch: options.fetch },
      );
      if (result.ok)
        logger.info('alert-sent', { kind: alert.kind, channel: 'webhook', status: result.status });
      else {
        logger.warn('alert-failed', {
          kind: alert.kind,
          channel: 'webhook',
          webhook: webhookOrigin(url),
          status: result.status,
          error: result.error,
        });
      }
    }
  }

  /** One write at a time, each the whole state: the last one written is the latest. */
  function saveDigest(): void {
    const file = options.digestFile;
    if (!file) return;
    const state: DigestState = { collected, dueAt: digestAt };
    const saving = savingDigest.then(() =>
      replaceFile(retrying(nodeFileSystem), file, JSON.stringify(state)).catch((error: Error) =>
        logger.warn('alerts-digest-unsaved', { file, error: error.message }),
      ),
    );
    savingDigest = saving;
    track(saving);
  }

  function raise(alert: Alert): void {
    if (!alerting) return;
    if (config.digest === 'daily') {
      collected.push(alert);
      saveDigest();
      return;
    }
    const time = alert.time;
    sentTimes = sentTimes.filter((sent) => time - sent < HOUR_MS);
    if (sentTimes.length < MAX_PER_HOUR) {
      if (suppressed > 0) logger.info('alerts-suppressed', { count: suppressed });
      suppressed = 0;
      sentTimes.push(time);
      track(dispatch(alert));
      return;
    }
    suppressed += 1;
    // The first alert over the limit becomes the one line that says more are being held back.
    if (suppressed === 1) {
      track(
        dispatch({
          kind: 'suppressed',
          title: 'More alerts suppressed',
          text: `More than ${MAX_PER_HOUR} alerts within an hour: further alerts are not sent until the hour has passed. See the RelayDesk log for every event.`,
          time,
        }),
      );
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
      upstreamDown: true,
    });
  }

  function onReleased(): void {
    active.delete('held');
    if (missedByEmail.length === 0 || !emailTo) return;
    const missed = missedByEmail;
    missedByEmail = [];
    const time = now();
    const listed = missed.map(
      (alert) => `- ${new Date(alert.time).toISOString()} ${alert.title}\n  ${alert.text}`,
    );
    // Straight to the mail: the webhook had these when they happened.
    track(
      mailAlert(
        {
          kind: 'mail-flows-again',
          title: 'Mail flows again',
          text: `The upstream takes mail again. While it did not, ${plural(missed.length, 'alert')} could not be emailed:\n\n${listed.join('\n')}`,
          time,
        },
        emailTo,
      ).then((result) => {
        if (result.ok)
          logger.info('alert-sent', { kind: 'mail-flows-again', channel: 'email', reply: result.reply });
        else logger.warn('alert-failed', { kind: 'mail-flows-again', channel: 'email', error: result.error });
      }),
    );
  }

  function onFailed(failure: FailedEvent): void {
    const id = failure.message.envelope.id;
    if (noticing) track(notifySender(failure));
    if (active.has(`failed:${id}`)) return;
    active.add(`failed:${id}`);
    const count = failure.recipients.length;
    raise({
      kind: 'failed',
      title: `A message failed for good: ${failure.diagnosis.title}`,
      text: `Message ${id} from ${failure.message.envelope.mailFrom || '<>'} (device ${failure.message.envelope.client.ip}) could not be delivered to ${plural(count, 'recipient')} and will not be retried. ${describe(failure.diagnosis)}`,
      time: now(),
    });
  }

  /** IIS's NDR: the device's sender hears that the message did not go, with its original headers. */
  async function notifySender(failure: FailedEvent): Promise<void> {
    const { envelope } = failure.message;
    const skip = (reason: string) => logger.info('notice-skipped', { queueId: envelope.id, reason });
    if (envelope.mailFrom === '') return skip('the message has a null sender (<>)');
    if (upstreamHeld()) return skip('the upstream is held');
    const time = now();
    noticeTimes = noticeTimes.filter((sent) => time - sent.time < HOUR_MS);
    const to = envelope.mailFrom;
    const toSender = noticeTimes.filter((sent) => sent.to.toLowerCase() === to.toLowerCase()).length;
    if (noticeTimes.length >= NOTICES_PER_HOUR || toSender >= NOTICES_PER_SENDER) {
      return skip(
        `rate limit: at most ${NOTICES_PER_SENDER} notices an hour to one sender, ${NOTICES_PER_HOUR} in all`,
      );
    }
    // Counted now, before anything is awaited: a burst of failures sees its own notices.
    noticeTimes.push({ time, to });
    let headers: Buffer;
    try {
      headers = await options.readHeaders!(failure.message);
    } catch (error) {
      return skip(`the message cannot be read: ${(error as Error).message}`);
    }
    if (isAutomatedMessage(envelope, headers)) return skip('the message is itself an automatic notice');
    const from = mailer!.from();
    if (!from) return skip('no sending mailbox is known');
    const notice = await buildFailureNotice(
      { envelope, recipients: failure.recipients, diagnosis: failure.diagnosis, headers, time },
      { from, to, host },
    );
    const result = await mailer!.send(to, notice);
    if (result.ok) logger.info('notice-sent', { queueId: envelope.id, to, reply: result.reply });
    else logger.warn('notice-failed', { queueId: envelope.id, to, error: result.error });
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

  function checkSignIn(): void {
    const account = options.signedIn?.() ?? null;
    const time = now();
    const renewedAt = account ? (account.lastRefreshAt ?? account.signedInAt) : 0;
    const endsAt = renewedAt + SIGNIN_INACTIVE_DAYS * DAY_MS;
    if (!account || endsAt - time > SIGNIN_WARN_DAYS * DAY_MS) {
      active.delete('signin-expiring');
      return;
    }
    if (active.has('signin-expiring')) return;
    active.add('signin-expiring');
    const days = Math.max(0, Math.floor((endsAt - time) / DAY_MS));
    raise({
      kind: 'signin-expiring',
      title: `Sign-in expiring: ${account.username} in ${plural(days, 'day')}`,
      text: `RelayDesk has not renewed the Microsoft sign-in of ${account.username} since ${new Date(renewedAt).toISOString()} (it tries every day; see the log for why it fails). Microsoft ends a sign-in unused for ${SIGNIN_INACTIVE_DAYS} days: from ${new Date(endsAt).toISOString()} mail is held until someone signs in again. Check that this computer reaches login.microsoftonline.com, or sign in again now (relaydesk signin, or Sign in in the RelayDesk window).`,
      time,
    });
  }

  function sendDigest(time: number): void {
    const alerts = collected;
    collected = [];
    if (alerts.length === 0) return;
    const listed = alerts
      .slice(0, DIGEST_MAX_LISTED)
      .map((alert) => `- ${new Date(alert.time).toISOString()} ${alert.title}\n  ${alert.text}`);
    const more = alerts.length - listed.length;
    track(
      dispatch({
        kind: 'digest',
        title: `Daily summary: ${plural(alerts.length, 'alert')}`,
        text: `${plural(alerts.length, 'alert')} since the last summary:\n\n${listed.join('\n')}${more > 0 ? `\n\n...and ${more} more: see the RelayDesk log.` : ''}`,
        time,
      }),
    );
  }

  function tick(): void {
    checkQueueAge();
    checkSignIn();
    const time = now();
    if (config.digest === 'daily' && time >= digestAt) {
      sendDigest(time);
      digestAt = nextDigestTime(time, config.digestHour);
      saveDigest();
    }
  }

  const timer = alerting || noticing ? setInterval(tick, TICK_MS) : null;
  timer?.unref();
  if (alerting || noticing) {
    events.on('held', onHeld);
    events.on('released', onReleased);
    events.on('failed', onFailed);
    events.on('denied', onDenied);
  }

  return {
    checkQueueAge,
    tick,
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

export interface TestAlertResult {
  webhook: WebhookResult | null;
  email: MailResult | null;
}

/** "Send a test alert" (`relaydesk alerts test`, the window): one test alert on every configured channel. */
export async function sendTestAlert(
  config: AlertsConfig,
  deps: { mailer?: AlertMailer; fetch?: typeof fetch; host?: string; now?: number },
): Promise<TestAlertResult> {
  const host = deps.host ?? osHostname();
  const alert: Alert = {
    kind: 'test',
    title: 'Test alert',
    text: 'This is a test alert from RelayDesk. Alerts reach you here.',
    time: deps.now ?? Date.now(),
  };
  const email = async (): Promise<MailResult | null> => {
    if (!config.email || !deps.mailer) return null;
    const from = deps.mailer.from();
    if (!from) return { ok: false, error: 'no sending mailbox is known (sign in, or set upstream.user)' };
    return deps.mailer.send(config.email, await buildAlertMail(alert, { from, to: config.email, host }));
  };
  const [webhook, mail] = await Promise.all([
    config.webhookUrl
      ? sendWebhook(alert, { url: config.webhookUrl, format: config.webhookFormat, host, fetch: deps.fetch })
      : null,
    email(),
  ]);
  return { webhook, email: mail };
}
