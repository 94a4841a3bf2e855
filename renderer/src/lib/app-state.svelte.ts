/**
 * What the window knows, shared by every page: filled from the API, kept current by its pushes.
 */
import type {
  ActivityEntry,
  AppStatus,
  ConfigView,
  NetworkSuggestion,
  QueueItem,
  RelayDeskApi,
  TestEmailView,
} from '../../../electron/shared/ipc.ts';
import { statusView, type StatusView } from './status-view.ts';

export type Page = 'wizard' | 'status' | 'settings';

const ACTIVITY_LIMIT = 200;
/** While the relay cannot be reached, ask again after 1 s, 2 s, 4 s... but never wait longer than this. */
const RECONNECT_MAX_MS = 8000;
const RECONNECT_FIRST_MS = 1000;
/** The relay pushes its status at least every 5 s (STATUS_TICK_MS in electron/app/service.ts). */
const SILENCE_MS = 7000;
const QUEUE_RELOAD_GAP_MS = 500;
const ACTIVITY_BATCH_MS = 100;

/** A request that never reached the relay (stopped, restarting, network gone), as opposed to one it refused. */
function isUnreachable(error: unknown): boolean {
  return error instanceof TypeError;
}

export class AppState {
  status = $state<AppStatus | null>(null);
  config = $state<ConfigView | null>(null);
  queue = $state<QueueItem[]>([]);
  activity = $state<ActivityEntry[]>([]);
  lastTestEmail = $state<TestEmailView | null>(null);
  /** This computer's addresses, for "Devices send to 192.168.1.20"; null until known. */
  network = $state<NetworkSuggestion | null>(null);
  /**
   * False from the first request that could not reach the relay until one does again: the page then
   * says so and disables its actions instead of throwing "Failed to fetch" at each click.
   */
  reachable = $state(true);
  #page = $state<Page>('status');
  #reconnect: ReturnType<typeof setTimeout> | null = null;
  #reconnectDelay = RECONNECT_FIRST_MS;
  #stopped = false;
  #queueLoading: Promise<void> | null = null;
  #queueAgain = false;
  /**
   * The setting (config path) the admin was sent to from advice or a warning; the Settings page
   * focuses its control (id from `settingElementId`) and clears this.
   */
  settingToOpen = $state<string | null>(null);
  /**
   * Asked before the admin leaves the page (Settings with unsaved edits): false keeps them there, and
   * the page itself asks what to do with the edits.
   */
  leaveGuard: ((to: Page) => boolean) | null = null;
  /** A problem talking to the relay itself (not a relay problem). */
  connectionError = $state<string | null>(null);

  /** What the Status page and the header say, from all of the above (one source of truth). */
  readonly view: StatusView | null = $derived.by(() =>
    this.status
      ? statusView({
          status: this.status,
          queue: this.queue,
          activity: this.activity,
          lastTest: this.lastTestEmail,
          config: this.config?.config ?? null,
          network: this.network,
          reachable: this.reachable,
          now: Date.now(),
        })
      : null,
  );

  readonly api: RelayDeskApi;

  constructor(api: RelayDeskApi) {
    this.api = api;
  }

  get page(): Page {
    return this.#page;
  }

