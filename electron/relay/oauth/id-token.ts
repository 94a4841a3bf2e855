/**
 * Who signed in, from the id_token of a token answer. The token came straight from the token endpoint
 * over TLS, so its signature need not be checked (OpenID Connect Core §3.1.3.7, item 6): RelayDesk only
 * shows the name and uses it as the XOAUTH2 user; Exchange checks the access token itself.
 */

export interface IdTokenClaims {
  /** `preferred_username`: the user's sign-in name, john@contoso.com. */
  username: string;
  /** `name`: John Doe. */
  name: string | null;
  /** `tid`: the directory the user belongs to (useful with tenant `organizations`). */
  tenantId: string | null;
}

export function readIdToken(idToken: unknown): IdTokenClaims | null {
  if (typeof idToken !== 'string') return null;
  const payload = idToken.split('.')[1];
  if (!payload) return null;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
  const username = claims.preferred_username ?? claims.upn ?? claims.email;
  if (typeof username !== 'string' || !username) return null;
  return {
    username,
    name: typeof claims.name === 'string' ? claims.name : null,
    tenantId: typeof claims.tid === 'string' ? claims.tid : null,
  };
}
