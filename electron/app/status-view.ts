/**
 * What the window, the tray and the control socket show of the app: the live relay's status when it
 * runs, otherwise what the data folder remembers (the last upstream result, today's counters, the
 * devices seen, the queue on disk), with the health and the one-line summary the tray shows.
 */
import { isDelegated } from '../relay/oauth/endpoints.ts';
import { readSignedIn, type SignedInAccount } from '../relay/oauth/signed-in.ts';
import type { RelayStatus } from '../relay/relay.ts';
import { localDate, readPersistedStatus } from '../relay/status.ts';
import type { AppStatus, QueueCountsView, QueueItem, SignedInView, UpstreamView } from '../shared/ipc.ts';
import type { AppConfig } from './config-apply.ts';
import { deviceViews } from './devices.ts';
import { healthOf, oldestWaitingAt, summaryOf, type HealthInput } from './health.ts';
import { toItem, type RelayLifecycle } from './relay-lifecycle.ts';

export interface StatusViewDeps {
  dataDir: string;
  lifecycle: RelayLifecycle;
  appConfig: AppConfig;
}

export interface StatusView {
  status(): AppStatus;
  /** What the control socket answers (`relaydesk status`): honest "not running" while paused or not set up. */
  controlStatus(): RelayStatus;
  listQueue(): QueueItem[];
}

export function signedInView(account: SignedInAccount): SignedInView {
  const { username, name, method, signedInAt, lastRefreshAt } = account;
  return { username, name, method, signedInAt, lastRefreshAt };
}

function countItems(items: QueueItem[]): QueueCountsView {
  const counts: QueueCountsView = { queued: 0, active: 0, deferred: 0, held: 0, failed: 0 };
  for (const item of items) counts[item.status] += 1;
  return counts;
}

export function createStatusView({ dataDir, lifecycle, appConfig }: StatusViewDeps): StatusView {
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
    const { relay, state, startError, offlineQueue } = lifecycle;
    const { config } = appConfig;
    const live = relay?.status() ?? null;
    const persisted = live ? null : readPersistedStatus(dataDir);
    const queueItems = live && relay ? relay.listQueue() : offlineQueue;
    const queue = live ? live.queue : countItems(offlineQueue);
    const today =
      live?.today ??
      (persisted?.today.date === localDate()
        ? persisted.today
        : { date: localDate(), accepted: 0, delivered: 0, deferred: 0, failed: 0, denied: 0 });
    const devices = deviceViews(live?.devices ?? persisted?.devices ?? [], appConfig.matcher);
    const { heldSince: _heldSince, ...upstream } = upstreamView(live);
    const input: HealthInput = {
      state,
      startError,
      upstream,
      queue,
      listeners: live?.listeners ?? [],
      deliveredToday: today.delivered,
      oldestWaitingAt: oldestWaitingAt(queueItems),
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

  return {
    status,
    controlStatus() {
      const { relay } = lifecycle;
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
    },
    listQueue: () => (lifecycle.relay ? lifecycle.relay.listQueue().map(toItem) : lifecycle.offlineQueue),
  };
}
