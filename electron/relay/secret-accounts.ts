/**
 * The upstream's secrets in the keychain: which account holds each one, where it may be sent, storing
 * and resolving it (environment first), and the delegated sign-in's refresh token account. The
 * keychain itself is behind electron/secrets; this is the relay's use of it, so a missing or misplaced
 * secret is an UpstreamError of kind `config` that the diagnosis table explains.
 */
import type { UpstreamConfig } from '../config/types.ts';
import {
  CLIENT_SECRET_ENV,
  KeychainUnavailableError,
  PASSWORD_ENV,
  type SecretStore,
} from '../secrets/index.ts';
import { registerSecret } from './redact.ts';
import { UpstreamError } from './upstream-failure.ts';

const MICROSOFT_TOKEN_ORIGIN = 'https://login.microsoftonline.com';

/** `password`: SMTP AUTH password of `upstream.user`; `client-secret`: the Entra app's client secret. */
export type SecretKind = 'password' | 'client-secret';

export interface ResolvedSecret {
  secret: string;
  source: 'environment' | 'keychain';
}

/** The environment variable that overrides the keychain for `kind`. */
export function secretEnvName(kind: SecretKind): string {
  return kind === 'password' ? PASSWORD_ENV : CLIENT_SECRET_ENV;
}

/**
 * The keychain account (the entry's user name under the service `RelayDesk`) that holds `kind` for
 * `upstream`:
 *
 * - password: `smtp:<user>@<host>`, e.g. `smtp:john@contoso.com@smtp.office365.com`, so the same
 *   mailbox on two smart hosts keeps two passwords;
 * - client secret: `oauth2:<tenant>:<clientId>`, shared by every upstream that signs in as that app
 *   (SMTP and Graph).
 *
 * Lower-cased: Microsoft compares addresses, hosts, tenants and client ids without case, so
 * `John@Contoso.com` typed in the CLI finds the secret stored for `john@contoso.com` in the config.
 */
export function secretAccount(upstream: UpstreamConfig, kind: SecretKind): string {
  if (kind === 'password') {
    if (!upstream.user) {
      throw new UpstreamError({
        kind: 'config',
        code: 'NO_USER',
        message: 'upstream.user is not set: name the mailbox that signs in before storing its password.',
      });
    }
    return `smtp:${upstream.user}@${upstream.host}`.toLowerCase();
  }
  if (!upstream.oauth2) {
    throw new UpstreamError({
      kind: 'config',
      code: 'NO_OAUTH2',
      message: 'upstream.oauth2 is not set: name the tenant and client id before storing the client secret.',
    });
  }
  return `oauth2:${upstream.oauth2.tenant}:${upstream.oauth2.clientId}`.toLowerCase();
}

/**
 * Where `kind` goes when RelayDesk uses it: the SMTP host the password signs in to, or the origin of
 * the token endpoint the client secret is posted to. A stored secret is only ever sent there: an admin
 * token or a draft config pointing at another host cannot pull it out (issue 13).
 */
export function secretEndpoint(upstream: UpstreamConfig, kind: SecretKind): string {
  if (kind === 'password') return `smtp://${upstream.host.toLowerCase().replace(/\.$/, '')}`;
  const tokenUrl = upstream.oauth2?.tokenUrl ?? MICROSOFT_TOKEN_ORIGIN;
  try {
    return new URL(tokenUrl).origin;
  } catch {
    return tokenUrl;
  }
}

/** The keychain entry beside a secret that names its endpoint; it holds no secret. */
function endpointAccount(account: string): string {
  return `${account}#endpoint`;
}

/**
 * Secrets stored before endpoints were recorded: a password's account already names its host; a
 * client secret was always meant for Microsoft's sign-in service.
 */
function legacyEndpoint(upstream: UpstreamConfig, kind: SecretKind): string {
  return kind === 'password' ? secretEndpoint(upstream, kind) : MICROSOFT_TOKEN_ORIGIN;
}

