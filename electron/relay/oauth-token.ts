import { registerSecret } from './redact.ts';
import { fetchFailure, UpstreamError, type TokenGrant } from './upstream-failure.ts';

/** App-only scope for SMTP AUTH XOAUTH2 (permission SMTP.SendAsApp). */
export const SMTP_SCOPE = 'https://outlook.office365.com/.default';
/** App-only scope for Microsoft Graph sendMail (permission Mail.Send). */
export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

export function defaultTokenUrl(tenant: string): string {
  return `https://login.microsoftonline.com/${encodeURIComponent(tenant)}/oauth2/v2.0/token`;
}

export interface TokenProviderOptions {
  tokenUrl: string;
  clientId: string;
  /** SMTP_SCOPE or GRAPH_SCOPE. */
  scope: string;
  /** Asked on every token request, so a secret changed in the keychain takes effect without a restart. */
  getClientSecret: () => Promise<string>;
  fetch?: typeof fetch;
  /** Milliseconds since the epoch, like Date.now. */
  now?: () => number;
  /** How long before expiry a cached token is replaced. Default 300 seconds. */
  refreshMarginSeconds?: number;
  /** For the whole token request. Default 30 seconds. */
  timeoutMs?: number;
}

export interface TokenProvider {
  /** A valid access token: cached until shortly before it expires, fetched once for concurrent callers. */
  getToken(opts?: { forceRefresh?: boolean }): Promise<string>;
  /** Drop the cached token (the upstream refused it); the next getToken fetches a new one. */
  invalidate(): void;
}

/** What one token request yielded. */
export interface IssuedAccessToken {
  accessToken: string;
  expiresIn: number;
}

interface CachedToken {
  accessToken: string;
  refreshAt: number;
}

/**
 * The caching shared by every grant: a token is reused until `refreshMarginSeconds` before it expires,
 * and concurrent callers share one request.
 */
export function createCachedTokenProvider(
  requestToken: () => Promise<IssuedAccessToken>,
  opts: { now?: () => number; refreshMarginSeconds?: number } = {},
): TokenProvider {
  const now = opts.now ?? Date.now;
  const marginSeconds = opts.refreshMarginSeconds ?? 300;
  let cached: CachedToken | null = null;
  let inFlight: Promise<string> | null = null;

  async function fetchAndCache(): Promise<string> {
    const requestedAt = now();
    const { accessToken, expiresIn } = await requestToken();
    // A token that lives less than the margin would never be cached; keep it for half its life instead.
    const usableSeconds = expiresIn > marginSeconds ? expiresIn - marginSeconds : expiresIn / 2;
    registerSecret(accessToken);
    cached = { accessToken, refreshAt: requestedAt + usableSeconds * 1000 };
    return accessToken;
  }

  return {
    getToken(options) {
      if (!options?.forceRefresh && cached && now() < cached.refreshAt) {
        return Promise.resolve(cached.accessToken);
      }
      // A request already on its way yields a fresh token, so even forceRefresh waits for it.
      inFlight ??= fetchAndCache().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
    invalidate() {
      cached = null;
    },
  };
}

/** OAuth 2.0 client-credentials grant (RFC 6749 §4.4) against the Microsoft identity platform v2.0. */
export function createTokenProvider(opts: TokenProviderOptions): TokenProvider {
  return createCachedTokenProvider(
    async () => {
      const clientSecret = await opts.getClientSecret();
      const json = await postTokenRequest({
        url: opts.tokenUrl,
        grant: 'client_credentials',
        form: {
          grant_type: 'client_credentials',
          client_id: opts.clientId,
          client_secret: clientSecret,
          scope: opts.scope,
        },
        redact: [clientSecret],
        fetch: opts.fetch,
        timeoutMs: opts.timeoutMs,
      });
      return accessTokenOf(json);
    },
    { now: opts.now, refreshMarginSeconds: opts.refreshMarginSeconds },
  );
}

export type OAuthJson = Record<string, unknown>;

export interface TokenRequest {
  url: string;
  grant: TokenGrant;
  form: Record<string, string>;
  /** Values that never appear in an error (client secret, refresh token, code verifier). */
  redact?: string[];
  fetch?: typeof fetch;
  /** For the whole request. Default 30 seconds. */
  timeoutMs?: number;
}

/**
 * One POST to the token (or device code) endpoint: the JSON of a 200 answer, or an UpstreamError of kind
 * `token` carrying Entra ID's `error` and AADSTS numbers (`network` when it did not answer).
 */
export async function postTokenRequest(request: TokenRequest): Promise<OAuthJson> {
  const fetchImpl = request.fetch ?? fetch;
  const timeoutMs = request.timeoutMs ?? 30_000;
  let status: number;
  let text: string;
  try {
    const response = await fetchImpl(request.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(request.form),
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    throw networkError(error, request.url, timeoutMs);
  }
  const json = parseJson(text);
  if (status !== 200 || json === null) throw tokenError(status, json, request);
  return json;
}

/** The access token and its lifetime from a 200 answer, or `invalid_response` when either is missing. */
export function accessTokenOf(json: OAuthJson, grant?: TokenGrant): IssuedAccessToken {
  const accessToken = json.access_token;
  const expiresIn = Number(json.expires_in);
  if (typeof accessToken !== 'string' || !accessToken || !(expiresIn > 0)) {
    throw new UpstreamError({
      kind: 'token',
      status: 200,
      error: 'invalid_response',
      aadsts: [],
      description: 'The token endpoint answered 200 without an access_token and expires_in.',
      ...(grant && grant !== 'client_credentials' ? { grant } : {}),
    });
  }
  return { accessToken, expiresIn };
}

function parseJson(text: string): OAuthJson | null {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as OAuthJson) : null;
  } catch {
    return null;
  }
}

/**
 * Entra ID answers `{error, error_description, error_codes}`; the description's first line is the
 * AADSTS text, the rest is Trace ID / Correlation ID / Timestamp. Secrets are cut out of whatever the
 * endpoint says, in case a proxy or a foreign server echoes the request.
 */
function tokenError(status: number, json: OAuthJson | null, request: TokenRequest): UpstreamError {
  const error = typeof json?.error === 'string' ? json.error : 'invalid_response';
  const aadsts = Array.isArray(json?.error_codes)
    ? json.error_codes.filter((code): code is number => typeof code === 'number')
    : [];
  const firstLine =
    typeof json?.error_description === 'string'
      ? (json.error_description.split(/\r?\n/)[0] ?? '')
      : `HTTP ${status} without an OAuth 2.0 error body.`;
  const description = (request.redact ?? [])
    .filter(Boolean)
    .reduce((text, secret) => text.split(secret).join('[secret]'), firstLine);
  return new UpstreamError({
    kind: 'token',
    status,
    error,
    aadsts,
    description,
    ...(request.grant !== 'client_credentials' ? { grant: request.grant } : {}),
  });
}

function networkError(error: unknown, tokenUrl: string, timeoutMs: number): UpstreamError {
  const host = new URL(tokenUrl).host;
  const failure = fetchFailure(error);
  return new UpstreamError({
    kind: 'network',
    stage: 'auth',
    code: failure.code,
    message: failure.timedOut
      ? `token endpoint ${host} did not answer within ${timeoutMs} ms`
      : `token endpoint ${host}: ${failure.message}`,
  });
}
