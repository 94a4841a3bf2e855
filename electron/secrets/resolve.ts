import type { UpstreamConfig } from '../config/types.ts';
import { UpstreamError } from '../relay/upstream-failure.ts';
import { CLIENT_SECRET_ENV, KeychainUnavailableError, PASSWORD_ENV } from './keychain.ts';
import type { SecretStore } from './store.ts';

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
  if (fromEnv) return { secret: fromEnv, source: 'environment' };

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
  return { secret, source: 'keychain' };
}
