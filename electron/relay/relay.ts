/**
 * The relay engine: LAN listeners, spool, queue, delivery and status, wired together. The CLI's
 * `serve` and the desktop app's main process both run exactly this.
 */
import { statfs } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { ListenerConfig, RelayConfig } from '../config/types.ts';
import type { SecretStore } from '../secrets/index.ts';
import { createClientMatcher } from './access.ts';
import { createAlerts, type Alerts } from './alerts.ts';
import { createTransportMailer, NOTICE_HEADER_BYTES } from './alerts-mail.ts';
import { describeUpstream } from './check.ts';
import { createDelivery, type Delivery } from './delivery.ts';
import type { Diagnosis } from './diagnosis.ts';
import { ListenError, startListener, type LanListener } from './lan/listener.ts';
import type { SessionHost } from './lan/session.ts';
import { createLanAuth, type LanAuth } from './lan-auth.ts';
import { LanTlsError, loadLanTls, type LanTls } from './lan-tls.ts';
import type { Logger } from './log.ts';
import { createPreparer, PREPARE_GROWTH_ALLOWANCE } from './message/prepare.ts';
import { createPickup, defaultBadmailDir, PickupError, type Pickup } from './pickup.ts';
import { createQueue, type Queue, type QueueCounts, type QueueEntry } from './queue.ts';
import { isLocked, type FileSystem } from '../platform/fs-retry.ts';
import { createSpool, type Spool } from './spool.ts';
import {
  createStatusTracker,
  type DayCounters,
  type DeviceRecord,
  type StatusTracker,
  type UpstreamStatus,
} from './status.ts';
import { createTokenProviderFor, createUpstreamTransport, relayHostname } from './upstream.ts';
import { createUpstreamCapabilities } from './upstream-capabilities.ts';
import { describeFailure, type UpstreamFailure } from './upstream-failure.ts';
import { diagnose, diagnosisContextFor } from './diagnosis.ts';
import { GRAPH_SCOPE, SMTP_SCOPE } from './oauth-token.ts';
import { isDelegated } from './oauth/endpoints.ts';
import { startKeepAlive, type KeepAlive } from './oauth/keep-alive.ts';
import { readSignedIn, type SignedInAccount } from './oauth/signed-in.ts';

export interface RelayOptions {
  config: RelayConfig;
  dataDir: string;
  secrets: SecretStore;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** The spool's and status file's operations: tests hand in one that refuses like Windows. */
  files?: FileSystem;
}

export interface RelayStatus {
  running: boolean;
  pid: number;
  startedAt: number;
  listeners: { host: string; port: number; tls: string }[];
  upstream: UpstreamStatus & {
    hold: { since: number; reason: string; diagnosis: Diagnosis; retryAt: number } | null;
  };
  queue: QueueCounts;
  today: DayCounters;
  devices: DeviceRecord[];
  /** Delegated OAuth 2.0: who is signed in and since when (null: nobody; absent: not a delegated upstream). */
  signedIn?: SignedInAccount | null;
}

export interface Relay {
  readonly events: EventEmitter;
  start(): Promise<void>;
  /** Stops accepting (421), lets sessions mid-DATA and deliveries in flight finish, then closes. */
  stop(timeoutMs?: number): Promise<void>;
  status(): RelayStatus;
  listQueue(): QueueEntry[];
  flush(): number;
  retry(id: string): boolean;
  remove(id: string): Promise<boolean>;
}

/** Holds that a new sign-in ends: the diagnosis rows of a delegated sign-in that stopped working. */
const SIGNIN_DIAGNOSES = /^signin-/;

/** Space kept free on the spool's disk, so the queue's own state files can still be written. */
const DISK_RESERVE_BYTES = 64 * 1024 * 1024;
/**
 * A free-space reading this young, and this far above the line, answers MAIL without asking the file
 * system again (a statfs per message is measurable under load). A disk that fills up anyway gets its
 * 452 4.3.1 from the write that fails, never a 250.
 */
