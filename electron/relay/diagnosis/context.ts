/** What the relay's configuration tells the diagnosis: whom to name, which words and commands fit. */
import type { UpstreamConfig } from '../../config/types.ts';
import { PASSWORD_ENV } from '../../secrets/keychain.ts';
import type { DiagnosisContext } from './types.ts';

export function diagnosisContextFor(
  upstream: UpstreamConfig,
  env: NodeJS.ProcessEnv = process.env,
): DiagnosisContext {
  return {
    mailbox: (upstream.type === 'graph' ? upstream.mailbox : upstream.user) ?? undefined,
    appId: upstream.oauth2?.clientId,
    tenant: upstream.oauth2?.tenant,
    host: upstream.host,
    port: upstream.port,
    auth: upstream.type === 'graph' ? 'oauth2' : upstream.auth,
    // The same order as resolveSecret: the environment variable wins over the keychain.
    passwordSource: env[PASSWORD_ENV] ? 'environment' : 'keychain',
  };
}
