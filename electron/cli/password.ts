/**
 * `relaydesk password set|clear`: the upstream's password (or, for OAuth 2.0 and Graph, the app's
 * client secret) in the OS keychain. The secret is read from standard input, never from the
 * command line, where other users could see it in the process list.
 */
import type { Writable } from 'node:stream';
import type { UpstreamConfig } from '../config/types.ts';
import {
  createKeychainStore,
  KeychainUnavailableError,
  readSecretFromStdin,
  SecretInputError,
} from '../secrets/index.ts';
import {
  deleteSecret,
  secretAccount,
  secretEnvName,
  storeSecret,
  type SecretKind,
} from '../relay/secret-accounts.ts';
import { UpstreamError } from '../relay/upstream-failure.ts';
import { EXIT_CONFIG, loadCommandConfig, type CliIo, type ConfigFlags } from './context.ts';

export type PasswordFlags = ConfigFlags;

export function secretKindFor(upstream: UpstreamConfig): SecretKind {
  return upstream.type === 'graph' || upstream.auth === 'oauth2' ? 'client-secret' : 'password';
}

export async function passwordCommand(args: string[], flags: PasswordFlags, io: CliIo): Promise<number> {
  const [action] = args;
  if (action !== 'set' && action !== 'clear') {
    io.stderr.write(
      'Usage: relaydesk password set|clear [--config FILE]   (the secret is read from standard input)\n',
    );
    return 64;
  }
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config } = loaded;
  const kind = secretKindFor(config.upstream);
  const what =
    kind === 'password'
      ? `the password of ${config.upstream.user}`
      : `the client secret of app ${config.upstream.oauth2?.clientId}`;
  const store = createKeychainStore();
  try {
    // Before asking for anything: a config that names no mailbox or app cannot hold a secret.
    secretAccount(config.upstream, kind);
    if (action === 'clear') {
      const removed = await deleteSecret(store, kind, config.upstream);
      io.stdout.write(
        removed
          ? `Removed ${what} from ${store.describe()}.\n`
          : `No ${what} was stored in ${store.describe()}.\n`,
      );
      return 0;
    }
    if (kind === 'password' && config.upstream.host.endsWith('office365.com')) {
      io.stderr.write(
        'Note: Microsoft disables basic authentication (a password) for SMTP AUTH by default at the end of December 2026,\n' +
          'and will remove it in 2027. Plan the move to OAuth 2.0: see docs/microsoft365.md.\n',
      );
    }
    const secret = await readSecretFromStdin(
      io.stdin as NodeJS.ReadStream,
      io.stderr as Writable,
      `Enter ${what}: `,
    );
    await storeSecret(store, kind, config.upstream, secret);
    io.stdout.write(`Stored ${what} in ${store.describe()}.\n`);
    if (io.env[secretEnvName(kind)]) {
      io.stdout.write(
        `Note: ${secretEnvName(kind)} is set in this environment and takes precedence over the keychain.\n`,
      );
    }
    return 0;
  } catch (error) {
    if (
      error instanceof KeychainUnavailableError ||
      error instanceof SecretInputError ||
      error instanceof UpstreamError
    ) {
      io.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