  /** Another page: a test email's result belongs to the page it was sent from, not to every page after. */
  set page(next: Page) {
    if (next !== this.#page) this.lastTestEmail = null;
    this.#page = next;
  }

  async load(): Promise<void> {
    try {
      const [status, config, activity] = await Promise.all([
        this.api.getStatus(),
        this.api.getConfig(),
        this.api.listActivity(),
      ]);
      this.status = status;
      this.config = config;
      this.activity = activity;
      if (!config.exists) this.page = 'wizard';
      await this.refreshQueue();
      this.connectionError = null;
      this.#connected();
      void this.api.suggestNetwork().then(
        (network) => (this.network = network),
        () => {},
      );
    } catch (error) {
      this.#failed(error);
    }
  }

  /**
   * Runs an action of the page: while the relay cannot be reached it is not tried, and a request that
   * finds the relay gone marks it unreachable (and starts the reconnect) instead of throwing.
   * Resolves with the action's result, or null when it did not run or did not reach the relay.
   */
  async act<T>(action: () => Promise<T>): Promise<T | null> {
    if (!this.reachable) return null;
    try {
      return await action();
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      this.#failed(error);
      return null;
    }
  }

  #connected(): void {
    this.reachable = true;
    this.#reconnectDelay = RECONNECT_FIRST_MS;
    if (this.#reconnect) clearTimeout(this.#reconnect);
    this.#reconnect = null;
  }

  #failed(error: unknown): void {
    if (!isUnreachable(error)) {
      this.connectionError = (error as Error).message;
      return;
    }
    this.reachable = false;
    if (this.#reconnect || this.#stopped) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(delay * 2, RECONNECT_MAX_MS);
    this.#reconnect = setTimeout(() => {
      this.#reconnect = null;
      void this.load();
    }, delay);
  }

  /** Starts following the relay's pushes; returns the function that stops it. */
  follow(): () => void {
    let lastPushAt = Date.now();
    const arrived: ActivityEntry[] = [];
    let activityTimer: ReturnType<typeof setTimeout> | null = null;
    const stops = [
      this.api.onStatus((status) => {
        lastPushAt = Date.now();
        this.status = status;
        // A hold that began after the test email succeeded makes that success old news.
        const hold = status.upstream.hold;
        if (hold && this.lastTestEmail?.ok && hold.since > this.lastTestEmail.at) this.lastTestEmail = null;
        // Back after a restart: everything else may have changed too.
        if (!this.reachable) void this.load();
        else void this.refreshQueue();
      }),
      this.api.onActivity((entry) => {
        // Applied in batches: deleting 500 messages is 500 rows changing, and one redraw is enough.
        arrived.push(entry);
        activityTimer ??= setTimeout(() => {
          activityTimer = null;
          const batch = arrived.splice(0).reverse();
          const ids = new Set(batch.map((row) => row.id));
          const newest = batch.filter((row, index) => batch.findIndex((r) => r.id === row.id) === index);
          this.activity = [...newest, ...this.activity.filter((row) => !ids.has(row.id))].slice(
            0,
            ACTIVITY_LIMIT,
          );
        }, ACTIVITY_BATCH_MS);
      }),
      this.api.onTestEmail((result) => {
        this.lastTestEmail = result;
      }),
    ];
    // The relay pushes its status every few seconds; silence means the relay (or the way to it) is
    // gone, and asking finds out which.
    const watchdog = setInterval(() => {
      if (this.reachable && Date.now() - lastPushAt > SILENCE_MS) {
        lastPushAt = Date.now();
        void this.refreshStatus();
      }
    }, SILENCE_MS / 3);
    this.#stopped = false;
    return () => {
      this.#stopped = true;
      clearInterval(watchdog);
      if (activityTimer) clearTimeout(activityTimer);
      if (this.#reconnect) clearTimeout(this.#reconnect);
      for (const stop of stops) stop();
    };
  }

  /** Goes to another page, unless the page being left keeps the admin (see `leaveGuard`). */
  goTo(page: Page): void {
    if (page === this.page) return;
    if (this.leaveGuard && !this.leaveGuard(page)) return;
    this.page = page;
  }

  /** Goes to Settings with the control of `path` (a config path such as "upstream.password") in focus. */
  openSetting(path: string): void {
    this.settingToOpen = path;
    this.page = 'settings';
  }

  /**
   * Reloads the queue. Calls while a load runs share one more load after it, at most every
   * QUEUE_RELOAD_GAP_MS: a busy relay pushes its status several times a second, and with 500 queued
   * messages a reload per push (per open window) would keep the relay busy serving lists.
   */
  refreshQueue(): Promise<void> {
    if (this.#queueLoading) {
      this.#queueAgain = true;
      return this.#queueLoading;
    }
    this.#queueLoading = (async () => {
      try {
        do {
          this.#queueAgain = false;
          const queue = await this.act(() => this.api.listQueue());
          if (queue) this.queue = queue;
          if (this.#queueAgain) await new Promise((resolve) => setTimeout(resolve, QUEUE_RELOAD_GAP_MS));
        } while (this.#queueAgain && this.reachable);
      } finally {
        this.#queueLoading = null;
      }
    })();
    return this.#queueLoading;
  }

  async refreshConfig(): Promise<void> {
    const config = await this.act(() => this.api.getConfig());
    if (config) this.config = config;
  }

  async refreshStatus(): Promise<void> {
    const status = await this.act(() => this.api.getStatus());
    if (!status) return;
    this.status = status;
    await this.refreshQueue();
  }
}
