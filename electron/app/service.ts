/**
 * The desktop app's controller around the relay engine, shared by Electron's main process and the
 * browser admin (`serve --admin`). It wires the app's parts together, each in its own module:
 * - relay-lifecycle.ts: running, stopping and restarting the relay, and its state;
 * - config-apply.ts: loading the config and applying new settings without a restart of the app;
 * - relay-activity.ts: recent activity and desktop notices from the relay's events;
 * - status-view.ts (with health.ts, devices.ts): what the window, tray and control socket show;
 * - devices.ts: allowing a refused device;
 * - upstream-secrets.ts: where secrets come from, and storing them;
 * - upstream-test.ts: the connection test and the test email; microsoft-signin.ts: signing in.
 * Plain Node: never imports 'electron'.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { parseConfig } from '../config/index.ts';
import type { ConfigProblem } from '../config/types.ts';
import { startControlServer } from '../relay/control.ts';
import type { Logger } from '../relay/log.ts';
import type { Relay } from '../relay/relay.ts';
import { createSpool, inspectSpool, type Spool } from '../relay/spool.ts';
import type { SecretStore } from '../secrets/index.ts';
import type { SecretKind } from '../relay/secret-accounts.ts';
import type {
  ActivityEntry,
  ApplyResult,
  AppStatus,
  CheckView,
  ConfigView,
  NetworkSuggestion,
  PushedEvents,
  QueueItem,
  SecretResult,
  SignInMethod,
  SignInResultView,
  TestAlertView,
  TestEmailView,
} from '../shared/ipc.ts';
import { createAppConfig } from './config-apply.ts';
import { allowDevice } from './devices.ts';
import { signIn } from './microsoft-signin.ts';
import { suggestNetworks } from './network.ts';
import { createRelayActivity } from './relay-activity.ts';
import { createSubjectCache } from './subjects.ts';
import { createRelayLifecycle } from './relay-lifecycle.ts';
import { createStatusView } from './status-view.ts';
import { createUpstreamSecrets } from './upstream-secrets.ts';
import { sendTestEmail, testConnection } from './upstream-test.ts';
import { sendAppTestAlert } from './test-alert.ts';

export interface RelayServiceOptions {
  dataDir: string;
  configPath: string;
  secrets: SecretStore;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** Answer `relaydesk status` and `relaydesk queue` on the data folder's control socket. Default true. */
  control?: boolean;
  /** How long a settings change or a pause waits for sessions and deliveries in flight. Default 10 s. */
  stopTimeoutMs?: number;
  /**
   * Opens a sign-in page in the system browser (Electron's shell.openExternal). Without it (`serve
   * --admin`, whose browser may be on another computer) a sign-in uses a device code.
   */
  openBrowser?: (url: string) => Promise<void>;
}

/** What deserves a desktop notification. */
export interface Notice {
  kind: 'failed' | 'denied' | 'held';
  title: string;
  body: string;
}

/** The pushes the IPC contract forwards to the window (status, activity, test-email, signin), and notices. */
export type ServiceEvents = PushedEvents & { notice: [Notice] };

export interface RelayService {
  readonly events: EventEmitter<ServiceEvents>;
  /** Loads the config and starts the relay; a first run (no config file) waits for the wizard. */
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): AppStatus;
  listQueue(): QueueItem[];
  retry(id: string): boolean;
  remove(id: string): Promise<boolean>;
  flush(): number;
  activity(): ActivityEntry[];
  getConfig(): Promise<ConfigView>;
  validateConfig(raw: unknown): ConfigProblem[];
  /** Validates, starts the relay with it (queue kept), then saves it; refuses with problems by path. */
  applyConfig(raw: unknown): Promise<ApplyResult>;
  pause(): Promise<AppStatus>;
  resume(): Promise<AppStatus>;
  allowDevice(ip: string): Promise<ApplyResult>;
  /** Stores a secret for the mailbox or app named in `raw` (a draft config). Never returned anywhere. */
  storeSecret(kind: SecretKind, secret: string, raw: unknown): Promise<SecretResult>;
  testConnection(raw: unknown): Promise<CheckView>;
  sendTestEmail(to: string | null): Promise<TestEmailView>;
  /** One test alert on every channel of the saved config's `alerts` (webhook, admin mail). */
  sendTestAlert(): Promise<TestAlertView>;
  /** Signs in with Microsoft for the app in `raw` (a draft config); the prompt goes out as a `signin` event. */
  signIn(method: SignInMethod, raw: unknown): Promise<SignInResultView>;
  suggestNetwork(): NetworkSuggestion;
}

/** Status pushes are coalesced: a burst of events is one update. */
const STATUS_COALESCE_MS = 150;
/** Deferred mail becomes ready by the clock, not by an event: refresh now and then. */
const STATUS_TICK_MS = 5000;

