/**
 * What the window knows, shared by every page: filled from the API, kept current by its pushes.
 */
import type {
  ActivityEntry,
  AppStatus,
  ConfigView,
  QueueItem,
  RelayDeskApi,
  TestEmailView,
} from '../../../electron/shared/ipc.ts';

export type Page = 'wizard' | 'status' | 'settings';

const ACTIVITY_LIMIT = 200;

export class AppState {
  status = $state<AppStatus | null>(null);
  config = $state<ConfigView | null>(null);
  queue = $state<QueueItem[]>([]);
  activity = $state<ActivityEntry[]>([]);
  lastTestEmail = $state<TestEmailView | null>(null);
  page = $state<Page>('status');
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

  readonly api: RelayDeskApi;

  constructor(api: RelayDeskApi) {
    this.api = api;
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
      this.page = config.exists ? 'status' : 'wizard';
      await this.refreshQueue();
      this.connectionError = null;
    } catch (error) {
      this.connectionError = (error as Error).message;
    }
  }

  /** Starts following the relay's pushes; returns the function that stops it. */
  follow(): () => void {
    const stops = [
      this.api.onStatus((status) => {
        this.status = status;
        void this.refreshQueue();
      }),
      this.api.onActivity((entry) => {
        this.activity = [entry, ...this.activity.filter((row) => row.id !== entry.id)].slice(
          0,
          ACTIVITY_LIMIT,
        );
      }),
      this.api.onTestEmail((result) => {
        this.lastTestEmail = result;
      }),
    ];
    return () => {
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

  async refreshQueue(): Promise<void> {
    this.queue = await this.api.listQueue();
  }

  async refreshConfig(): Promise<void> {
    this.config = await this.api.getConfig();
  }

  async refreshStatus(): Promise<void> {
    this.status = await this.api.getStatus();
    await this.refreshQueue();
  }
}