/** Stores `secret` for `upstream` and records the endpoint it may be sent to. Returns the account. */
export async function storeSecret(
  store: SecretStore,
  kind: SecretKind,
  upstream: UpstreamConfig,
  secret: string,
): Promise<string> {
  const account = secretAccount(upstream, kind);
  registerSecret(secret);
  // Secret first: should the endpoint record fail, the new secret stays tied to the old endpoint,
  // never an old secret to a new one.
  await store.set(account, secret);
  await store.set(endpointAccount(account), secretEndpoint(upstream, kind));
  return account;
}

/** Removes the secret for `upstream` and its endpoint record; true when a secret was there. */
export async function deleteSecret(
  store: SecretStore,
  kind: SecretKind,
  upstream: UpstreamConfig,
): Promise<boolean> {
  const account = secretAccount(upstream, kind);
  const removed = await store.delete(account);
  await store.delete(endpointAccount(account));
  return removed;
}

/** The endpoint the stored secret for `upstream` was stored for. */
async function storedEndpoint(
  store: SecretStore,
  upstream: UpstreamConfig,
  kind: SecretKind,
): Promise<string> {
  return (await store.get(endpointAccount(secretAccount(upstream, kind)))) ?? legacyEndpoint(upstream, kind);
}

/**
 * Null when the keychain's secret for `upstream` may be sent where `upstream` points, otherwise why
 * not: it was stored for another host and must be typed again for this one.
 */
export async function endpointMismatch(
  store: SecretStore,
  upstream: UpstreamConfig,
  kind: SecretKind,
): Promise<string | null> {
  const storedFor = await storedEndpoint(store, upstream, kind);
  const wanted = secretEndpoint(upstream, kind);
  if (storedFor === wanted) return null;
  return (
    `The stored ${describeKind(kind, upstream)} was stored for ${storedFor}, and RelayDesk sends a stored ` +
    `secret only where it was stored for, not to ${wanted}. To use ${wanted}, type the secret again ` +
    '(Settings, or `relaydesk password set` with this config).'
  );
}

function describeKind(kind: SecretKind, upstream: UpstreamConfig): string {
  return kind === 'password'
    ? `upstream password for ${upstream.user ?? '(no user)'} at ${upstream.host}`
    : `OAuth 2.0 client secret for app ${upstream.oauth2?.clientId ?? '(no client id)'}`;
}

/**
 * The secret the upstream needs: the environment variable first (servers without a keychain, containers,
 * service managers with their own secret handling), then the keychain. Throws UpstreamError of kind
 * `config`: `NO_SECRET` when neither has it, `KEYCHAIN_UNAVAILABLE` when no keychain answers.
 */
export async function resolveSecret(
  kind: SecretKind,
  upstream: UpstreamConfig,
  opts: { env?: NodeJS.ProcessEnv; store: SecretStore },
): Promise<ResolvedSecret> {
  const envName = secretEnvName(kind);
  const fromEnv = (opts.env ?? process.env)[envName];
  if (fromEnv) {
    registerSecret(fromEnv);
    return { secret: fromEnv, source: 'environment' };
  }

  const account = secretAccount(upstream, kind);
  let secret: string | null;
  try {
    secret = await opts.store.get(account);
  } catch (error) {
    if (error instanceof KeychainUnavailableError) {
      throw new UpstreamError({ kind: 'config', code: 'KEYCHAIN_UNAVAILABLE', message: error.message });
    }
    throw error;
  }
  if (secret === null) {
    throw new UpstreamError({
      kind: 'config',
      code: 'NO_SECRET',
      message:
        `No ${describeKind(kind, upstream)} is stored (${opts.store.describe()}, account "${account}"). ` +
        `Store it with \`relaydesk password set\`, or set ${envName} in the environment of the relay.`,
    });
  }
  const mismatch = await endpointMismatch(opts.store, upstream, kind);
  if (mismatch !== null) {
    throw new UpstreamError({ kind: 'config', code: 'SECRET_FOR_OTHER_HOST', message: mismatch });
  }
  registerSecret(secret);
  return { secret, source: 'keychain' };
}

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