export function createRelayService(options: RelayServiceOptions): RelayService {
  const { dataDir, configPath, secrets, logger } = options;
  const env = options.env ?? process.env;
  const upstreamDeps = { secrets, env, fetch: options.fetch, dataDir };
  const events = new EventEmitter<ServiceEvents>();
  let spool: Spool | null = null;
  let control: { close(): Promise<void> } | null = null;
  let statusTimer: NodeJS.Timeout | null = null;
  let ticker: NodeJS.Timeout | null = null;

  function changed(): void {
    if (statusTimer) return;
    statusTimer = setTimeout(() => {
      statusTimer = null;
      events.emit('status', view.status());
    }, STATUS_COALESCE_MS);
    statusTimer.unref?.();
  }

  const subjects = createSubjectCache();
  const activity = createRelayActivity({ events, spool: () => spool, changed, subjects });
  const lifecycle = createRelayLifecycle({
    dataDir,
    secrets,
    logger,
    env,
    fetch: options.fetch,
    stopTimeoutMs: options.stopTimeoutMs ?? 10_000,
    attach: activity.attach,
  });
  const upstreamSecrets = createUpstreamSecrets({ secrets, env, logger });
  const appConfig = createAppConfig({
    configPath,
    logger,
    lifecycle,
    upstreamSecrets,
    secretStore: () => secrets.describe(),
    changed,
  });
  const view = createStatusView({ dataDir, lifecycle, appConfig });

  function retry(id: string): boolean {
    const done = lifecycle.relay?.retry(id) ?? false;
    changed();
    return done;
  }

  async function remove(id: string): Promise<boolean> {
    const relay = lifecycle.relay;
    const done = relay ? await relay.remove(id) : false;
    if (done) activity.deleted(id);
    changed();
    return done;
  }

  /** Subjects of what was in the spool before this relay started (new mail's are read on arrival). */
  async function readQueuedSubjects(): Promise<void> {
    const source = spool;
    if (!source) return;
    const messages = await inspectSpool(join(dataDir, 'spool')).catch(() => []);
    subjects.keepOnly(messages.map((m) => m.envelope.id));
    const read = await subjects.fill(
      messages.map((m) => ({ id: m.envelope.id, size: m.size, open: (end) => source.openBody(m, { end }) })),
    );
    if (read > 0) changed();
  }

  /** The queue for the window, each message with its subject (what the admin recognises it by). */
  function listQueue(): QueueItem[] {
    const items = view.listQueue();
    // Delivered, failed-and-deleted and removed messages' subjects go with them.
    subjects.keepOnly(items.map((item) => item.id));
    return items.map((item) => ({ ...item, subject: subjects.get(item.id) }));
  }

  function flush(): number {
    const count = lifecycle.relay?.flush() ?? 0;
    changed();
    return count;
  }

  async function pause(): Promise<AppStatus> {
    return lifecycle.exclusive(async () => {
      if (lifecycle.state === 'running' || lifecycle.state === 'failed') {
        await lifecycle.stop();
        lifecycle.settle('paused');
        logger.info('paused', {});
      }
      changed();
      return view.status();
    });
  }

  async function resume(): Promise<AppStatus> {
    return lifecycle.exclusive(async () => {
      if (lifecycle.state === 'paused' || lifecycle.state === 'failed') {
        logger.info('resumed', {});
        await lifecycle.tryStart(appConfig.config);
      }
      changed();
      return view.status();
    });
  }

  /** What `relaydesk status` and `relaydesk queue` reach through the control socket. */
  const controlTarget: Relay = {
    events: new EventEmitter(),
    start: async () => {
      await resume();
    },
    stop: async () => {
      await pause();
    },
    status: view.controlStatus,
    listQueue: () => lifecycle.relay?.listQueue() ?? [],
    flush: () => flush(),
    retry: (id) => retry(id),
    remove: (id) => remove(id),
  };

  return {
    events,
    async start() {
      await lifecycle.exclusive(async () => {
        if (options.control !== false) control = await startControlServer(dataDir, controlTarget);
        spool = await createSpool(join(dataDir, 'spool'));
        const loaded = await appConfig.load();
        if (!loaded.exists) {
          lifecycle.settle('unconfigured');
          await lifecycle.refreshOfflineQueue();
        } else if (loaded.problems.length > 0) {
          lifecycle.settle(
            'failed',
            `the config file ${configPath} has ${loaded.problems.length} problem(s): fix them in Settings`,
          );
          await lifecycle.refreshOfflineQueue();
        } else {
          upstreamSecrets.bindEnvironment(loaded.config.upstream);
          await lifecycle.tryStart(loaded.config);
        }
        void readQueuedSubjects();
        ticker = setInterval(changed, STATUS_TICK_MS);
        ticker.unref?.();
        changed();
      });
    },
    async stop() {
      await lifecycle.exclusive(async () => {
        if (ticker) clearInterval(ticker);
        if (statusTimer) clearTimeout(statusTimer);
        ticker = statusTimer = null;
        await lifecycle.stop();
        lifecycle.settle('stopped');
        await control?.close();
        control = null;
      });
    },
    status: () => view.status(),
    listQueue,
    retry,
    remove,
    flush,
    activity: () => activity.list(),
    getConfig: () => appConfig.view(),
    validateConfig: (raw) => parseConfig(raw).problems,
    applyConfig: (raw) => appConfig.apply(raw),
    pause,
    resume,
    allowDevice: (ip) => allowDevice(ip, appConfig, logger),
    async storeSecret(kind, secret, raw) {
      const result = await upstreamSecrets.store(kind, secret, raw, {
        config: appConfig.config,
        relay: lifecycle.relay,
      });
      if (result.ok) changed();
      return result;
    },
    testConnection: (raw) => testConnection(raw, { appConfig, upstreamSecrets, upstreamDeps, logger }),
    signIn: (method, raw) =>
      signIn(method, raw, {
        dataDir,
        secrets,
        logger,
        events,
        fetch: options.fetch,
        openBrowser: options.openBrowser,
        relay: () => lifecycle.relay,
        pushStatus: () => events.emit('status', view.status()),
      }),
    async sendTestEmail(to) {
      const result = await sendTestEmail(to, { appConfig, upstreamDeps, logger, activity });
      events.emit('test-email', result);
      changed();
      return result;
    },
    async sendTestAlert() {
      const result = await sendAppTestAlert(appConfig.config, upstreamDeps);
      for (const line of result.channels) {
        logger.info('alert-test', { channel: line.channel, ok: line.ok, detail: line.detail });
      }
      return result;
    },
    suggestNetwork: () => suggestNetworks(),
  };
}
