/**
 * The desktop app's controller around the relay engine, shared by Electron's main process and the
 * browser admin (`serve --admin`): loads the config, runs the relay, applies new settings without a
 * restart of the app (the spool is on disk, so stop + start keeps the queue), pauses and resumes,
 * keeps recent activity, stores secrets, and runs the connection test and the test email.
 * Plain Node: never imports 'electron'.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  defaultConfig,
  loadConfigFile,
  parseConfig,
  PRESET_NAMES,
  PRESETS,
  presetFields,
  saveConfigFile,
} from '../config/index.ts';
import type { ConfigProblem, RelayConfig, UpstreamConfig } from '../config/types.ts';
import { createClientMatcher, normalizeIp, type ClientMatcher } from '../relay/access.ts';
import { checkUpstream } from '../relay/check.ts';
import { startControlServer } from '../relay/control.ts';
import type { AttemptEvent } from '../relay/delivery.ts';
import type { Diagnosis } from '../relay/diagnosis.ts';
import { ListenError } from '../relay/lan/listener.ts';
import type { Logger } from '../relay/log.ts';
import { offlineEntries, type HoldInfo, type QueueEntry } from '../relay/queue.ts';
import { createRelay, type Relay, type RelayStatus } from '../relay/relay.ts';
import { sendTestEmail as sendTestEmailUpstream } from '../relay/send-test.ts';
import { createSpool, inspectSpool, type Spool, type SpooledMessage } from '../relay/spool.ts';
import { localDate, readPersistedStatus } from '../relay/status.ts';
import { describeFailure } from '../relay/upstream-failure.ts';
import {
  endpointMismatch,
  KeychainUnavailableError,
  secretAccount,
  secretEndpoint,
  secretEnvName,
  storeSecret,
  type SecretKind,
  type SecretStore,
} from '../secrets/index.ts';
import type {
  ActivityEntry,
  ApplyResult,
  AppStatus,
  CheckView,
  ConfigView,
  NetworkSuggestion,
  QueueCountsView,
  QueueItem,
  RelayState,
  SecretResult,
  SecretSource,
  SignedInView,
  SignInMethod,
  SignInPromptView,
  SignInResultView,
  TestEmailView,
  UpstreamView,
} from '../shared/ipc.ts';
import { diagnose } from '../relay/diagnosis.ts';
import { signIn as signInWithMicrosoft } from '../relay/oauth/signin.ts';
import { readSignedIn, type SignedInAccount } from '../relay/oauth/signed-in.ts';
import { UpstreamError } from '../relay/upstream-failure.ts';
import { createActivityLog } from './activity.ts';
import { createSubjectCache } from './subjects.ts';
import { healthOf, summaryOf, type HealthInput } from './health.ts';
import { suggestNetworks } from './network.ts';
import { isDelegated } from '../relay/oauth/endpoints.ts';

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

export interface ServiceEvents {
  status: [AppStatus];
  activity: [ActivityEntry];
  notice: [Notice];
  'test-email': [TestEmailView];
  signin: [SignInPromptView];
}

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
  /** Signs in with Microsoft for the app in `raw` (a draft config); the prompt goes out as a `signin` event. */
  signIn(method: SignInMethod, raw: unknown): Promise<SignInResultView>;
  suggestNetwork(): NetworkSuggestion;
}

function signedInView(account: SignedInAccount): SignedInView {
  const { username, name, method, signedInAt, lastRefreshAt } = account;
  return { username, name, method, signedInAt, lastRefreshAt };
}

/** A device refused again within this time does not notify again. */
const DENIED_NOTICE_INTERVAL_MS = 60 * 60_000;
/** Status pushes are coalesced: a burst of events is one update. */
const STATUS_COALESCE_MS = 150;
/** Deferred mail becomes ready by the clock, not by an event: refresh now and then. */
const STATUS_TICK_MS = 5000;

