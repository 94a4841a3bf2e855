import { registerSecret } from './redact.ts';
import { fetchFailure, UpstreamError } from './upstream-failure.ts';

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

interface CachedToken {
  accessToken: string;
  refreshAt: number;
}

/** OAuth 2.0 client-credentials grant (RFC 6749 §4.4) against the Microsoft identity platform v2.0. */
export function createTokenProvider(opts: TokenProviderOptions): TokenProvider {
  const fetchImpl = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const marginSeconds = opts.refreshMarginSeconds ?? 300;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let cached: CachedToken | null = null;
  let inFlight: Promise<string> | null = null;

  async function requestToken(): Promise<string> {
    const requestedAt = now();
    const clientSecret = await opts.getClientSecret();
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: opts.clientId,
      client_secret: clientSecret,
      scope: opts.scope,
    });

    let status: number;
    let text: string;
    try {
      const response = await fetchImpl(opts.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw networkError(error, opts.tokenUrl, timeoutMs);
    }

    const json = parseJson(text);
    if (status !== 200) throw tokenError(status, json, clientSecret);

    const accessToken = json?.access_token;
    const expiresIn = Number(json?.expires_in);
    if (typeof accessToken !== 'string' || !accessToken || !(expiresIn > 0)) {
      throw new UpstreamError({
        kind: 'token',
        status,
        error: 'invalid_response',
        aadsts: [],
        description: 'The token endpoint answered 200 without an access_token and expires_in.',
      });
    }
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
      inFlight ??= requestToken().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
    invalidate() {
      cached = null;
    },
  };
}

type OAuthJson = Record<string, unknown> | null;

function parseJson(text: string): OAuthJson {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Entra ID answers `{error, error_description, error_codes}`; the description's first line is the
 * AADSTS text, the rest is Trace ID / Correlation ID / Timestamp. The secret is cut out of whatever the
 * endpoint says, in case a proxy or a foreign server echoes the request.
 */
function tokenError(status: number, json: OAuthJson, clientSecret: string): UpstreamError {
  const error = typeof json?.error === 'string' ? json.error : 'invalid_response';
  const aadsts = Array.isArray(json?.error_codes)
    ? json.error_codes.filter((code): code is number => typeof code === 'number')
    : [];
  const firstLine =
    typeof json?.error_description === 'string'
      ? (json.error_description.split(/\r?\n/)[0] ?? '')
      : `HTTP ${status} without an OAuth 2.0 error body.`;
  const description = clientSecret ? firstLine.split(clientSecret).join('[secret]') : firstLine;
  return new UpstreamError({ kind: 'token', status, error, aadsts, description });
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
