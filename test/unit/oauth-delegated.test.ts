/**
 * Delegated sign-in against the identity emulator over real loopback HTTP: the browser flow (the test
 * plays the browser and follows Entra ID's redirect to RelayDesk's loopback listener), the device code
 * flow with its polling answers, refresh-token rotation, the keep-alive, and every AADSTS row of issue 14
 * through the diagnosis table.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { UpstreamConfig } from '../../electron/config/types.ts';
import { diagnose } from '../../electron/relay/diagnosis.ts';
import { postTokenRequest } from '../../electron/relay/oauth-token.ts';
import { createDelegatedTokenProvider } from '../../electron/relay/oauth/delegated-tokens.ts';
import { DELEGATED_SMTP_SCOPE } from '../../electron/relay/oauth/endpoints.ts';
import { startKeepAlive } from '../../electron/relay/oauth/keep-alive.ts';
import type { SpooledMessage } from '../../electron/relay/spool.ts';
import { createUpstreamTransport } from '../../electron/relay/upstream.ts';
import { startGraphEmulator } from '../fixtures/graph-emulator.ts';
import { signIn, signOut, type SignInPrompt } from '../../electron/relay/oauth/signin.ts';
import { readSignedIn } from '../../electron/relay/oauth/signed-in.ts';
import type { UpstreamFailure } from '../../electron/relay/upstream-failure.ts';
import { createMemoryStore, type SecretStore } from '../../electron/secrets/index.ts';
import { refreshTokenAccount } from '../../electron/relay/secret-accounts.ts';
import {
  ENTRA_ERRORS,
  startTokenEndpoint,
  type EntraErrorCode,
  type TokenEndpointOptions,
} from '../fixtures/token-endpoint.ts';
import { failureOf } from '../fixtures/upstream-failures.ts';
import { entraApp } from '../fixtures/entra-app.ts';

async function setup(options: TokenEndpointOptions = {}) {
  const endpoint = await startTokenEndpoint({
    users: [
      { username: 'john@contoso.com', name: 'John Doe' },
      { username: 'scanner@contoso.com', name: 'Scanner' },
    ],
    deviceCodeInterval: 1,
    ...options,
  });
  onTestFinished(() => endpoint.close());
  const dataDir = await mkdtemp(join(tmpdir(), 'relaydesk-signin-'));
  onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
  const upstream: UpstreamConfig = {
    ...defaultConfig().upstream,
    preset: 'microsoft365',
    host: 'smtp.office365.com',
    auth: 'oauth2',
    oauth2: { ...entraApp(endpoint, 'delegated'), tokenUrl: endpoint.url() },
  };
  return { endpoint, dataDir, upstream, secrets: createMemoryStore() };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** What a browser does with the sign-in address: Entra ID's page signs in and redirects to the loopback. */
async function browse(url: string): Promise<{ status: number; body: string; location: string | null }> {
  const signInPage = await fetch(url, { redirect: 'manual' });
  const location = signInPage.headers.get('location');
  if (!location) return { status: signInPage.status, body: await signInPage.text(), location: null };
  const back = await fetch(location);
  return { status: back.status, body: await back.text(), location };
}