const FREE_SPACE_CACHE_MS = 1000;
const FREE_SPACE_MARGIN_BYTES = 512 * 1024 * 1024;

async function streamToBuffer(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export function createRelay(options: RelayOptions): Relay {
  const { config, logger } = options;
  const events = new EventEmitter();
  const hostname = relayHostname(config.upstream);
  const allowed = createClientMatcher(config.allowedClients);
  const listeners: LanListener[] = [];
  let spool: Spool;
  let queue: Queue;
  let delivery: Delivery;
  let status: StatusTracker;
  let pickup: Pickup | null = null;
  let alerts: Alerts | null = null;
  let draining = false;
  let startedAt = 0;
  let keepAlive: KeepAlive | null = null;
  let sizeLimit = config.limits.maxMessageBytes;
  /** What the upstream offered in its last EHLO: the LAN side refuses at once what it would refuse later. */
  const upstreamCapabilities = createUpstreamCapabilities();

  /** The mailbox mail goes out as: SMTP AUTH's user, or Graph's configured mailbox. */
  const sendingMailbox = config.upstream.type === 'graph' ? config.upstream.mailbox : config.upstream.user;
  const diagnosisContext = diagnosisContextFor(config.upstream, options.env);
  const upstreamDescription = describeUpstream(config);

  /** The spool disk's free space as last read, and when: read again at most every second... */
  let freeSpace = { bytes: 0, at: -Infinity };
  async function hasRoomFor(bytes: number): Promise<boolean> {
    const needed = bytes + DISK_RESERVE_BYTES;
    // ...unless that reading is close to the line: then every MAIL looks again.
    const fresh = performance.now() - freeSpace.at < FREE_SPACE_CACHE_MS;
    if (fresh && freeSpace.bytes > needed + FREE_SPACE_MARGIN_BYTES) return true;
    try {
      const stats = await statfs(spool.root);
      freeSpace = { bytes: stats.bavail * stats.bsize, at: performance.now() };
      return freeSpace.bytes > needed;
    } catch {
      return true;
    }
  }

  function sessionHost(listen: ListenerConfig, lanTls: LanTls | null, lanAuth: LanAuth): SessionHost {
    return {
      hostname,
      limits: {
        maxMessageBytes: sizeLimit,
        maxRecipients: config.limits.maxRecipients,
        idleTimeoutMs: config.limits.idleTimeoutSeconds * 1000,
        minDataBytesPerSecond: config.limits.minDataBytesPerSecond,
        sessionTimeoutMs: config.limits.sessionTimeoutSeconds * 1000,
        preparedGrowthBytes: PREPARE_GROWTH_ALLOWANCE,
      },
      startTls: listen.tls === 'starttls' && lanTls ? (socket) => lanTls.wrap(socket) : null,
      tlsFailed(ip, error) {
        const code = (error as NodeJS.ErrnoException).code;
        logger.warn('tls-failed', {
          client: ip,
          listener: `${listen.host}:${listen.port}`,
          reason: error.message,
          ...(code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' && !config.lanTls.allowLegacyTls
            ? { fix: 'the device speaks only TLS 1.0/1.1: set "lanTls.allowLegacyTls" to true' }
            : {}),
        });
      },
      isAllowed: (ip) => allowed.matches(ip),
      async authenticate(ip, user, password) {
        const ok = await lanAuth.authenticate(ip, user, password);
        if (!ok) logger.warn('auth-failed', { client: ip, user, mode: config.lanAuth.mode });
        return ok;
      },
      authGrantsRelay: lanAuth.grantsRelay,
      upstreamCapabilities: () => upstreamCapabilities.get(),
      denied(ip, sender) {
        status.deviceSeen(ip, sender, false);
        status.count('denied');
        logger.warn('denied', { client: ip, mailFrom: sender, reason: 'not in allowedClients' });
        events.emit('denied', { ip, sender });
      },
      hasRoomFor,
      beginMessage: (envelope) => spool.begin(envelope),
      accepted(message) {
        const { envelope } = message;
        status.count('accepted');
        status.deviceSeen(envelope.client.ip, envelope.mailFrom, true);
        // One line per message: a message that goes on to be sent is logged once, by the outcome of its
        // attempt (`delivered`, `deferred`, `failed`), which says what this line would. While the
        // upstream is held no outcome follows soon, so the admin sees the message arrive.
        logger[queue.holdInfo ? 'info' : 'debug']('accepted', {
          queueId: envelope.id,
          client: envelope.client.ip,
          helo: envelope.client.helo,
          mailFrom: envelope.mailFrom,
          rcptTo: envelope.rcptTo,
          size: message.size,
        });
        queue.add(message);
        events.emit('accepted', message);
      },
      rejected(info, reason, envelope) {
        logger.warn('rejected', {
          client: info.remoteAddress,
          reason,
          mailFrom: envelope.mailFrom,
          rcptTo: envelope.rcptTo,
        });
      },
      draining: () => draining,
    };
  }

  async function start(): Promise<void> {
    startedAt = Date.now();
    spool = await createSpool(join(options.dataDir, 'spool'), { fs: options.files });
    status = createStatusTracker(options.dataDir, upstreamDescription, options.files);
    const loaded = await spool.load();
    for (const name of loaded.discardedIncoming) {
      logger.warn('discarded', {
        queueId: name,
        reason: 'half-received when the relay stopped; never acknowledged',
      });
    }
    for (const { file, code } of loaded.held) {
      logger.warn('spool-file-held', {
        file,
        code,
        reason:
          'another program (antivirus, backup, search indexer) holds this queued message open; it is loaded at the next start',
      });
    }
    for (const { file, reason } of loaded.quarantined) {
      logger.error('quarantined', { file, reason, folder: join(spool.root, 'quarantine') });
    }

    queue = createQueue(spool, config.queue, {
      delivered(message, recipients) {
        status.count('delivered');
        logger.info('delivered', {
          queueId: message.envelope.id,
          client: message.envelope.client.ip,
          helo: message.envelope.client.helo,
          mailFrom: message.envelope.mailFrom,
          rcptTo: recipients.map((r) => r.address),
          size: message.size,
          reply: recipients[0]?.response,
        });
        events.emit('delivered', message);
      },
      deferred(message, response, diagnosis, retryAt) {
        status.count('deferred');
        logger.warn('deferred', {
          queueId: message.envelope.id,
          client: message.envelope.client.ip,
          mailFrom: message.envelope.mailFrom,
          rcptTo: message.envelope.rcptTo,
          reply: response,
          diagnosis: diagnosis.id,
          retryAt: new Date(retryAt).toISOString(),
        });
      },
      failed(message, recipients, diagnosis) {
        status.count('failed');
        logger.error('failed', {
          queueId: message.envelope.id,
          client: message.envelope.client.ip,
          mailFrom: message.envelope.mailFrom,
          rcptTo: recipients.map((r) => r.address),
          reply: recipients[0]?.response,
          diagnosis: diagnosis.id,
          fix: diagnosis.fix,
        });
        events.emit('failed', { message, recipients, diagnosis });
      },
      held(hold) {
        status.upstreamHeld(true);
        logger.error('held', {
          reason: hold.reason,
          diagnosis: hold.diagnosis.id,
          explanation: hold.diagnosis.explanation,
          fix: hold.diagnosis.fix,
          queued: queue.size,
        });
        events.emit('held', hold);
      },
      released() {
        status.upstreamHeld(false);
        logger.info('released', { queued: queue.size });
        events.emit('released');
      },
      ready: () => delivery?.kick(),
    });

    const upstreamDeps = {
      secrets: options.secrets,
      env: options.env,
      fetch: options.fetch,
      capabilities: upstreamCapabilities,
      dataDir: options.dataDir,
    };
    const delegated = isDelegated(config.upstream);
    // One provider for the transport and the keep-alive, so both renew the same sign-in.
    const tokens = delegated
      ? createTokenProviderFor(
          config.upstream,
          config.upstream.type === 'graph' ? GRAPH_SCOPE : SMTP_SCOPE,
          upstreamDeps,
        )
      : undefined;
    const transport = await createUpstreamTransport(config.upstream, { ...upstreamDeps, tokens });
    if (tokens) {
      keepAlive = startKeepAlive({
        tokens,
        onRenewed() {
          const account = readSignedIn(options.dataDir);
          logger.info('signin-renewed', { user: account?.username ?? null });
          // A hold for the sign-in is over once the sign-in works again.
          if (queue.holdInfo && SIGNIN_DIAGNOSES.test(queue.holdInfo.diagnosis.id)) queue.unhold();
        },
        onFailed(failure: UpstreamFailure) {
          const diagnosis = diagnose(failure, diagnosisContext);
          const reason = describeFailure(failure);
          logger.warn('signin-renewal-failed', { reason, diagnosis: diagnosis.id, fix: diagnosis.fix });
          status.upstreamError(reason, diagnosis);
          if (diagnosis.action === 'hold') queue.hold(diagnosis, reason);
        },
      });
    }
    delivery = createDelivery({
      queue,
      transport,
      maxConnections: config.upstream.maxConnections,
      messagesPerMinute: config.upstream.messagesPerMinute,
      prepare: createPreparer({ spool, hostname, mailbox: sendingMailbox, sender: config.sender }),
      diagnosisContext,
      onError(message, error) {
        const { code, message: text } = error as NodeJS.ErrnoException;
        const next = message.state.nextAttemptAt;
        logger.error('spool-error', {
          queueId: message.envelope.id,
          code: code ?? null,
          error: text,
          reason: isLocked(error)
            ? 'another program (antivirus, backup, search indexer) holds a file in the queue folder'
            : 'the queue folder refused the change',
          retryAt: next > Date.now() ? new Date(next).toISOString() : null,
        });
      },
      onAttempt(event) {
        if (event.kind === 'success') status.upstreamSuccess(event.response);
        else status.upstreamError(describeFailure(event.failure), event.diagnosis);
        events.emit('attempt', event);
      },
    });

    // A device's message arrives MIME-encoded, base64's third already in it: it is compared with the
    // upstream's limit as it is, less what preparing adds (docs/devices.md, "Huge scans").
    sizeLimit = Math.max(
      1024,
      Math.min(config.limits.maxMessageBytes, config.upstream.maxMessageBytes - PREPARE_GROWTH_ALLOWANCE),
    );
    const lanAuth = createLanAuth(config.lanAuth, { isAllowed: (ip) => allowed.matches(ip) });
    try {
      const listens = [config.listen, ...config.extraListeners];
      const tlsListen = listens.find((listen) => listen.tls !== 'none');
      let lanTls: LanTls | null = null;
      if (tlsListen) {
        lanTls = await loadLanTls(config.lanTls, options.dataDir, hostname).catch((error: unknown) => {
          throw error instanceof LanTlsError
            ? new ListenError('ETLSCERT', tlsListen.host, tlsListen.port, error)
            : error;
        });
        logger.info('lan-tls', {
          certFile: lanTls.certFile,
          generated: lanTls.generated,
          fingerprint: lanTls.fingerprint,
          allowLegacyTls: config.lanTls.allowLegacyTls,
        });
      }
      for (const listen of listens) {
        const listener = await startListener(
          {
            host: listen.host,
            port: listen.port,
            tls: listen.tls,
            secureContext: listen.tls === 'implicit' ? lanTls!.secureContext : null,
            maxConnectionsPerClient: config.limits.maxConnectionsPerClient,
            maxConnections: config.limits.maxConnections,
            maxUnlistedConnections: config.limits.maxUnlistedConnections,
            maxConnectionsPerUnlistedClient: config.limits.maxConnectionsPerUnlistedClient,
          },
          sessionHost(listen, lanTls, lanAuth),
        );
        listeners.push(listener);
        logger.info('listening', { host: listen.host, port: listener.port, tls: listen.tls });
      }
    } catch (error) {
      await Promise.all(listeners.map((l) => l.close()));
      await delivery.stop(0);
      throw error;
    }

    // Alerts: to the admin's webhook, and by mail through the upstream while the upstream works.
    alerts = createAlerts({
      config: config.alerts,
      events,
      listQueue: () => queue.list(),
      logger,
      fetch: options.fetch,
      mailer: createTransportMailer(
        transport,
        () => sendingMailbox ?? readSignedIn(options.dataDir)?.username ?? null,
      ),
      upstreamHeld: () => queue.holdInfo !== null,
      readHeaders: (message) => streamToBuffer(spool.openBody(message, { end: NOTICE_HEADER_BYTES })),
      signedIn: delegated ? () => readSignedIn(options.dataDir) : undefined,
      digestFile: join(options.dataDir, 'alerts-digest.json'),
    });
    for (const message of loaded.messages) queue.add(message);
    // Held messages are queued too (loaded at a later start): their pickup files must not be queued again.
    await startPickup(
      new Set([
        ...loaded.messages.map((m) => m.envelope.id),
        ...loaded.held.map(({ file }) => file.replace(/\.eml$/, '')),
      ]),
    );
    logger.info('started', {
      upstream: upstreamDescription,
      queued: loaded.messages.length,
      allowedClients: config.allowedClients,
      dataDir: options.dataDir,
    });
    delivery.kick();
    void keepAlive?.renewNow();
  }

  /** A pickup folder that cannot be used is logged; the relay still takes the devices' mail. */
  async function startPickup(queuedAtStart: ReadonlySet<string>): Promise<void> {
    const { dir, badmailDir, settleSeconds } = config.pickup;
    if (dir === null) return;
    const candidate = createPickup({
      dir,
      badmailDir: badmailDir ?? defaultBadmailDir(dir),
      settleMs: settleSeconds * 1000,
      spool,
      limits: { maxMessageBytes: sizeLimit, maxRecipients: config.limits.maxRecipients },
      logger,
      queuedAtStart,
      hasRoomFor,
      files: options.files,
      queued(message) {
        status.count('accepted');
        queue.add(message);
        events.emit('accepted', message);
      },
    });
    try {
      await candidate.start();
      pickup = candidate;
    } catch (error) {
      logger.error('pickup-failed', {
        dir,
        reason: (error as Error).message,
        ...(error instanceof PickupError
          ? {}
          : { fix: 'check that the folder exists and that RelayDesk may write to it' }),
      });
    }
  }

  async function stop(timeoutMs = 30_000): Promise<void> {
    draining = true;
    keepAlive?.stop();
    logger.info('stopping', { queued: queue?.size ?? 0 });
    await pickup?.stop();
    await Promise.all(listeners.map((l) => l.drain(timeoutMs)));
    await Promise.all(listeners.map((l) => l.close()));
    if (delivery) await delivery.stop(timeoutMs);
    // The last delivery records were written without a sync: a clean stop makes them durable.
    await spool?.close();
    await status?.flush();
    alerts?.stop();
    // Alert mails and notices still in flight end here, before the process does.
    await alerts?.settled();
    logger.info('stopped', { queued: queue?.size ?? 0 });
  }

  return {
    events,
    start,
    stop,
    status() {
      const hold = queue.holdInfo;
      return {
        running: true,
        pid: process.pid,
        startedAt,
        listeners: listeners.map((l, i) => ({
          host: l.address,
          port: l.port,
          tls: [config.listen, ...config.extraListeners][i]?.tls ?? 'none',
        })),
        upstream: {
          ...status.upstream,
          hold: hold
            ? { since: hold.since, reason: hold.reason, diagnosis: hold.diagnosis, retryAt: hold.retryAt }
            : null,
        },
        queue: queue.counts(),
        today: { ...status.today() },
        devices: status.devices(),
        ...(isDelegated(config.upstream) ? { signedIn: readSignedIn(options.dataDir) } : {}),
      };
    },
    listQueue: () => queue.list(),
    flush: () => queue.flush(),
    retry: (id) => queue.retry(id),
    remove: (id) => queue.remove(id),
  };
}
