/**
 * Keeps a delegated sign-in alive with no mail flowing: Entra ID ends a refresh token after 90 days
 * unused (AADSTS700082), so the relay redeems it when it starts and then every `intervalMs` (a day),
 * well inside that. A refusal is reported at once, so the admin hears "sign in again" before mail waits.
 */
import type { TokenProvider } from '../oauth-token.ts';
import { UpstreamError, type UpstreamFailure } from '../upstream-failure.ts';

export const KEEP_ALIVE_INTERVAL_MS = 24 * 60 * 60 * 1000;

export interface KeepAliveOptions {
  tokens: TokenProvider;
  intervalMs?: number;
  onRenewed: () => void;
  onFailed: (failure: UpstreamFailure) => void;
}

export interface KeepAlive {
  /** Renews now (the relay starts, a sign-in just happened); resolves when that attempt is over. */
  renewNow(): Promise<void>;
  stop(): void;
}

export function startKeepAlive(opts: KeepAliveOptions): KeepAlive {
  const intervalMs = opts.intervalMs ?? KEEP_ALIVE_INTERVAL_MS;
  let stopped = false;

  async function renewNow(): Promise<void> {
    if (stopped) return;
    try {
      await opts.tokens.getToken({ forceRefresh: true });
      if (!stopped) opts.onRenewed();
    } catch (error) {
      if (stopped) return;
      if (!(error instanceof UpstreamError)) throw error;
      opts.onFailed(error.failure);
    }
  }

  const timer = setInterval(() => void renewNow(), intervalMs);
  // The relay's own servers keep the process alive; this timer alone must not.
  timer.unref();
  return {
    renewNow,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
