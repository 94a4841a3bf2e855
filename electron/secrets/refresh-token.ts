import type { UpstreamConfig } from '../config/types.ts';
import { UpstreamError } from '../relay/upstream-failure.ts';

/**
 * The keychain account (under the service `RelayDesk`) that holds the refresh token of a delegated
 * sign-in: `oauth2-refresh:<tenant>:<clientId>`, lower-cased like the other accounts. Only the refresh
 * token is secret; who signed in and since when live in the data folder (signin.json).
 */
export function refreshTokenAccount(upstream: UpstreamConfig): string {
  if (!upstream.oauth2) {
    throw new UpstreamError({
      kind: 'config',
      code: 'NO_OAUTH2',
      message: 'upstream.oauth2 is not set: name the tenant and client id before signing in.',
    });
  }
  return `oauth2-refresh:${upstream.oauth2.tenant}:${upstream.oauth2.clientId}`.toLowerCase();
}
