/**
 * Builds the configured upstream: credentials (password from the environment or keychain, or an
 * OAuth 2.0 token) and the transport that uses them.
 */
import { readFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import type { UpstreamConfig } from '../config/types.ts';
import { type SecretStore } from '../secrets/index.ts';
import { resolveSecret } from './secret-accounts.ts';
import { createGraphTransport } from './graph/index.ts';
import { createTokenProvider, GRAPH_SCOPE, SMTP_SCOPE, type TokenProvider } from './oauth-token.ts';
import { createDelegatedTokenProvider, type DelegatedTokenProvider } from './oauth/delegated-tokens.ts';
import { isDelegated } from './oauth/endpoints.ts';
import type { SmtpClientOptions, UpstreamAuthMethod } from './smtp-client.ts';
import { createSmtpTransport } from './smtp-transport.ts';
import type { Transport } from './transport.ts';
import type { UpstreamCapabilitiesStore } from './upstream-capabilities.ts';

export interface UpstreamDeps {
  secrets: SecretStore;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** Told what the SMTP upstream offers each time RelayDesk connects (its EHLO: SIZE, SMTPUTF8). */
  capabilities?: UpstreamCapabilitiesStore;
  /** The data folder: a delegated sign-in's signin.json (who signed in, last renewal) lives there. */
  dataDir?: string;
  /** A token provider to share (the relay's keep-alive renews the same sign-in the transport uses). */
  tokens?: TokenProvider;
}

/** The name RelayDesk gives in EHLO and Received: the configured one, else this computer's name. */
export function relayHostname(upstream: Pick<UpstreamConfig, 'heloName'>): string {
  const name = upstream.heloName ?? osHostname();
  // EHLO needs a domain or an address literal; a bare Windows computer name is accepted by Exchange.
  return name.replace(/[^A-Za-z0-9.-]/g, '') || 'relaydesk.local';
}

export function createTokenProviderFor(
  upstream: UpstreamConfig,
  scope: string,
  deps: UpstreamDeps,
): TokenProvider {
  if (deps.tokens) return deps.tokens;
  if (isDelegated(upstream)) {
    return createDelegatedTokenProvider({
      upstream,
      secrets: deps.secrets,
      dataDir: deps.dataDir,
      fetch: deps.fetch,
    });
  }
  const oauth2 = upstream.oauth2!;
  return createTokenProvider({
    tokenUrl: oauth2.tokenUrl,
    clientId: oauth2.clientId,
    scope,
    fetch: deps.fetch,
    getClientSecret: async () =>
      (await resolveSecret('client-secret', upstream, { env: deps.env, store: deps.secrets })).secret,
  });
}

/** AUTH credentials for the SMTP upstream; `forceRefresh` fetches a new OAuth token. */
export function createAuthSource(
  upstream: UpstreamConfig,
  deps: UpstreamDeps,
): (forceRefresh: boolean) => Promise<UpstreamAuthMethod> {
  if (upstream.auth === 'none') return async () => null;
  if (upstream.auth === 'oauth2') {
    const tokens = createTokenProviderFor(upstream, SMTP_SCOPE, deps);
    return async (forceRefresh) => {
      const accessToken = await tokens.getToken({ forceRefresh });
      // Delegated: XOAUTH2's user= is whoever signed in, the only mailbox the token speaks for.
      const user = ('user' in tokens ? (tokens as DelegatedTokenProvider).user() : null) ?? upstream.user;
      return { method: 'xoauth2', user: user ?? '', accessToken };
    };
  }
  return async () => ({
    method: 'password',
    user: upstream.user ?? '',
    password: (await resolveSecret('password', upstream, { env: deps.env, store: deps.secrets })).secret,
  });
}

export async function smtpConnectionOptions(
  upstream: UpstreamConfig,
): Promise<Omit<SmtpClientOptions, 'auth'>> {
  return {
    host: upstream.host,
    port: upstream.port,
    security: upstream.security,
    ca: upstream.caFile ? await readFile(upstream.caFile, 'utf8') : null,
    heloName: relayHostname(upstream),
    timeoutMs: upstream.timeoutSeconds * 1000,
    connectTimeoutMs: Math.min(30_000, upstream.timeoutSeconds * 1000),
  };
}

export async function createUpstreamTransport(
  upstream: UpstreamConfig,
  deps: UpstreamDeps,
): Promise<Transport> {
  if (upstream.type === 'graph') {
    return createGraphTransport({
      upstream,
      tokens: createTokenProviderFor(upstream, GRAPH_SCOPE, deps),
      fetch: deps.fetch,
    });
  }
  return createSmtpTransport({
    connection: await smtpConnectionOptions(upstream),
    maxConnections: upstream.maxConnections,
    getAuth: createAuthSource(upstream, deps),
    onConnected: ({ capabilities }) =>
      deps.capabilities?.learn({
        smtpUtf8: capabilities.smtpUtf8,
        // RFC 1870: `SIZE 0` (or SIZE without a number) announces no fixed limit.
        sizeLimit: capabilities.size || undefined,
      }),
  });
}
