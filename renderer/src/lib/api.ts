/**
 * Which API the window talks to: Electron's preload when it is there, otherwise the admin web server
 * with the token from the address (`#token=...`, moved to this tab's session storage and out of the
 * address bar at once) or typed in.
 */
import type { RelayDeskApi } from '../../../electron/shared/ipc.ts';
import { createHttpApi } from './http-api.ts';

const TOKEN_KEY = 'relaydesk-token';

export function electronApi(): RelayDeskApi | null {
  return window.relaydesk ?? null;
}

export function takeTokenFromAddress(): string | null {
  const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(window.location.hash);
  if (match?.[1]) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function rememberToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function browserApi(token: string, onUnauthorized: () => void): RelayDeskApi {
  return createHttpApi(token, onUnauthorized);
}
