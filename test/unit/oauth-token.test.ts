import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  GRAPH_SCOPE,
  SMTP_SCOPE,
  createTokenProvider,
  defaultTokenUrl,
  type TokenProviderOptions,
} from '../../electron/relay/oauth-token.ts';
import { UpstreamError } from '../../electron/relay/upstream-failure.ts';
import {
  startTokenEndpoint,
  type TokenEndpoint,
  type TokenEndpointOptions,
} from '../fixtures/token-endpoint.ts';
import { upstreamErrorOf } from '../fixtures/upstream-failures.ts';

async function endpoint(options?: TokenEndpointOptions): Promise<TokenEndpoint> {
  const started = await startTokenEndpoint(options);
  onTestFinished(() => started.close());
  return started;
}

function providerFor(tokens: TokenEndpoint, overrides: Partial<TokenProviderOptions> = {}) {
  return createTokenProvider({
    tokenUrl: tokens.url(),
    clientId: tokens.clientId,
    scope: SMTP_SCOPE,
    getClientSecret: async () => tokens.clientSecret,
    ...overrides,
  });
}

describe('defaultTokenUrl', () => {
  it('is the Microsoft identity platform v2.0 endpoint of the tenant', () => {
    expect(defaultTokenUrl('contoso.onmicrosoft.com')).toBe(
      'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
    );
  });
});

