/**
 * Requests to Microsoft Graph v1.0 with the app's bearer token, and every way they can fail turned
 * into an UpstreamFailure: Graph's `{ error: { code, message } }` with its Retry-After, or the network
 * error underneath fetch. The token goes in the Authorization header of Graph calls only, never into
 * an upload URL request, a failure or a log line.
 */
import type { TokenProvider } from '../oauth-token.ts';
import { fetchFailure, UpstreamError, type SmtpStage } from '../upstream-failure.ts';

export interface GraphClientOptions {
  /** `https://graph.microsoft.com`, another cloud's endpoint, or a loopback emulator. */
  graphUrl: string;
  tokens: TokenProvider;
  fetch?: typeof fetch;
  /** For each request. */
  timeoutMs: number;
}

export type GraphBody =
  /** Raw MIME: Graph wants it base64 encoded, as `text/plain`. */
  { mime: Buffer } | { json: unknown };

export interface GraphReply {
  status: number;
  json: Record<string, unknown> | null;
}

export interface GraphClient {
  /** `path` below `/v1.0`, its segments already encoded. Resolves on 2xx, throws UpstreamError otherwise. */
  call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: GraphBody): Promise<GraphReply>;
  /** Sends `content` to an upload session's pre-authenticated URL in ranges, in order. */
  upload(uploadUrl: string, content: Buffer): Promise<void>;
}

/**
 * Per PUT: under the 4 MB Graph recommends for upload ranges, and a multiple of 320 KiB, the unit
 * Microsoft's other upload sessions (OneDrive) insist on.
 */
export const UPLOAD_CHUNK_BYTES = 10 * 320 * 1024;

export function userPath(mailbox: string): string {
  return `/users/${encodeURIComponent(mailbox)}`;
}

export function createGraphClient(options: GraphClientOptions): GraphClient {
  const fetchImpl = options.fetch ?? fetch;
  const base = `${options.graphUrl.replace(/\/+$/, '')}/v1.0`;

  async function once(
    method: string,
    url: string,
    token: string,
    body: GraphBody | undefined,
  ): Promise<{ response: Response; text: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    let payload: string | undefined;
    if (body && 'mime' in body) {
      headers['content-type'] = 'text/plain';
      payload = body.mime.toString('base64');
    } else if (body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    }
    try {
      const response = await fetchImpl(url, {
        method,
        headers,
        body: payload ?? (method === 'POST' ? '' : undefined),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      return { response, text: await response.text() };
    } catch (error) {
      throw networkError(error, url, options.timeoutMs);
    }
  }

  return {
    async call(method, path, body) {
      const url = `${base}${path}`;
      let token = await options.tokens.getToken();
      let { response, text } = await once(method, url, token, body);
      if (response.status === 401) {
        // A token can be revoked or expire early: one new token before the 401 counts.
        options.tokens.invalidate();
        token = await options.tokens.getToken({ forceRefresh: true });
        ({ response, text } = await once(method, url, token, body));
      }
      if (response.status < 200 || response.status > 299) {
        throw graphError(response, text, token);
      }
      return { status: response.status, json: parseJson(text) };
    },

    async upload(uploadUrl, content) {
      const total = content.length;
      const maxRequests = Math.ceil(total / UPLOAD_CHUNK_BYTES) * 2 + 2;
      let offset = 0;
      for (let request = 0; request < maxRequests; request++) {
        const end = Math.min(offset + UPLOAD_CHUNK_BYTES, total);
        let response: Response;
        let text: string;
        try {
          // No Authorization header: the URL carries its own credential (Graph's documented rule).
          response = await fetchImpl(uploadUrl, {
            method: 'PUT',
            headers: {
              'content-type': 'application/octet-stream',
              'content-range': `bytes ${offset}-${end - 1}/${total}`,
            },
            body: new Uint8Array(content.buffer, content.byteOffset + offset, end - offset),
            signal: AbortSignal.timeout(options.timeoutMs),
          });
          text = await response.text();
        } catch (error) {
          throw networkError(error, uploadUrl, options.timeoutMs);
        }
        if (response.status === 201) return;
        if (response.status !== 200) throw graphError(response, text, null);
        const next = nextExpectedOffset(parseJson(text));
        if (next === null && end === total) return;
        if (next === null || next >= total) {
          throw protocolError(
            `upload session answered 200 without a usable nextExpectedRanges at byte ${end}`,
          );
        }
        offset = next;
      }
      throw protocolError(`upload session did not complete after ${maxRequests} requests`);
    },
  };
}

/** `"nextExpectedRanges": ["2097152"]` or `["2097152-3483321"]`: where the next PUT starts. */
function nextExpectedOffset(json: Record<string, unknown> | null): number | null {
  const ranges = json?.nextExpectedRanges;
  if (!Array.isArray(ranges) || typeof ranges[0] !== 'string') return null;
  const start = /^(\d+)/.exec(ranges[0]);
  return start ? Number(start[1]) : null;
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Retry-After is seconds, or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | null {
  if (header === null) return null;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

function graphError(response: Response, text: string, token: string | null): UpstreamError {
  const error = parseJson(text)?.error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof error?.code === 'string' && error.code ? error.code : 'UnknownError';
  let message =
    typeof error?.message === 'string'
      ? error.message
      : text.trim().slice(0, 300) || `HTTP ${response.status} ${response.statusText}`.trim();
  // In case a proxy or a foreign server echoes the request back.
  if (token) message = message.split(token).join('[token]');
  return new UpstreamError({
    kind: 'graph',
    status: response.status,
    code,
    message,
    retryAfterSeconds: retryAfterSeconds(response.headers.get('retry-after')),
  });
}

/** Graph answered 2xx with something RelayDesk cannot use: retried like a dropped connection. */
export function protocolError(message: string): UpstreamError {
  return new UpstreamError({
    kind: 'network',
    stage: 'message',
    code: 'EPROTO',
    message: `Graph: ${message}`,
  });
}

const CONNECT_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

function networkError(error: unknown, url: string, timeoutMs: number): UpstreamError {
  const host = new URL(url).host;
  const { timedOut, code, message } = fetchFailure(error);
  if (timedOut) {
    return new UpstreamError({
      kind: 'network',
      stage: 'message',
      code,
      message: `Graph ${host} did not answer within ${timeoutMs} ms`,
    });
  }
  const text = `Graph ${host}: ${message}`;
  const stage: SmtpStage = CONNECT_CODES.has(code) ? 'connect' : 'message';
  if (/CERT|SSL|TLS/.test(code))
    return new UpstreamError({ kind: 'tls', stage: 'connect', code, message: text });
  return new UpstreamError({ kind: 'network', stage, code, message: text });
}
