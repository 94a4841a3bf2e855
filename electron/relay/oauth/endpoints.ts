/**
 * Where a delegated sign-in goes and what it asks for: the Microsoft identity platform's v2.0
 * endpoints under `oauth2.authorityUrl`, and the delegated scopes of the configured upstream.
 */
import type { OAuth2Config, UpstreamConfig } from '../../config/types.ts';

/** Delegated permission Office 365 Exchange Online → SMTP.Send (SASL XOAUTH2 as the signed-in user). */
export const DELEGATED_SMTP_SCOPE = 'https://outlook.office.com/SMTP.Send';
/** Delegated permission Microsoft Graph → Mail.Send. */
export const DELEGATED_GRAPH_SCOPE = 'https://graph.microsoft.com/Mail.Send';

export interface OAuthEndpoints {
  authorize: string;
  token: string;
  devicecode: string;
}

export function oauthEndpoints(oauth2: OAuth2Config): OAuthEndpoints {
  const base = `${oauth2.authorityUrl}/${encodeURIComponent(oauth2.tenant)}/oauth2/v2.0`;
  return { authorize: `${base}/authorize`, token: oauth2.tokenUrl, devicecode: `${base}/devicecode` };
}

/**
 * The scopes of a delegated sign-in: the upstream's permission, `offline_access` for the refresh token,
 * and `openid profile` so the answer names who signed in (the id_token's preferred_username).
 */
export function delegatedScope(upstream: UpstreamConfig): string {
  const resource = upstream.type === 'graph' ? DELEGATED_GRAPH_SCOPE : DELEGATED_SMTP_SCOPE;
  return `${resource} openid profile offline_access`;
}

export function isDelegated(upstream: UpstreamConfig): boolean {
  return upstream.auth === 'oauth2' && upstream.oauth2?.grant === 'delegated';
}
