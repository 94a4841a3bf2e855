/**
 * Every row of the diagnosis table is reachable from a real failure: each SMTP reply row is sent
 * by the Exchange emulator at its stage and the test email must be diagnosed as that row; network,
 * TLS and token-endpoint rows come from real sockets, certificates and the loopback token endpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { RelayConfig, UpstreamConfig } from '../../electron/config/types.ts';
import { checkUpstream } from '../../electron/relay/check.ts';
import { DIAGNOSIS_RULES } from '../../electron/relay/diagnosis.ts';
import { sendTestEmail } from '../../electron/relay/send-test.ts';
import { createMemoryStore } from '../../electron/secrets/index.ts';
import { startExchangeEmulator, type Emulator, type Stage } from '../fixtures/exchange-emulator.ts';
import { testCa } from '../fixtures/tls.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';
import { freePort, UPSTREAM_PASSWORD } from './harness.ts';

let emulator: Emulator;
let tokens: TokenEndpoint;

beforeAll(async () => {
  emulator = await startExchangeEmulator({ password: UPSTREAM_PASSWORD, enforceSendAs: false });
  tokens = await startTokenEndpoint({ tenant: 'contoso.onmicrosoft.com' });
});

afterAll(async () => {
  await emulator.close();
  await tokens.close();
});

function config(upstream: Partial<UpstreamConfig> = {}): RelayConfig {
  const base = defaultConfig();
  return {
    ...base,
    upstream: {
      ...base.upstream,
      host: '127.0.0.1',
      port: emulator.port,
      user: 'john@contoso.com',
      caFile: testCa.file,
      timeoutSeconds: 2,
      ...upstream,
    },
  };
}

const deps = (env: NodeJS.ProcessEnv = { RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD }) => ({
  secrets: createMemoryStore(),
  env,
});

/** The client reports a scripted greeting at stage `greeting`; the emulator calls that stage `connect`. */
const EMULATOR_STAGE: Record<string, Stage> = { greeting: 'connect' };

const replyRules = DIAGNOSIS_RULES.filter(
  (rule) => rule.example.kind === 'reply' && rule.example.reply.code >= 400,
);

describe('every SMTP reply row, from the emulator', () => {
  it.each(replyRules.map((rule) => [rule.id, rule] as const))('%s', async (_id, rule) => {
    if (rule.example.kind !== 'reply') throw new Error('filtered above');
    const stage = EMULATOR_STAGE[rule.example.stage] ?? (rule.example.stage as Stage);
    emulator.clearScript();
    emulator.script(stage, rule.example.reply.raw, { times: 1 });
    const result = await sendTestEmail(config(), deps(), 'alice@contoso.com');
    emulator.clearScript();
    expect(result.ok).toBe(false);
    expect(result.diagnosis?.id).toBe(rule.id);
  });
});

describe('network and TLS rows, from real sockets and certificates', () => {
  it('connection-refused: nothing listens on the port', async () => {
    const result = await checkUpstream(config({ port: await freePort() }), deps());
    expect(result.diagnosis?.id).toBe('connection-refused');
  });

  it('connection-timeout: the server never answers', async () => {
    emulator.script('connect', { stall: true }, { times: 1 });
    const result = await checkUpstream(config(), deps());
    emulator.clearScript();
    expect(result.failure).toMatchObject({ kind: 'network', code: 'ETIMEDOUT' });
    expect(result.diagnosis?.id).toBe('connection-timeout');
  });

  it('connection-reset: the server drops the connection mid-message', async () => {
    emulator.script('message', { resetMidData: true }, { times: 1 });
    const result = await sendTestEmail(config(), deps(), 'alice@contoso.com');
    emulator.clearScript();
    expect(result.diagnosis?.category).toBe('network');
    expect(result.diagnosis?.action).toBe('retry');
  });

  it('dns-failed: a host name that does not resolve', async () => {
    const result = await checkUpstream(config({ host: 'smtp.relaydesk-test.invalid' }), deps());
    expect(result.diagnosis?.id).toBe('dns-failed');
  });

  it.each([
    ['untrusted', 'tls-untrusted-certificate'],
    ['wrong-host', 'tls-wrong-host'],
  ] as const)('a %s certificate', async (certificate, id) => {
    const server = await startExchangeEmulator({ password: UPSTREAM_PASSWORD, certificate });
    try {
      const result = await checkUpstream(config({ port: server.port }), deps());
      expect(result.diagnosis?.id).toBe(id);
      expect(result.diagnosis?.action).toBe('hold');
    } finally {
      await server.close();
    }
  });

  it('tls-old-version: a server that only speaks TLS 1.0', async () => {
    const server = await startExchangeEmulator({
      password: UPSTREAM_PASSWORD,
      tlsVersions: { min: 'TLSv1', max: 'TLSv1' },
    });
    try {
      const result = await checkUpstream(config({ port: server.port }), deps());
      expect(result.diagnosis?.category).toBe('tls');
      expect(result.diagnosis?.action).toBe('hold');
    } finally {
      await server.close();
    }
  });

  it('tls-not-spoken: implicit TLS against a STARTTLS port', async () => {
    const result = await checkUpstream(config({ security: 'tls' }), deps());
    expect(result.diagnosis?.category).toBe('tls');
  });
});

describe('token endpoint and configuration rows', () => {
  const oauth = (overrides: Partial<{ tenant: string; clientId: string }> = {}) =>
    config({
      auth: 'oauth2',
      oauth2: {
        tenant: overrides.tenant ?? tokens.tenant,
        clientId: overrides.clientId ?? tokens.clientId,
        grant: 'client_credentials',
        authorityUrl: tokens.authorityUrl,
        tokenUrl: tokens.url(overrides.tenant),
      },
    });

  it('token-secret-invalid: a wrong client secret', async () => {
    const result = await checkUpstream(oauth(), deps({ RELAYDESK_CLIENT_SECRET: 'wrong' }));
    expect(result.diagnosis?.id).toBe('token-secret-invalid');
    expect(JSON.stringify(result)).not.toContain('"wrong"');
  });

  it('token-tenant-not-found: an unknown tenant', async () => {
    const result = await checkUpstream(
      oauth({ tenant: 'fabrikam.onmicrosoft.com' }),
      deps({ RELAYDESK_CLIENT_SECRET: tokens.clientSecret }),
    );
    expect(result.diagnosis?.id).toBe('token-tenant-not-found');
  });

  it('token-app-not-found: an unknown client id', async () => {
    const result = await checkUpstream(
      oauth({ clientId: '00000000-0000-0000-0000-000000000000' }),
      deps({ RELAYDESK_CLIENT_SECRET: tokens.clientSecret }),
    );
    expect(result.diagnosis?.id).toBe('token-app-not-found');
  });

  it('token-consent-missing: admin consent not granted', async () => {
    tokens.requireConsent('https://outlook.office365.com/.default', false);
    try {
      const result = await checkUpstream(oauth(), deps({ RELAYDESK_CLIENT_SECRET: tokens.clientSecret }));
      expect(result.diagnosis?.id).toBe('token-consent-missing');
    } finally {
      tokens.requireConsent('https://outlook.office365.com/.default', true);
    }
  });

  it('secret-missing: no password anywhere', async () => {
    const result = await checkUpstream(config(), deps({}));
    expect(result.diagnosis?.id).toBe('secret-missing');
    expect(result.diagnosis?.fix).toContain('password set');
  });
});