function toItem(entry: QueueEntry): QueueItem {
  return {
    id: entry.id,
    status: entry.status,
    receivedAt: entry.receivedAt,
    client: entry.client,
    mailFrom: entry.mailFrom,
    rcptTo: entry.rcptTo,
    size: entry.size,
    attempts: entry.attempts,
    nextAttemptAt: entry.nextAttemptAt,
    lastError: entry.lastError,
    lastDiagnosis: entry.lastDiagnosis,
  };
}

function countItems(items: QueueItem[]): QueueCountsView {
  const counts: QueueCountsView = { queued: 0, active: 0, deferred: 0, held: 0, failed: 0 };
  for (const item of items) counts[item.status] += 1;
  return counts;
}

function upstreamSecretKinds(upstream: UpstreamConfig): SecretKind[] {
  // A delegated sign-in is a public client: no secret, only the signed-in user's refresh token.
  if (isDelegated(upstream)) return [];
  if (upstream.type === 'graph' || upstream.auth === 'oauth2') return ['client-secret'];
  return upstream.auth === 'password' ? ['password'] : [];
}

function isUpstreamProblem(problem: ConfigProblem): boolean {
  return problem.path.startsWith('upstream') || problem.path === '(file)';
}

/** Where a listener that could not bind sits in the config, so the window marks the right field. */
function startProblem(error: unknown, config: RelayConfig): ConfigProblem {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ListenError) {
    const index = [config.listen, ...config.extraListeners].findIndex(
      (l) => l.port === error.port && l.host === error.host,
    );
    const path = index <= 0 ? 'listen.port' : `extraListeners[${index - 1}].port`;
    return { path, message };
  }
  return { path: '(relay)', message };
}

