/**
 * What went wrong talking to an upstream, in a form the diagnosis table can read. Produced by the
 * SMTP client, the OAuth token client and the Graph client; consumed by `diagnose()`.
 */
import { redactFailure, redactSecrets } from './redact.ts';

/** A parsed SMTP reply: `535 5.7.3 Authentication unsuccessful`. */
export interface SmtpReply {
  code: number;
  /** Enhanced status code (RFC 3463) when the reply carries one, e.g. `5.7.139`. */
  enhanced: string | null;
  /** The whole reply text, lines joined with a space, without the codes. */
  text: string;
  /** The reply exactly as received (multi-line replies joined with CRLF). */
  raw: string;
}

/** The OAuth 2.0 grants RelayDesk uses: app-only, and a user's sign-in (browser, device code, refresh). */
export type TokenGrant = 'client_credentials' | 'authorization_code' | 'device_code' | 'refresh_token';

/** Where in the SMTP conversation a failure happened. */
export type SmtpStage =
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'starttls'
  | 'auth'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'message'
  | 'rset'
  | 'quit';

export type UpstreamFailure =
  /** The server answered with an error reply. */
  | { kind: 'reply'; stage: SmtpStage; reply: SmtpReply }
  /** DNS, refused, reset, timeout: the Node error code (`ENOTFOUND`, `ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`). */
  | { kind: 'network'; stage: SmtpStage; code: string; message: string }
  /**
   * Certificate or TLS version problems: the Node/OpenSSL code (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
   * `DEPTH_ZERO_SELF_SIGNED_CERT`, `CERT_HAS_EXPIRED`, `ERR_TLS_CERT_ALTNAME_INVALID`,
   * `ERR_SSL_UNSUPPORTED_PROTOCOL`, `ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION`, ...), or `STARTTLS_NOT_OFFERED`.
   */
  | { kind: 'tls'; stage: SmtpStage; code: string; message: string }
  /** The OAuth 2.0 token endpoint refused: HTTP status, `error`, AADSTS numbers from `error_codes`. */
  | {
      kind: 'token';
      status: number;
      error: string;
      aadsts: number[];
      description: string;
      /** The grant that was refused; absent means client credentials (app-only). */
      grant?: TokenGrant;
    }
  /** Microsoft Graph refused: HTTP status and the `error.code` of its JSON body. */
  | { kind: 'graph'; status: number; code: string; message: string; retryAfterSeconds: number | null }
  /** A problem of RelayDesk's own configuration found before talking to anyone (no secret stored, ...). */
  | { kind: 'config'; code: string; message: string };

/** An Error that carries an UpstreamFailure; everything that talks to an upstream throws this. */
export class UpstreamError extends Error {
  readonly failure: UpstreamFailure;

  constructor(failure: UpstreamFailure, message?: string) {
    // Where an upstream's words enter RelayDesk: an echoed secret is cut here, in every form.
    const redacted = redactFailure(failure);
    super(redactSecrets(message ?? describeFailure(redacted)));
    this.name = 'UpstreamError';
    this.failure = redacted;
  }
}

/** One line for logs and CLI output. Never includes a secret: failures never carry one. */
export function describeFailure(failure: UpstreamFailure): string {
  switch (failure.kind) {
    case 'reply':
      return `${failure.stage}: ${failure.reply.raw.replace(/\r\n/g, ' | ')}`;
    case 'network':
    case 'tls':
      return `${failure.stage}: ${failure.code} ${failure.message}`;
    case 'token':
      return `token endpoint: HTTP ${failure.status} ${failure.error}${failure.aadsts.length ? ` AADSTS${failure.aadsts.join(',AADSTS')}` : ''}: ${failure.description}`;
    case 'graph':
      return `Graph: HTTP ${failure.status} ${failure.code}: ${failure.message}`;
    case 'config':
      return `${failure.code}: ${failure.message}`;
  }
}

/**
 * What made a `fetch()` fail: its timeout or abort, or the socket or TLS error that undici keeps in
 * `cause` behind its `TypeError: fetch failed` (`code` is `EFETCH` when there is none).
 */
export function fetchFailure(error: unknown): { timedOut: boolean; code: string; message: string } {
  if (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return { timedOut: true, code: 'ETIMEDOUT', message: error.message };
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code =
    cause && typeof cause === 'object' && 'code' in cause && typeof cause.code === 'string'
      ? cause.code
      : 'EFETCH';
  return { timedOut: false, code, message: cause instanceof Error ? cause.message : String(cause) };
}