async function browserSignIn(s: Setup, secrets: SecretStore = s.secrets) {
  const prompts: SignInPrompt[] = [];
  const visits: Awaited<ReturnType<typeof browse>>[] = [];
  const account = await signIn({
    upstream: s.upstream,
    secrets,
    dataDir: s.dataDir,
    method: 'browser',
    onPrompt: (prompt) => prompts.push(prompt),
    openBrowser: async (url) => {
      visits.push(await browse(url));
    },
  });
  return { account, prompts, visits };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('browser sign-in (authorization code with PKCE, loopback redirect)', () => {
  it('signs in the chosen user, keeps the refresh token in the keychain only, and closes the listener', async () => {
    const s = await setup();
    s.endpoint.signInAs('scanner@contoso.com');
    const { account, prompts, visits } = await browserSignIn(s);

    expect(account).toMatchObject({ username: 'scanner@contoso.com', name: 'Scanner', method: 'browser' });
    const prompt = prompts[0]!;
    expect(prompt.kind).toBe('browser');
    if (prompt.kind !== 'browser') return;
    expect(prompt.redirectUri).toMatch(/^http:\/\/localhost:\d+\/$/);
    const authorize = new URL(prompt.url);
    expect(authorize.pathname).toBe(`/${s.endpoint.tenant}/oauth2/v2.0/authorize`);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('scope')).toBe(`${DELEGATED_SMTP_SCOPE} openid profile offline_access`);
    expect(visits[0]).toMatchObject({ status: 200 });
    expect(visits[0]!.body).toContain('Signed in to RelayDesk');
    expect(s.endpoint.grants).toEqual({ authorization_code: 1 });

    const stored = await s.secrets.get(refreshTokenAccount(s.upstream));
    expect(stored).toMatch(/^1\.A/);
    const record = await readFile(join(s.dataDir, 'signin.json'), 'utf8');
    expect(record).toContain('scanner@contoso.com');
    expect(record).not.toContain(stored!);
    expect(readSignedIn(s.dataDir)?.signedInAt).toBeGreaterThan(0);

    // The listener lived for the sign-in only.
    expect(await portOpen(Number(new URL(prompt.redirectUri).port))).toBe(false);
  });

  it('refuses an answer with a foreign state and never redeems its code', async () => {
    const s = await setup();
    const failure = await failureOf(
      signIn({
        upstream: s.upstream,
        secrets: s.secrets,
        dataDir: s.dataDir,
        method: 'browser',
        onPrompt: () => undefined,
        openBrowser: async (url) => {
          const signInPage = await fetch(url, { redirect: 'manual' });
          const location = new URL(signInPage.headers.get('location')!);
          location.searchParams.set('state', 'forged');
          const answer = await fetch(location);
          expect(answer.status).toBe(400);
        },
      }),
    );
    expect(failure).toMatchObject({ kind: 'config', code: 'SIGNIN_STATE_MISMATCH' });
    expect(diagnose(failure).id).toBe('signin-interrupted');
    expect(s.endpoint.grants).toEqual({});
    expect(await s.secrets.get(refreshTokenAccount(s.upstream))).toBeNull();
  });

  it('turns an error redirect (consent needed) into the admin-consent diagnosis', async () => {
    const s = await setup();
    s.endpoint.failNext('authorize', 65001);
    const failure = await failureOf(browserSignIn(s));
    expect(failure).toMatchObject({ kind: 'token', error: 'invalid_grant', aadsts: [65001] });
    const diagnosis = diagnose(failure, { appId: s.endpoint.clientId, tenant: s.endpoint.tenant });
    expect(diagnosis.id).toBe('signin-consent-needed');
    expect(diagnosis.fix).toContain(
      `https://login.microsoftonline.com/${s.endpoint.tenant}/adminconsent?client_id=${s.endpoint.clientId}`,
    );
  });
});

