/**
 * Access tokens for a user who signed in (`relaydesk signin`): each one is bought with the refresh token
 * from the OS keychain, and the new refresh token that comes with it replaces the old one there before
 * the access token is used (Entra ID rotates them; a spent one may be refused).
 */
import type { UpstreamConfig } from '../../config/types.ts';
import { KeychainUnavailableError, type SecretStore } from '../../secrets/index.ts';
import { refreshTokenAccount } from '../secret-accounts.ts';
import { registerSecret } from '../redact.ts';
import {
  accessTokenOf,
  createCachedTokenProvider,
  postTokenRequest,
  type OAuthJson,
  type TokenProvider,
} from '../oauth-token.ts';
import { UpstreamError } from '../upstream-failure.ts';
import { delegatedScope, oauthEndpoints } from './endpoints.ts';
import { readIdToken } from './id-token.ts';
import { readSignedIn, writeSignedIn, type SignedInAccount } from './signed-in.ts';

export interface DelegatedTokenOptions {
  upstream: UpstreamConfig;
  secrets: SecretStore;
  /** Where signin.json lives; without it the signed-in user is known only from the token answers. */
  dataDir?: string;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface DelegatedTokenProvider extends TokenProvider {
  readonly grant: 'delegated';
  /** The user the tokens are for: from the last token answer, else signin.json; null before either. */
  user(): string | null;
  /** signin.json as it is now. */
  signedIn(): SignedInAccount | null;
}

export function notSignedIn(upstream: UpstreamConfig): UpstreamError {
  return new UpstreamError({
    kind: 'config',
    code: 'NOT_SIGNED_IN',
    message:
      `Nobody is signed in for app ${upstream.oauth2?.clientId ?? '(no client id)'}: run ` +
      '`relaydesk signin` (or "Sign in with Microsoft" in the window).',
  });
}

export function keychainFailure(error: unknown): never {
  if (error instanceof KeychainUnavailableError) {
    throw new UpstreamError({ kind: 'config', code: 'KEYCHAIN_UNAVAILABLE', message: error.message });
  }
  throw error;
}

export function createDelegatedTokenProvider(opts: DelegatedTokenOptions): DelegatedTokenProvider {
  const { upstream, secrets } = opts;
  const oauth2 = upstream.oauth2!;
  const account = refreshTokenAccount(upstream);
  const tokenUrl = oauthEndpoints(oauth2).token;
  const scope = delegatedScope(upstream);
  const now = opts.now ?? Date.now;
  let lastUser: string | null = null;

  const readRefreshToken = () => secrets.get(account).catch(keychainFailure);

  async function redeem(refreshToken: string): Promise<OAuthJson> {
    return postTokenRequest({
      url: tokenUrl,
      grant: 'refresh_token',
      form: { grant_type: 'refresh_token', client_id: oauth2.clientId, refresh_token: refreshToken, scope },
      redact: [refreshToken],
      fetch: opts.fetch,
    });
  }

  async function requestToken() {
    const refreshToken = await readRefreshToken();
    if (!refreshToken) throw notSignedIn(upstream);
    let json: OAuthJson;
    try {
      json = await redeem(refreshToken);
    } catch (error) {
      // Another process (`relaydesk check`, a new sign-in) may have rotated the token meanwhile: the one
      // now in the keychain is the one to use, and only its refusal is the real answer.
      const current = await readRefreshToken();
      if (!isInvalidGrant(error) || !current || current === refreshToken) throw error;
      json = await redeem(current);
    }
    const issued = accessTokenOf(json, 'refresh_token');
    if (typeof json.refresh_token === 'string' && json.refresh_token) {
      registerSecret(json.refresh_token);
      await secrets.set(account, json.refresh_token).catch(keychainFailure);
    }
    lastUser = readIdToken(json.id_token)?.username ?? lastUser;
    if (opts.dataDir) {
      const record = readSignedIn(opts.dataDir);
      if (record) writeSignedIn(opts.dataDir, { ...record, lastRefreshAt: now() });
    }
    return issued;
  }

  const cached = createCachedTokenProvider(requestToken, { now });
  return {
    ...cached,
    grant: 'delegated',
    user: () => lastUser ?? (opts.dataDir ? (readSignedIn(opts.dataDir)?.username ?? null) : null),
    signedIn: () => (opts.dataDir ? readSignedIn(opts.dataDir) : null),
  };
}

function isInvalidGrant(error: unknown): boolean {
  return (
    error instanceof UpstreamError &&
    error.failure.kind === 'token' &&
    error.failure.error === 'invalid_grant'
  );
}