describe('createTokenProvider', () => {
  it('fetches a token the endpoint accepts for the scope, and serves it from the cache', async () => {
    const tokens = await endpoint();
    const provider = providerFor(tokens);

    const first = await provider.getToken();
    expect(tokens.validate(first, SMTP_SCOPE)).toEqual({ ok: true });
    expect(await provider.getToken()).toBe(first);
    expect(await provider.getToken()).toBe(first);
    expect(tokens.issued).toBe(1);
  });

  it('asks for the Graph scope when told to', async () => {
    const tokens = await endpoint();
    const token = await providerFor(tokens, { scope: GRAPH_SCOPE }).getToken();
    expect(tokens.validate(token, GRAPH_SCOPE)).toEqual({ ok: true });
    expect(tokens.validate(token, SMTP_SCOPE).ok).toBe(false);
  });

  it('replaces the token once it is within the refresh margin of expiry', async () => {
    const tokens = await endpoint({ tokenLifetimeSeconds: 3599 });
    let clock = 1_000_000;
    const provider = providerFor(tokens, { now: () => clock });

    const first = await provider.getToken();
    clock += (3599 - 300 - 1) * 1000;
    expect(await provider.getToken()).toBe(first);
    clock += 2000;
    const second = await provider.getToken();
    expect(second).not.toBe(first);
    expect(tokens.validate(second, SMTP_SCOPE)).toEqual({ ok: true });
    expect(tokens.issued).toBe(2);
  });

  it('keeps a token shorter-lived than the margin for half its lifetime', async () => {
    const tokens = await endpoint({ tokenLifetimeSeconds: 60 });
    let clock = 0;
    const provider = providerFor(tokens, { now: () => clock });

    const first = await provider.getToken();
    clock = 29_000;
    expect(await provider.getToken()).toBe(first);
    clock = 31_000;
    expect(await provider.getToken()).not.toBe(first);
    expect(tokens.issued).toBe(2);
  });

  it('fetches a new token on forceRefresh and after invalidate', async () => {
    const tokens = await endpoint();
    const provider = providerFor(tokens);

    const first = await provider.getToken();
    const forced = await provider.getToken({ forceRefresh: true });
    expect(forced).not.toBe(first);
    expect(await provider.getToken()).toBe(forced);

    tokens.expireAll();
    provider.invalidate();
    const afterInvalidate = await provider.getToken();
    expect(afterInvalidate).not.toBe(forced);
    expect(tokens.validate(afterInvalidate, SMTP_SCOPE)).toEqual({ ok: true });
    expect(tokens.issued).toBe(3);
  });

  it('lets concurrent callers share one request', async () => {
    const tokens = await endpoint();
    const provider = providerFor(tokens);

    const results = await Promise.all(Array.from({ length: 8 }, () => provider.getToken()));
    expect(new Set(results).size).toBe(1);
    expect(tokens.issued).toBe(1);
  });

  it('reports a wrong client secret as AADSTS7000215 without repeating the secret', async () => {
    const tokens = await endpoint();
    const wrongSecret = 'Wr0ng~SecretValue.abcdefghijklmnopqrstu';
    const { failure, message } = await upstreamErrorOf(
      providerFor(tokens, { getClientSecret: async () => wrongSecret }).getToken(),
    );

    expect(failure).toMatchObject({ kind: 'token', status: 401, error: 'invalid_client', aadsts: [7000215] });
    expect(failure.kind === 'token' && failure.description).toMatch(/^AADSTS7000215: Invalid client secret/);
    expect(failure.kind === 'token' && failure.description).not.toContain('Trace ID');
    expect(message).toContain('AADSTS7000215');
    expect(message).not.toContain(wrongSecret);
    expect(JSON.stringify(failure)).not.toContain(wrongSecret);
    expect(tokens.issued).toBe(0);
  });

  it('does not cache a failure: the corrected secret works on the next call', async () => {
    const tokens = await endpoint();
    let secret = 'not-the-secret';
    const provider = providerFor(tokens, { getClientSecret: async () => secret });

    await expect(provider.getToken()).rejects.toBeInstanceOf(UpstreamError);
    secret = tokens.clientSecret;
    expect(tokens.validate(await provider.getToken(), SMTP_SCOPE)).toEqual({ ok: true });
  });

  it('reads the client secret again on each request, so a rotated secret needs no restart', async () => {
    const tokens = await endpoint();
    let stored = tokens.clientSecret;
    const provider = providerFor(tokens, { getClientSecret: async () => stored });
    await provider.getToken();

    const rotated = 'Rotated~secret.0123456789abcdefghijklmn';
    tokens.setClientSecret(rotated);
    const { failure } = await upstreamErrorOf(provider.getToken({ forceRefresh: true }));
    expect(failure).toMatchObject({ kind: 'token', aadsts: [7000215] });

    stored = rotated;
    expect(tokens.validate(await provider.getToken(), SMTP_SCOPE)).toEqual({ ok: true });
  });

  it('reports an unknown tenant as AADSTS90002', async () => {
    const tokens = await endpoint();
    const { failure } = await upstreamErrorOf(
      providerFor(tokens, { tokenUrl: tokens.url('fabrikam.com') }).getToken(),
    );
    expect(failure).toMatchObject({ kind: 'token', status: 400, error: 'invalid_request', aadsts: [90002] });
    expect(failure.kind === 'token' && failure.description).toContain("Tenant 'fabrikam.com' not found");
  });

  it('reports an unknown client id as AADSTS700016', async () => {
    const tokens = await endpoint();
    const otherClient = '00000000-1111-2222-3333-444444444444';
    const { failure } = await upstreamErrorOf(providerFor(tokens, { clientId: otherClient }).getToken());
    expect(failure).toMatchObject({
      kind: 'token',
      status: 400,
      error: 'unauthorized_client',
      aadsts: [700016],
    });
    expect(failure.kind === 'token' && failure.description).toContain(otherClient);
  });

  it('reports missing admin consent as AADSTS65001', async () => {
    const tokens = await endpoint();
    tokens.requireConsent(SMTP_SCOPE, false);
    const { failure } = await upstreamErrorOf(providerFor(tokens).getToken());
    expect(failure).toMatchObject({ kind: 'token', status: 400, error: 'invalid_grant', aadsts: [65001] });

    tokens.requireConsent(SMTP_SCOPE, true);
    expect(tokens.validate(await providerFor(tokens).getToken(), SMTP_SCOPE)).toEqual({ ok: true });
  });

  it('reports a scope the app may not ask for as invalid_scope', async () => {
    const tokens = await endpoint({ scopes: [GRAPH_SCOPE] });
    const { failure } = await upstreamErrorOf(providerFor(tokens).getToken());
    expect(failure).toMatchObject({ kind: 'token', status: 400, error: 'invalid_scope', aadsts: [70011] });
  });

  it('reports a token endpoint that is down as a network failure at the auth stage', async () => {
    const tokens = await startTokenEndpoint();
    const url = tokens.url();
    await tokens.close();

    const { failure } = await upstreamErrorOf(
      createTokenProvider({
        tokenUrl: url,
        clientId: tokens.clientId,
        scope: SMTP_SCOPE,
        getClientSecret: async () => tokens.clientSecret,
      }).getToken(),
    );
    expect(failure).toMatchObject({ kind: 'network', stage: 'auth', code: 'ECONNREFUSED' });
  });

  it('gives up on a token endpoint that never answers', async () => {
    // Accepts the connection and never says a word.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const { port } = silent.address() as AddressInfo;

    const started = Date.now();
    const { failure } = await upstreamErrorOf(
      createTokenProvider({
        tokenUrl: `http://127.0.0.1:${port}/contoso.onmicrosoft.com/oauth2/v2.0/token`,
        clientId: 'client',
        scope: SMTP_SCOPE,
        getClientSecret: async () => 'secret',
        timeoutMs: 300,
      }).getToken(),
    );
    expect(failure).toMatchObject({ kind: 'network', stage: 'auth', code: 'ETIMEDOUT' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
