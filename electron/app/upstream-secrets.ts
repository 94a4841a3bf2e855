/**
 * The upstream's secrets as the app handles them: which ones a config needs, where each comes from
 * (keychain or environment), storing one from the window, and keeping a secret from the environment
 * bound to the upstream RelayDesk started with. The secrets themselves never leave this module's
 * callees: the window sees sources and results only.
 */
import type { ConfigProblem, RelayConfig, UpstreamConfig } from '../config/types.ts';
import { parseConfig } from '../config/index.ts';
import type { Logger } from '../relay/log.ts';
import { isDelegated } from '../relay/oauth/endpoints.ts';
import type { Relay } from '../relay/relay.ts';
import {
  endpointMismatch,
  KeychainUnavailableError,
  secretAccount,
  secretEndpoint,
  secretEnvName,
  storeSecret,
  type SecretKind,
  type SecretStore,
} from '../secrets/index.ts';
import type { SecretResult, SecretSource } from '../shared/ipc.ts';

export interface UpstreamSecretsDeps {
  secrets: SecretStore;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

/** The config and relay in use when a secret is stored: held mail for it goes out at once. */
export interface SecretsInUse {
  config: RelayConfig;
  relay: Relay | null;
}

export interface UpstreamSecrets {
  source(kind: SecretKind, upstream: UpstreamConfig): Promise<SecretSource>;
  /** Binds secrets from the environment to `upstream`'s endpoints, once: the first valid config run. */
  bindEnvironment(upstream: UpstreamConfig): void;
  /** A problem when `upstream` would send a secret from the environment to another endpoint. */
  environmentProblem(upstream: UpstreamConfig): ConfigProblem | null;
  /** Stores a secret for the mailbox or app named in `raw` (a draft config). Never returned anywhere. */
  store(kind: SecretKind, secret: string, raw: unknown, inUse: SecretsInUse): Promise<SecretResult>;
}

export function upstreamSecretKinds(upstream: UpstreamConfig): SecretKind[] {
  // A delegated sign-in is a public client: no secret, only the signed-in user's refresh token.
  if (isDelegated(upstream)) return [];
  if (upstream.type === 'graph' || upstream.auth === 'oauth2') return ['client-secret'];
  return upstream.auth === 'password' ? ['password'] : [];
}

export function createUpstreamSecrets({ secrets, env, logger }: UpstreamSecretsDeps): UpstreamSecrets {
  /**
   * Where secrets from the environment may be sent: the endpoints of the first valid config this
   * service ran with. The keychain records an endpoint per secret; a variable has none, so a draft or
   * a new config naming another host must not receive it (issue 13).
   */
  let environmentEndpoints: Record<SecretKind, string> | null = null;

  return {
    async source(kind, upstream) {
      if (!upstreamSecretKinds(upstream).includes(kind)) return null;
      if (env[secretEnvName(kind)]) return 'environment';
      try {
        if ((await secrets.get(secretAccount(upstream, kind))) === null) return null;
        // Stored for another host: the window asks for it again rather than showing it as there.
        return (await endpointMismatch(secrets, upstream, kind)) === null ? 'keychain' : null;
      } catch {
        return null;
      }
    },
    bindEnvironment(upstream) {
      environmentEndpoints ??= {
        password: secretEndpoint(upstream, 'password'),
        'client-secret': secretEndpoint(upstream, 'client-secret'),
      };
    },
    environmentProblem(upstream) {
      for (const kind of upstreamSecretKinds(upstream)) {
        const boundTo = environmentEndpoints?.[kind];
        const wanted = secretEndpoint(upstream, kind);
        if (!env[secretEnvName(kind)] || boundTo === undefined || boundTo === wanted) continue;
        return {
          path: kind === 'password' ? 'upstream.host' : 'upstream.oauth2.tokenUrl',
          message:
            `${secretEnvName(kind)} holds the secret for ${boundTo}, the upstream RelayDesk started with, and ` +
            `is not sent to ${wanted}. To move to ${wanted}, change the config file and restart RelayDesk ` +
            'with the variable set for the new upstream.',
        };
      }
      return null;
    },
    async store(kind, secret, raw, inUse) {
      const { upstream } = parseConfig(raw).config;
      let account: string;
      try {
        account = secretAccount(upstream, kind);
      } catch (error) {
        return { ok: false, error: (error as Error).message, storedIn: secrets.describe() };
      }
      try {
        await storeSecret(secrets, kind, upstream, secret);
      } catch (error) {
        const message =
          error instanceof KeychainUnavailableError
            ? error.message
            : `The keychain refused to store it (${(error as Error).name})`;
        return { ok: false, error: message, storedIn: secrets.describe() };
      }
      logger.info('secret-stored', { kind, account, store: secrets.describe() });
      // Mail held for a wrong password goes out as soon as the right one is stored.
      const inUseUpstream = inUse.config.upstream;
      if (inUse.relay && upstreamSecretKinds(inUseUpstream).includes(kind)) {
        if (secretAccount(inUseUpstream, kind) === account) inUse.relay.flush();
      }
      return { ok: true, error: null, storedIn: secrets.describe() };
    },
  };
}