describe('the identity emulator answers like Entra ID', () => {
  it('checks the PKCE verifier, spends a code on first use, and refuses plain PKCE and foreign redirects', async () => {
    const { endpoint } = await setup();
    const authorize = (params: Record<string, string>) =>
      fetch(`${endpoint.endpointUrl('authorize')}?${new URLSearchParams(params)}`, { redirect: 'manual' });
    const base = {
      client_id: endpoint.clientId,
      response_type: 'code',
      redirect_uri: 'http://localhost:4711/',
      scope: `${DELEGATED_SMTP_SCOPE} offline_access`,
      state: 's1',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    };
    const foreign = await authorize({ ...base, redirect_uri: 'http://evil.example/' });
    expect(foreign.status).toBe(400);
    expect(await foreign.text()).toContain('AADSTS50011');
    const plain = new URL(
      (await authorize({ ...base, code_challenge_method: 'plain' })).headers.get('location')!,
    );
    expect(plain.searchParams.get('error')).toBe('invalid_request');
    expect(plain.searchParams.get('state')).toBe('s1');

    const redirected = new URL((await authorize(base)).headers.get('location')!);
    expect(redirected.origin + redirected.pathname).toBe('http://localhost:4711/');
    const code = redirected.searchParams.get('code')!;
    const redeem = (verifier: string) =>
      postTokenRequest({
        url: endpoint.url(),
        grant: 'authorization_code',
        form: {
          grant_type: 'authorization_code',
          client_id: endpoint.clientId,
          code,
          redirect_uri: base.redirect_uri,
          code_verifier: verifier,
        },
      });
    // RFC 7636 appendix B's verifier for that challenge; a wrong one spends the code too.
    expect(await failureOf(redeem('wrong-verifier-wrong-verifier-wrong-verifier'))).toMatchObject({
      error: 'invalid_grant',
      aadsts: [501481],
    });
    expect(await failureOf(redeem('dBjftJeZ4CVP-mJ92K9QSlZh2w3Ee1c9pYtyaiYfbX8'))).toMatchObject({
      error: 'invalid_grant',
      aadsts: [54005],
    });
  });

  it('writes errors in Entra ID shape, AADSTS number first in the description', async () => {
    const { endpoint } = await setup();
    endpoint.failNext('refresh_token', 70043);
    const response = await fetch(endpoint.url(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: endpoint.clientId,
        refresh_token: 'x',
        scope: DELEGATED_SMTP_SCOPE,
      }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(
      [
        'correlation_id',
        'error',
        'error_codes',
        'error_description',
        'error_uri',
        'suberror',
        'timestamp',
        'trace_id',
      ].sort(),
    );
    expect(body).toMatchObject({ error: 'invalid_grant', error_codes: [70043], suberror: 'token_expired' });
    expect(String(body.error_description)).toMatch(
      /^AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access\..*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/s,
    );
  });
});

describe('refresh with rotation', () => {
  it('stores each new refresh token, and the spent one is refused', async () => {
    const s = await setup();
    await browserSignIn(s);
    const account = refreshTokenAccount(s.upstream);
    const first = (await s.secrets.get(account))!;
    const tokens = createDelegatedTokenProvider({
      upstream: s.upstream,
      secrets: s.secrets,
      dataDir: s.dataDir,
    });
    const accessToken = await tokens.getToken();
    expect(s.endpoint.validate(accessToken, DELEGATED_SMTP_SCOPE)).toEqual({
      ok: true,
      user: 'john@contoso.com',
    });
    expect(tokens.user()).toBe('john@contoso.com');
    const second = (await s.secrets.get(account))!;
    expect(second).not.toBe(first);

    // Cached until shortly before expiry: no second refresh.
    expect(await tokens.getToken()).toBe(accessToken);
    expect(s.endpoint.grants.refresh_token).toBe(1);

    const replay = await failureOf(
      postTokenRequest({
        url: s.endpoint.url(),
        grant: 'refresh_token',
        form: {
          grant_type: 'refresh_token',
          client_id: s.endpoint.clientId,
          refresh_token: first,
          scope: DELEGATED_SMTP_SCOPE,
        },
        redact: [first],
      }),
    );
    expect(replay).toMatchObject({ kind: 'token', error: 'invalid_grant', grant: 'refresh_token' });
    expect(JSON.stringify(replay)).not.toContain(first);

    await tokens.getToken({ forceRefresh: true });
    expect(s.endpoint.grants.refresh_token).toBe(2);
    expect(readSignedIn(s.dataDir)!.lastRefreshAt).toBeGreaterThanOrEqual(
      readSignedIn(s.dataDir)!.signedInAt,
    );
  });

  it('takes the refresh token another process rotated meanwhile instead of calling the sign-in lost', async () => {
    const s = await setup();
    await browserSignIn(s);
    const relay = createDelegatedTokenProvider({ upstream: s.upstream, secrets: s.secrets });
    // `relaydesk check` in another process redeems the token first and stores the new one.
    const check = createDelegatedTokenProvider({ upstream: s.upstream, secrets: s.secrets });
    const account = refreshTokenAccount(s.upstream);
    const before = (await s.secrets.get(account))!;
    const racing: SecretStore = {
      ...s.secrets,
      async get(name) {
        const value = await s.secrets.get(name);
        if (value === before) await check.getToken();
        return value;
      },
    };
    const relayWithRace = createDelegatedTokenProvider({ upstream: s.upstream, secrets: racing });
    await expect(relayWithRace.getToken()).resolves.toMatch(/./);
    expect(s.endpoint.grants.refresh_token).toBe(2);
    await expect(relay.getToken()).resolves.toMatch(/./);
  });

  it('says "not signed in" with no refresh token stored', async () => {
    const s = await setup();
    const tokens = createDelegatedTokenProvider({ upstream: s.upstream, secrets: s.secrets });
    const failure = await failureOf(tokens.getToken());
    expect(failure).toMatchObject({ kind: 'config', code: 'NOT_SIGNED_IN' });
    const diagnosis = diagnose(failure);
    expect(diagnosis).toMatchObject({ id: 'signin-needed', action: 'hold' });
    expect(diagnosis.fix).toMatch(/^Sign in again: run `npx relaydesk signin`/);
  });

  it('signout forgets the refresh token and who signed in', async () => {
    const s = await setup();
    await browserSignIn(s);
    expect(await signOut(s)).toBe(true);
    expect(await s.secrets.get(refreshTokenAccount(s.upstream))).toBeNull();
    expect(readSignedIn(s.dataDir)).toBeNull();
    expect(await signOut(s)).toBe(false);
  });
});

describe('each Entra ID refusal of issue 14 has its row, holds the queue and says what to do', () => {
  const rows: [EntraErrorCode, string, RegExp][] = [
    [70043, 'signin-frequency', /^Sign in again/],
    [700082, 'signin-inactive', /^Sign in again/],
    [50173, 'signin-revoked', /^Sign in again.*new password/],
    [50076, 'signin-mfa-required', /^Sign in again.*second factor/],
    [50079, 'signin-mfa-enrolment', /aka\.ms\/mfasetup/],
    [65001, 'signin-consent-needed', /adminconsent\?client_id=/],
    [700016, 'signin-app-not-found', /Application \(client\) ID/],
    [7000218, 'signin-public-client-off', /Allow public client flows/],
  ];
  it.each(rows)('AADSTS%s on refresh → %s', async (code, id, fix) => {
    const s = await setup();
    await browserSignIn(s);
    s.endpoint.failNext('refresh_token', code);
    const tokens = createDelegatedTokenProvider({ upstream: s.upstream, secrets: s.secrets });
    const failure = await failureOf(tokens.getToken());
    expect(failure).toMatchObject({ kind: 'token', aadsts: [code], grant: 'refresh_token' });
    const diagnosis = diagnose(failure, { appId: s.endpoint.clientId, tenant: s.endpoint.tenant });
    expect(diagnosis.id).toBe(id);
    expect(diagnosis.action).toBe('hold');
    expect(diagnosis.fix).toMatch(fix);
    // The emulator's own wording is what the failure carries.
    expect(failure.kind === 'token' && failure.description).toContain(`AADSTS${code}: `);
    expect(ENTRA_ERRORS[code]).toBeTypeOf('function');
  });
});

describe('device code sign-in', () => {
  function deviceSignIn(s: Setup, onPrompt: (prompt: SignInPrompt) => void, waits: number[] = []) {
    return signIn({
      upstream: s.upstream,
      secrets: s.secrets,
      dataDir: s.dataDir,
      method: 'device-code',
      onPrompt,
      // The intervals the protocol asks for are recorded; the polls follow each other at once.
      wait: async (ms) => {
        waits.push(ms);
        await new Promise((resolve) => setImmediate(resolve));
      },
    });
  }

  it('polls while pending, adds 5 seconds after slow_down, and signs in once approved', async () => {
    const s = await setup();
    const waits: number[] = [];
    let polls = 0;
    const done = deviceSignIn(
      s,
      (prompt) => {
        expect(prompt).toMatchObject({
          kind: 'device-code',
          verificationUri: 'https://microsoft.com/devicelogin',
        });
        if (prompt.kind === 'device-code') expect(prompt.message).toContain(prompt.userCode);
      },
      waits,
    );
    // Let it poll a few times while pending, then ask it to slow down, then approve.
    while (waits.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    s.endpoint.slowDownNext();
    while (waits.length < 5) await new Promise((resolve) => setTimeout(resolve, 5));
    polls = waits.length;
    expect(s.endpoint.approveDeviceCode(s.endpoint.pendingDeviceCodes()[0]!.userCode)).toBe('approved');
    const account = await done;
    expect(account).toMatchObject({ username: 'john@contoso.com', method: 'device-code' });
    expect(s.endpoint.grants).toEqual({ device_code: 1 });
    // interval 1 s from the endpoint, 6 s for good after the slow_down.
    const slowed = waits.findIndex((ms) => ms === 6000);
    expect(waits.slice(0, slowed)).toEqual(Array(slowed).fill(1000));
    expect(waits.slice(slowed).every((ms) => ms === 6000)).toBe(true);
    expect(polls).toBeGreaterThanOrEqual(5);
  });

  it('ends on expired_token with its own row', async () => {
    const s = await setup();
    const done = deviceSignIn(s, () => s.endpoint.expireDeviceCodes());
    const failure = await failureOf(done);
    expect(failure).toMatchObject({ kind: 'token', error: 'expired_token', grant: 'device_code' });
    expect(diagnose(failure).id).toBe('signin-code-expired');
  });

  it('diagnoses device code blocked by Conditional Access and points to the browser', async () => {
    const s = await setup();
    s.endpoint.blockDeviceCode(true);
    const done = deviceSignIn(s, (prompt) => {
      if (prompt.kind === 'device-code') setImmediate(() => s.endpoint.approveDeviceCode(prompt.userCode));
    });
    const failure = await failureOf(done);
    expect(failure).toMatchObject({ kind: 'token', aadsts: [53003], grant: 'device_code' });
    const diagnosis = diagnose(failure);
    expect(diagnosis.id).toBe('signin-device-code-blocked');
    expect(diagnosis.fix).toContain('without --device-code');
  });

  it('without "Allow public client flows": AADSTS7000218 with its row', async () => {
    const s = await setup();
    s.endpoint.setPublicClientFlows(false);
    const failure = await failureOf(deviceSignIn(s, () => undefined));
    expect(failure).toMatchObject({ kind: 'token', error: 'invalid_client', aadsts: [7000218] });
    expect(diagnose(failure).id).toBe('signin-public-client-off');
  });
});

describe('keep-alive', () => {
  it('renews the sign-in on its own with no mail, and reports a refusal', async () => {
    const s = await setup();
    await browserSignIn(s);
    const tokens = createDelegatedTokenProvider({ upstream: s.upstream, secrets: s.secrets });
    let renewed = 0;
    const failures: UpstreamFailure[] = [];
    const keepAlive = startKeepAlive({
      tokens,
      intervalMs: 50,
      onRenewed: () => (renewed += 1),
      onFailed: (failure) => failures.push(failure),
    });
    onTestFinished(async () => keepAlive.stop());
    const deadline = Date.now() + 10_000;
    while (renewed < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(renewed).toBeGreaterThanOrEqual(3);
    expect(s.endpoint.grants.refresh_token).toBeGreaterThanOrEqual(3);

    s.endpoint.revokeRefreshTokens(700082);
    while (failures.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    keepAlive.stop();
    expect(diagnose(failures[0]!).id).toBe('signin-inactive');
  });
});

describe('Graph upstream with a delegated sign-in', () => {
  async function graphSetup(mailbox: string) {
    const s = await setup();
    const graph = await startGraphEmulator({
      tokens: s.endpoint,
      mailboxes: ['john@contoso.com', 'scanner@contoso.com'],
    });
    onTestFinished(() => graph.close());
    const upstream: UpstreamConfig = { ...s.upstream, type: 'graph', graphUrl: graph.url, mailbox };
    await browserSignIn({ ...s, upstream });
    const transport = await createUpstreamTransport(upstream, { secrets: s.secrets, dataDir: s.dataDir });
    onTestFinished(() => transport.close());
    const bytes = Buffer.from(`From: ${mailbox}\r\nTo: alice@contoso.com\r\nSubject: scan\r\n\r\nScan.\r\n`);
    const outcome = await transport.send({
      message: {} as SpooledMessage,
      mailFrom: mailbox,
      rcptTo: ['alice@contoso.com'],
      headerFrom: mailbox,
      size: bytes.length,
      eightBit: false,
      smtpUtf8: false,
      open: () => Readable.from([bytes]),
    });
    return { s, graph, outcome };
  }

  it("sends from the signed-in user's own mailbox with the delegated Mail.Send token", async () => {
    const { s, graph, outcome } = await graphSetup('john@contoso.com');
    expect(outcome.ok).toBe(true);
    expect(graph.delivered).toHaveLength(1);
    expect(graph.delivered[0]).toMatchObject({ mailbox: 'john@contoso.com', via: 'sendMail' });
    expect(s.endpoint.grants.refresh_token).toBe(1);
  });

  it("is refused another user's mailbox, which delegated Mail.Send does not reach", async () => {
    const { graph, outcome } = await graphSetup('scanner@contoso.com');
    expect(outcome.ok).toBe(false);
    if (!outcome.ok)
      expect(outcome.failure).toMatchObject({ kind: 'graph', status: 403, code: 'ErrorAccessDenied' });
    expect(graph.delivered).toHaveLength(0);
  });
});