export function createRelayService(options: RelayServiceOptions): RelayService {
  const { dataDir, configPath, secrets, logger } = options;
  const env = options.env ?? process.env;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const upstreamDeps = { secrets, env, fetch: options.fetch, dataDir };
  const events = new EventEmitter<ServiceEvents>();
  const activity = createActivityLog();
  const subjects = createSubjectCache();
  const deniedNoticeAt = new Map<string, number>();

  let config: RelayConfig = defaultConfig();
  let configExists = false;
  let configProblems: ConfigProblem[] = [];
  let matcher: ClientMatcher = createClientMatcher(config.allowedClients);
  let relay: Relay | null = null;
  let state: RelayState = 'stopped';
  let startError: string | null = null;
  let offlineQueue: QueueItem[] = [];
  let spool: Spool | null = null;
  let control: { close(): Promise<void> } | null = null;
  let statusTimer: NodeJS.Timeout | null = null;
  let ticker: NodeJS.Timeout | null = null;
  let chain: Promise<unknown> = Promise.resolve();
  /**
   * Where secrets from the environment may be sent: the endpoints of the first valid config this
   * service ran with. The keychain records an endpoint per secret; a variable has none, so a draft or
   * a new config naming another host must not receive it (issue 13).
   */
  let environmentEndpoints: Record<SecretKind, string> | null = null;

  /** Settings changes, pause and resume run one at a time: two restarts must not interleave. */
  function exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = chain.then(task, task);
    chain = run.catch(() => undefined);
    return run;
  }

  function changed(): void {
    if (statusTimer) return;
    statusTimer = setTimeout(() => {
      statusTimer = null;
      events.emit('status', status());
    }, STATUS_COALESCE_MS);
    statusTimer.unref?.();
  }

  function pushActivity(entry: ActivityEntry | null): void {
    if (entry) events.emit('activity', entry);
  }

  function notice(n: Notice): void {
    events.emit('notice', n);
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
      if (spool) {
        const source = spool;
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
        notice({
          kind: 'failed',
          title: 'A message could not be delivered',
          body: `From ${envelope.mailFrom || '<>'} to ${event.recipients.map((r) => r.address).join(', ')}: ${event.diagnosis.title}`,
        });
        changed();
      },
    );
    target.events.on('held', (hold: HoldInfo) => {
      notice({
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
        notice({
          kind: 'denied',
          title: `A device was refused: ${ip}`,
          body: `${ip} tried to send mail${sender ? ` as ${sender}` : ''} but is not an allowed device. Open RelayDesk to allow it.`,
        });
      }
      changed();
    });
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

  function withSubject(item: QueueItem): QueueItem {
    return { ...item, subject: subjects.get(item.id) };
  }

  async function refreshOfflineQueue(): Promise<void> {
    try {
      offlineQueue = offlineEntries(await inspectSpool(join(dataDir, 'spool'))).map(toItem);
    } catch {
      offlineQueue = [];
    }
  }

  async function runRelay(next: RelayConfig): Promise<void> {
    const candidate = createRelay({
      config: next,
      dataDir,
      secrets,
      logger,
      env,
      fetch: options.fetch,
    });
    attach(candidate);
    state = 'starting';
    try {
      await candidate.start();
    } catch (error) {
      candidate.events.removeAllListeners();
      throw error;
    }
    relay = candidate;
    state = 'running';
    startError = null;
  }

  async function stopRelay(): Promise<void> {
    const running = relay;
    if (!running) return;
    relay = null;
    await running.stop(stopTimeoutMs);
    running.events.removeAllListeners();
    await refreshOfflineQueue();
  }

  /** Starts the relay with the current config; a failure (port taken) is shown, not thrown. */
  async function tryStart(): Promise<void> {
    try {
      await runRelay(config);
    } catch (error) {
      state = 'failed';
      startError = startProblem(error, config).message;
      logger.error('start-failed', { reason: startError });
      await refreshOfflineQueue();
    }
  }

  function upstreamView(live: RelayStatus | null): UpstreamView & { heldSince: number | null } {
    if (live) {
      const u = live.upstream;
      return {
        description: u.description,
        state: u.state,
        lastSuccessAt: u.lastSuccessAt,
        lastSuccessReply: u.lastSuccessReply,
        lastError: u.lastError,
        heldSince: u.heldSince,
        hold: u.hold,
      };
    }
    const persisted = readPersistedStatus(dataDir)?.upstream;
    return {
      description: persisted?.description ?? '(not configured yet)',
      state: 'unknown',
      lastSuccessAt: persisted?.lastSuccessAt ?? null,
      lastSuccessReply: persisted?.lastSuccessReply ?? null,
      lastError: persisted?.lastError ?? null,
      heldSince: null,
      hold: null,
    };
  }

  function status(): AppStatus {
    const live = relay?.status() ?? null;
    const persisted = live ? null : readPersistedStatus(dataDir);
    const queueItems = live && relay ? relay.listQueue() : offlineQueue;
    const queue = live ? live.queue : countItems(offlineQueue);
    const today =
      live?.today ??
      (persisted?.today.date === localDate()
        ? persisted.today
        : { date: localDate(), accepted: 0, delivered: 0, deferred: 0, failed: 0, denied: 0 });
    const devices = (live?.devices ?? persisted?.devices ?? []).map((d) => ({
      ip: d.ip,
      firstSeen: d.firstSeen,
      lastSeen: d.lastSeen,
      count: d.count,
      lastSender: d.lastSender,
      allowed: matcher.matches(d.ip),
    }));
    const waiting = queueItems.filter((item) => item.status !== 'failed').map((item) => item.receivedAt);
    const { heldSince: _heldSince, ...upstream } = upstreamView(live);
    const input: HealthInput = {
      state,
      startError,
      upstream,
      queue,
      listeners: live?.listeners ?? [],
      deliveredToday: today.delivered,
      oldestWaitingAt: waiting.length > 0 ? Math.min(...waiting) : null,
      now: Date.now(),
    };
    return {
      state,
      health: healthOf(input),
      summary: summaryOf(input),
      startError,
      listeners: live?.listeners ?? [],
      upstream,
      queue: { ...queue },
      today: { ...today },
      devices,
      allowedClients: [...config.allowedClients],
      ...(isDelegated(config.upstream)
        ? {
            signedIn: (() => {
              const account = readSignedIn(dataDir);
              return account ? signedInView(account) : null;
            })(),
          }
        : {}),
    };
  }

  /** What the control socket answers while the relay is paused or not configured: honest "not running". */
  function controlStatus(): RelayStatus {
    if (relay) return relay.status();
    const app = status();
    return {
      running: false,
      pid: process.pid,
      startedAt: 0,
      listeners: [],
      upstream: upstreamView(null),
      queue: app.queue,
      today: app.today,
      devices: app.devices,
    };
  }

  const controlTarget: Relay = {
    events: new EventEmitter(),
    start: async () => {
      await resume();
    },
    stop: async () => {
      await pause();
    },
    status: controlStatus,
    listQueue: () => relay?.listQueue() ?? [],
    flush: () => flush(),
    retry: (id) => retry(id),
    remove: (id) => remove(id),
  };

  function retry(id: string): boolean {
    const done = relay?.retry(id) ?? false;
    changed();
    return done;
  }

  async function remove(id: string): Promise<boolean> {
    const done = relay ? await relay.remove(id) : false;
    // Recent activity must not keep calling a deleted message "Queued".
    if (done) pushActivity(activity.update(id, { result: 'deleted' }));
    changed();
    return done;
  }

  function flush(): number {
    const count = relay?.flush() ?? 0;
    changed();
    return count;
  }

  async function secretSource(kind: SecretKind, upstream: UpstreamConfig): Promise<SecretSource> {
    if (!upstreamSecretKinds(upstream).includes(kind)) return null;
    if (env[secretEnvName(kind)]) return 'environment';
    try {
      if ((await secrets.get(secretAccount(upstream, kind))) === null) return null;
      // Stored for another host: the window asks for it again rather than showing it as there.
      return (await endpointMismatch(secrets, upstream, kind)) === null ? 'keychain' : null;
    } catch {
      return null;
    }
  }

  function bindEnvironmentSecrets(upstream: UpstreamConfig): void {
    environmentEndpoints ??= {
      password: secretEndpoint(upstream, 'password'),
      'client-secret': secretEndpoint(upstream, 'client-secret'),
    };
  }

  /** A problem when `upstream` would send a secret from the environment to another endpoint. */
  function environmentSecretProblem(upstream: UpstreamConfig): ConfigProblem | null {
    for (const kind of upstreamSecretKinds(upstream)) {
      const boundTo = environmentEndpoints?.[kind];
      const wanted = secretEndpoint(upstream, kind);
      if (!env[secretEnvName(kind)] || boundTo === undefined || boundTo === wanted) continue;
      return {
        path: kind === 'password' ? 'upstream.host' : 'upstream.oauth2.tokenUrl',
        message:
          `${secretEnvName(kind)} holds the secret for ${boundTo}, the upstream RelayDesk started with, and ` +
          `is not sent to ${wanted}. To move to ${wanted}, change the config file and restart RelayDesk ` +
          'with the variable set for the new upstream.',
      };
    }
    return null;
  }

  async function applyConfig(raw: unknown): Promise<ApplyResult> {
    const parsed = parseConfig(raw);
    if (parsed.problems.length > 0) return { ok: false, problems: parsed.problems };
    const next = parsed.config;
    const secretProblem = environmentSecretProblem(next.upstream);
    if (secretProblem) return { ok: false, problems: [secretProblem] };
    return exclusive(async () => {
      if (state === 'paused') {
        await saveConfigFile(configPath, next);
      } else {
        const wasRunning = relay !== null;
        await stopRelay();
        try {
          await runRelay(next);
        } catch (error) {
          const problem = startProblem(error, next);
          logger.warn('config-not-applied', { path: problem.path, reason: problem.message });
          if (wasRunning) await tryStart();
          else state = configExists ? 'failed' : 'unconfigured';
          changed();
          return { ok: false, problems: [problem] };
        }
        await saveConfigFile(configPath, next);
      }
      config = next;
      configExists = true;
      configProblems = [];
      bindEnvironmentSecrets(next.upstream);
      matcher = createClientMatcher(next.allowedClients);
      logger.info('config-applied', { file: configPath, allowedClients: next.allowedClients });
      changed();
      return { ok: true, problems: [] };
    });
  }

  async function pause(): Promise<AppStatus> {
    return exclusive(async () => {
      if (state === 'running' || state === 'failed') {
        await stopRelay();
        state = 'paused';
        logger.info('paused', {});
      }
      changed();
      return status();
    });
  }

  async function resume(): Promise<AppStatus> {
    return exclusive(async () => {
      if (state === 'paused' || state === 'failed') {
        logger.info('resumed', {});
        await tryStart();
      }
      changed();
      return status();
    });
  }

  return {
    events,
    async start() {
      await exclusive(async () => {
        if (options.control !== false) control = await startControlServer(dataDir, controlTarget);
        spool = await createSpool(join(dataDir, 'spool'));
        const loaded = await loadConfigFile(configPath);
        config = loaded.config;
        configExists = loaded.exists;
        configProblems = loaded.problems;
        matcher = createClientMatcher(config.allowedClients);
        if (!loaded.exists) {
          state = 'unconfigured';
          await refreshOfflineQueue();
        } else if (loaded.problems.length > 0) {
          state = 'failed';
          startError = `the config file ${configPath} has ${loaded.problems.length} problem(s): fix them in Settings`;
          await refreshOfflineQueue();
        } else {
          bindEnvironmentSecrets(config.upstream);
          await tryStart();
        }
        void readQueuedSubjects();
        ticker = setInterval(changed, STATUS_TICK_MS);
        ticker.unref?.();
        changed();
      });
    },
    async stop() {
      await exclusive(async () => {
        if (ticker) clearInterval(ticker);
        if (statusTimer) clearTimeout(statusTimer);
        ticker = statusTimer = null;
        await stopRelay();
        state = 'stopped';
        await control?.close();
        control = null;
      });
    },
    status,
    listQueue() {
      const items = relay ? relay.listQueue().map(toItem) : offlineQueue;
      // Delivered, failed-and-deleted and removed messages' subjects go with them.
      subjects.keepOnly(items.map((item) => item.id));
      return items.map(withSubject);
    },
    retry,
    remove,
    flush,
    activity: () => activity.list(),
    async getConfig() {
      return {
        config,
        exists: configExists,
        problems: configProblems,
        secrets: {
          password: await secretSource('password', config.upstream),
          clientSecret: await secretSource('client-secret', config.upstream),
        },
        secretStore: secrets.describe(),
        presets: PRESET_NAMES.map((id) => ({
          id,
          label: PRESETS[id].label,
          notes: PRESETS[id].notes,
          fields: presetFields(id),
        })),
      };
    },
    validateConfig: (raw) => parseConfig(raw).problems,
    applyConfig,
    pause,
    resume,
    async allowDevice(ip) {
      const address = normalizeIp(ip);
      if (isIP(address) === 0) {
        return { ok: false, problems: [{ path: 'allowedClients', message: `${ip} is not an IP address` }] };
      }
      if (matcher.matches(address)) return { ok: true, problems: [] };
      logger.info('device-allowed', { client: address });
      return applyConfig({ ...config, allowedClients: [...config.allowedClients, address] });
    },
    async storeSecret(kind, secret, raw) {
      const { upstream } = parseConfig(raw).config;
      let account: string;
      try {
        account = secretAccount(upstream, kind);
      } catch (error) {
        return { ok: false, error: (error as Error).message, storedIn: secrets.describe() };
      }
      try {
        await storeSecret(secrets, kind, upstream, secret);
      } catch (error) {
        const message =
          error instanceof KeychainUnavailableError
            ? error.message
            : `The keychain refused to store it (${(error as Error).name})`;
        return { ok: false, error: message, storedIn: secrets.describe() };
      }
      logger.info('secret-stored', { kind, account, store: secrets.describe() });
      // Mail held for a wrong password goes out as soon as the right one is stored.
      if (relay && upstreamSecretKinds(config.upstream).includes(kind)) {
        if (secretAccount(config.upstream, kind) === account) relay.flush();
      }
      changed();
      return { ok: true, error: null, storedIn: secrets.describe() };
    },
    async testConnection(raw) {
      let target = config;
      if (raw !== null && raw !== undefined) {
        const parsed = parseConfig(raw);
        const problems = parsed.problems.filter(isUpstreamProblem);
        if (problems.length > 0) {
          return {
            ok: false,
            upstream: '',
            steps: [],
            reason: 'The upstream settings have problems: fix them first.',
            diagnosis: null,
            problems,
          };
        }
        target = parsed.config;
      }
      const secretProblem = environmentSecretProblem(target.upstream);
      if (secretProblem) {
        return {
          ok: false,
          upstream: '',
          steps: [],
          reason: secretProblem.message,
          diagnosis: null,
          problems: [secretProblem],
        };
      }
      const result = await checkUpstream(target, upstreamDeps);
      logger.info('connection-test', { upstream: result.upstream, ok: result.ok, reason: result.reason });
      return {
        ok: result.ok,
        upstream: result.upstream,
        steps: result.steps,
        reason: result.reason,
        diagnosis: result.diagnosis,
        problems: [],
      };
    },
    async signIn(method, raw) {
      const draft = parseConfig(raw).config;
      // The browser may be on another computer (serve --admin): only main's own opener makes `browser` safe.
      const chosen: SignInMethod = options.openBrowser ? method : 'device-code';
      try {
        const account = await signInWithMicrosoft({
          upstream: draft.upstream,
          secrets,
          dataDir,
          method: chosen,
          onPrompt: (prompt) =>
            events.emit(
              'signin',
              prompt.kind === 'browser'
                ? { kind: 'browser', url: prompt.url }
                : {
                    kind: 'device-code',
                    userCode: prompt.userCode,
                    verificationUri: prompt.verificationUri,
                    message: prompt.message,
                    expiresAt: prompt.expiresAt,
                  },
            ),
          openBrowser: options.openBrowser,
          fetch: options.fetch,
        });
        logger.info('signed-in', { user: account.username, method: account.method });
        // Mail held for "Sign in again" goes out now.
        relay?.flush();
        events.emit('status', status());
        return { ok: true, account: signedInView(account), error: null, diagnosis: null };
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        const reason = describeFailure(error.failure);
        logger.warn('signin-failed', { reason });
        return {
          ok: false,
          account: null,
          error: reason,
          diagnosis: diagnose(error.failure, {
            appId: draft.upstream.oauth2?.clientId,
            tenant: draft.upstream.oauth2?.tenant,
          }),
        };
      }
    },
    async sendTestEmail(to) {
      const recipient = to ?? config.upstream.user ?? config.upstream.mailbox;
      const at = Date.now();
      let view: TestEmailView;
      if (!configExists || !recipient) {
        view = {
          ok: false,
          to: recipient ?? '',
          from: '',
          reply: configExists
            ? 'No mailbox is configured to send the test email to: enter an address.'
            : 'RelayDesk is not set up yet: finish the setup first.',
          diagnosis: null,
          at,
        };
      } else {
        const result = await sendTestEmailUpstream(config, upstreamDeps, recipient);
        view = {
          ok: result.ok,
          to: result.to,
          from: result.from,
          reply: result.reply,
          diagnosis: result.diagnosis,
          at,
        };
        logger.info('test-email', { to: result.to, ok: result.ok, reply: result.reply });
        pushActivity(
          activity.record({
            id: `test-${result.messageId}`,
            time: at,
            device: 'RelayDesk',
            from: result.from,
            to: [result.to],
            subject: 'RelayDesk test message',
            size: null,
            result: result.ok ? 'test-delivered' : 'test-failed',
            reply: result.reply,
          }),
        );
      }
      events.emit('test-email', view);
      changed();
      return view;
    },
    suggestNetwork: () => suggestNetworks(),
  };
}
