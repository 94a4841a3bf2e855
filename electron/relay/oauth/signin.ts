/**
 * A delegated sign-in from start to stored refresh token: in the system browser (authorization code
 * with PKCE S256, redirect to a loopback listener, `state` checked) or with a device code for a computer
 * without a browser. The refresh token goes to the OS keychain only; who signed in goes to signin.json.
 */
import type { UpstreamConfig } from '../../config/types.ts';
import { type SecretStore } from '../../secrets/index.ts';
import { refreshTokenAccount } from '../secret-accounts.ts';
import { registerSecret } from '../redact.ts';
import { postTokenRequest, type OAuthJson } from '../oauth-token.ts';
import { UpstreamError } from '../upstream-failure.ts';
import { keychainFailure } from './delegated-tokens.ts';
import { signInWithDeviceCode, type DeviceCodePrompt } from './device-code.ts';
import { delegatedScope, oauthEndpoints } from './endpoints.ts';
import { readIdToken } from './id-token.ts';
import { startLoopbackRedirect } from './loopback.ts';
import { createPkce, createState } from './pkce.ts';
import { clearSignedIn, readSignedIn, writeSignedIn, type SignedInAccount } from './signed-in.ts';

export type SignInPrompt =
  { kind: 'browser'; url: string; redirectUri: string } | ({ kind: 'device-code' } & DeviceCodePrompt);

export interface SignInOptions {
  upstream: UpstreamConfig;
  secrets: SecretStore;
  dataDir: string;
  method: 'browser' | 'device-code';
  /** Shows the sign-in address or the device code to the user (CLI output, the window). */
  onPrompt: (prompt: SignInPrompt) => void;
  /** Opens the sign-in address in the system browser; its failure is tolerated (the address is shown). */
  openBrowser?: (url: string) => Promise<void>;
  /** How long the browser sign-in may take. Default 5 minutes. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Device code polling wait, replaced in tests. */
  wait?: (ms: number) => Promise<void>;
  now?: () => number;
}

export async function signIn(opts: SignInOptions): Promise<SignedInAccount> {
  const oauth2 = opts.upstream.oauth2;
  if (!oauth2 || opts.upstream.auth !== 'oauth2' || oauth2.grant !== 'delegated') {
    throw new UpstreamError({
      kind: 'config',
      code: 'NOT_DELEGATED',
      message:
        'Signing in needs upstream.auth "oauth2" with upstream.oauth2.grant "delegated" (and the tenant and ' +
        'client id of a public client app: see docs/microsoft365.md).',
    });
  }
  const endpoints = oauthEndpoints(oauth2);
  const scope = delegatedScope(opts.upstream);
  const json =
    opts.method === 'device-code'
      ? await signInWithDeviceCode({
          devicecodeUrl: endpoints.devicecode,
          tokenUrl: endpoints.token,
          clientId: oauth2.clientId,
          scope,
          onPrompt: (prompt) => opts.onPrompt({ kind: 'device-code', ...prompt }),
          fetch: opts.fetch,
          wait: opts.wait,
          now: opts.now,
        })
      : await signInWithBrowser(opts, endpoints, scope);
  return storeSignIn(opts, json);
}

async function signInWithBrowser(
  opts: SignInOptions,
  endpoints: ReturnType<typeof oauthEndpoints>,
  scope: string,
): Promise<OAuthJson> {
  const oauth2 = opts.upstream.oauth2!;
  const pkce = createPkce();
  const state = createState();
  const loopback = await startLoopbackRedirect();
  try {
    const url = new URL(endpoints.authorize);
    url.search = new URLSearchParams({
      client_id: oauth2.clientId,
      response_type: 'code',
      redirect_uri: loopback.redirectUri,
      response_mode: 'query',
      scope,
      state,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      // Always the account picker: a browser already signed in as someone else must not decide silently.
      prompt: 'select_account',
      ...(opts.upstream.user ? { login_hint: opts.upstream.user } : {}),
    }).toString();
    const redirected = loopback.wait(state, opts.timeoutMs ?? 5 * 60_000);
    // The browser may come back while the opener is still returning: the outcome is read below.
    redirected.catch(() => undefined);
    opts.onPrompt({ kind: 'browser', url: url.toString(), redirectUri: loopback.redirectUri });
    await opts.openBrowser?.(url.toString()).catch(() => undefined);
    const query = await redirected;
    const error = query.get('error');
    if (error) throw authorizeError(error, query.get('error_description') ?? '');
    return await postTokenRequest({
      url: endpoints.token,
      grant: 'authorization_code',
      form: {
        grant_type: 'authorization_code',
        client_id: oauth2.clientId,
        code: query.get('code')!,
        redirect_uri: loopback.redirectUri,
        code_verifier: pkce.verifier,
        scope,
      },
      redact: [pkce.verifier, query.get('code')!],
      fetch: opts.fetch,
    });
  } finally {
    await loopback.close();
  }
}

/** The error redirect carries `error` and an `error_description` that starts with the AADSTS number. */
function authorizeError(error: string, description: string): UpstreamError {
  const firstLine = description.split(/\r?\n/)[0] ?? '';
  const number = /^AADSTS(\d+)/.exec(firstLine)?.[1];
  return new UpstreamError({
    kind: 'token',
    status: 400,
    error,
    aadsts: number ? [Number(number)] : [],
    description: firstLine || error,
    grant: 'authorization_code',
  });
}

async function storeSignIn(opts: SignInOptions, json: OAuthJson): Promise<SignedInAccount> {
  const refreshToken = json.refresh_token;
  if (typeof refreshToken !== 'string' || !refreshToken) {
    throw new UpstreamError({
      kind: 'token',
      status: 200,
      error: 'invalid_response',
      aadsts: [],
      description:
        'Microsoft signed the user in but gave no refresh token, so RelayDesk could not keep sending: the ' +
        'app registration must allow offline_access.',
      grant: opts.method === 'device-code' ? 'device_code' : 'authorization_code',
    });
  }
  const claims = readIdToken(json.id_token);
  const username = claims?.username ?? opts.upstream.user;
  if (!username) {
    throw new UpstreamError({
      kind: 'token',
      status: 200,
      error: 'invalid_response',
      aadsts: [],
      description: 'Microsoft did not say who signed in (no id_token): set upstream.user to the mailbox.',
      grant: opts.method === 'device-code' ? 'device_code' : 'authorization_code',
    });
  }
  registerSecret(refreshToken);
  await opts.secrets.set(refreshTokenAccount(opts.upstream), refreshToken).catch(keychainFailure);
  const now = (opts.now ?? Date.now)();
  const oauth2 = opts.upstream.oauth2!;
  const account: SignedInAccount = {
    username,
    name: claims?.name ?? null,
    method: opts.method,
    signedInAt: now,
    lastRefreshAt: now,
    app: `${oauth2.tenant}:${oauth2.clientId}`.toLowerCase(),
  };
  writeSignedIn(opts.dataDir, account);
  return account;
}

/** Forgets the sign-in: the refresh token in the keychain and signin.json. True when there was one. */
export async function signOut(opts: {
  upstream: UpstreamConfig;
  secrets: SecretStore;
  dataDir: string;
}): Promise<boolean> {
  const hadToken = await opts.secrets.delete(refreshTokenAccount(opts.upstream)).catch(keychainFailure);
  const hadRecord = readSignedIn(opts.dataDir) !== null;
  clearSignedIn(opts.dataDir);
  return hadToken || hadRecord;
}
