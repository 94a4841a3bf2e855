/**
 * Microsoft 365 readiness end to end: `check`, `send-test`, the sender modes, OAuth 2.0 with token
 * expiry, the 3-connection limit, and the keychain, against the Exchange Online emulator and a
 * loopback token endpoint.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Emulator } from '../fixtures/exchange-emulator.ts';
import { startKeyringSession } from '../fixtures/keyring-session.ts';
import { testCa, untrustedCertificate } from '../fixtures/tls.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';
import {
  createTeardown,
  freePort,
  runCli,
  scanMessage,
  sendMail,
  sendScan,
  startEmulator,
  startRelay,
  startRelayWithEmulator,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
  writeConfigFile,
} from './harness.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const SMTP_SCOPE = 'https://outlook.office365.com/.default';

let emulator: Emulator | null = null;
let tokens: TokenEndpoint | null = null;
const teardown = createTeardown();
afterEach(async () => {
  await teardown.run();
  emulator = null;
  tokens = null;
});

const writeConfig = (config: object) => writeConfigFile(teardown, config);

async function serve(extra: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  const relay = await startRelay({
    config: testConfig(await freePort(), emulator!.port, testCa.file, extra),
    env,
  });
  return teardown.relay(relay);
}

describe('relaydesk check', () => {
  it('shows each step with its time and says nothing was sent', async () => {
    emulator = await startEmulator(teardown);
    const { file } = await writeConfig(testConfig(25, emulator!.port, testCa.file));
    const result = await runCli(['check', '--config', file], {
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(result.code).toBe(0);
    for (const step of ['credentials', 'connect', 'greeting', 'ehlo', 'starttls', 'auth']) {
      expect(result.stdout).toMatch(new RegExp(`ok +${step} +\\d+ ms`));
    }
    expect(result.stdout).toMatch(/starttls .*TLSv1\.[23]/);
    expect(result.stdout).toContain('Nothing was sent.');
    expect(emulator!.messages).toHaveLength(0);
    expect(result.stdout).not.toContain(UPSTREAM_PASSWORD);
  });

  it('explains a wrong password with the 535 5.7.3 diagnosis', async () => {
    emulator = await startEmulator(teardown);
    const { file } = await writeConfig(testConfig(25, emulator!.port, testCa.file));
    const result = await runCli(['check', '--config', file], { RELAYDESK_UPSTREAM_PASSWORD: 'wrong' });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAIL auth/);
    expect(result.stdout).toContain('535 5.7.3');
    expect(result.stdout).toContain('How to fix:');
    expect(result.stdout).toContain('password set');
  });

  it('explains an untrusted certificate without ever switching checks off', async () => {
    emulator = await startEmulator(teardown, { certificate: 'untrusted' });
    const { file } = await writeConfig(testConfig(25, emulator!.port, testCa.file));
    const result = await runCli(['check', '--config', file, '--json'], {
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.failure).toMatchObject({ kind: 'tls', stage: 'starttls' });
    expect(report.diagnosis.category).toBe('tls');
    expect(report.diagnosis.fix).toContain('caFile');
    expect(emulator!.stats.sessions).toBe(0);
    expect(untrustedCertificate.cert.file).toBeTruthy();
  });
});

describe('relaydesk send-test', () => {
  it('sends a test message that says which relay, which path and when', async () => {
    emulator = await startEmulator(teardown);
    const { file } = await writeConfig(testConfig(2525, emulator!.port, testCa.file));
    const result = await runCli(['send-test', '--to', 'john@contoso.com', '--config', file], {
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Upstream replied: 250 2\.0\.0 OK/);
    const [received] = await emulator!.waitForMessages(1);
    const text = received!.data.toString('utf8');
    expect(received!.rcptTo).toEqual(['john@contoso.com']);
    expect(text).toMatch(/^Subject: RelayDesk test message from \S+ \(.+\)$/m);
    expect(text).toContain('127.0.0.1:2525');
    expect(text).toContain(`127.0.0.1:${emulator!.port} (starttls, auth password as john@contoso.com)`);
  });

  it('reports a Send As refusal with its fix', async () => {
    emulator = await startEmulator(teardown);
    const { file } = await writeConfig(
      testConfig(2525, emulator!.port, testCa.file, { upstream: { user: 'scanner@contoso.com' } }),
    );
    emulator!.setOptions({ mailbox: 'scanner@contoso.com' });
    emulator!.script(
      'message',
      '554 5.2.252 SendAsDenied; scanner@contoso.com not allowed to send as scanner@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied',
    );
    const result = await runCli(['send-test', '--to', 'john@contoso.com', '--config', file], {
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('554 5.2.252');
    expect(result.stdout).toContain('Add-RecipientPermission');
  });
});

describe('sender handling', () => {
  /**
   * A relay with `sender` in front of a mailbox with Send As on `aliases`: a device sends one message
   * to alice@ as `from` (envelope) with `header` as its From, and the upstream's copy is returned.
   */
  async function sendAsDevice(
    { sender, aliases }: { sender?: Record<string, unknown>; aliases?: string[] },
    { from, header, subject }: { from: string; header: string | null; subject: string },
  ) {
    const { emulator, relay } = await startRelayWithEmulator(teardown, {
      emulator: { aliases },
      config: sender ? { sender } : {},
    });
    const sent = await sendMail(relay.port, {
      from,
      to: ['alice@contoso.com'],
      data: scanMessage(subject, header),
    });
    return { emulator, relay, sent };
  }

  /** What the upstream got of the one message `sendAsDevice` sent. */
  async function upstreamCopy(...args: Parameters<typeof sendAsDevice>) {
    const { emulator } = await sendAsDevice(...args);
    const [received] = await emulator.waitForMessages(1);
    return received!;
  }

  const HELP_DESK = { from: 'HelpDesk@contoso.com', header: 'Help Desk <HelpDesk@contoso.com>' };

  it('keep: a device sending as an address the mailbox may not use fails with the Send As diagnosis', async () => {
    const { relay, sent } = await sendAsDevice(
      { sender: { mode: 'keep' } },
      { ...HELP_DESK, subject: 'keep' },
    );
    expect(sent.final).toMatch(/^250 /);
    const failed = await relay.waitForLog((r) => r.event === 'failed');
    expect(String(failed.reply)).toContain('554 5.2.252 SendAsDenied');
    expect(String(failed.fix)).toMatch(/Add-RecipientPermission|rewrite/);
    const list = JSON.parse((await relay.cli(['queue', 'list', '--json'])).stdout);
    expect(list[0]).toMatchObject({ status: 'failed', lastDiagnosis: failed.diagnosis });
  });

  it('keep: relays unchanged when the mailbox has Send As on the device address', async () => {
    const received = await upstreamCopy(
      { sender: { mode: 'keep' }, aliases: ['helpdesk@contoso.com'] },
      { ...HELP_DESK, subject: 'keep ok' },
    );
    expect(received.mailFrom).toBe('HelpDesk@contoso.com');
    expect(received.data.toString()).toContain('\r\nFrom: Help Desk <HelpDesk@contoso.com>\r\n');
  });

  it('rewrite: sender becomes the mailbox, the device address stays as Reply-To and in the display name', async () => {
    const received = await upstreamCopy(
      { sender: { mode: 'rewrite' } },
      { ...HELP_DESK, subject: 'rewrite' },
    );
    const text = received.data.toString();
    expect(received.mailFrom).toBe('john@contoso.com');
    expect(text).toContain('\r\nFrom: "Help Desk (HelpDesk@contoso.com)" <john@contoso.com>\r\n');
    expect(text).toContain('\r\nReply-To: "Help Desk" <HelpDesk@contoso.com>\r\n');
  });

  it('byClient: each device sends as its own Send As address', async () => {
    const received = await upstreamCopy(
      {
        sender: { mode: 'keep', byClient: { '127.0.0.1': 'FaxService@contoso.com' } },
        aliases: ['faxservice@contoso.com'],
      },
      { from: 'fax', header: 'Fax <fax@localhost>', subject: 'fax' },
    );
    expect(received.mailFrom).toBe('FaxService@contoso.com');
    expect(received.data.toString()).toContain(
      '\r\nFrom: "Fax (fax@localhost)" <FaxService@contoso.com>\r\n',
    );
  });

  it('a message without From gets the mailbox, and Date and Message-ID are added', async () => {
    const received = await upstreamCopy({}, { from: 'scanner', header: null, subject: 'no from' });
    const text = received.data.toString();
    expect(received.mailFrom).toBe('john@contoso.com');
    expect(text).toContain('\r\nFrom: <john@contoso.com>\r\n');
    expect(text).toMatch(/\r\nDate: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n/);
    expect(text).toMatch(/\r\nMessage-ID: <[0-9A-Z]+@\S+>\r\n/);
  });
});

describe('OAuth 2.0 (client credentials, XOAUTH2)', () => {
  async function oauthSetup() {
    tokens = teardown.closing(await startTokenEndpoint({ tenant: 'contoso.onmicrosoft.com' }));
    const endpoint = tokens;
    emulator = await startEmulator(teardown, {
      validateToken: (token) => endpoint.validate(token, SMTP_SCOPE),
    });
    return {
      upstream: {
        auth: 'oauth2',
        oauth2: { tenant: endpoint.tenant, clientId: endpoint.clientId, tokenUrl: endpoint.url() },
      },
    };
  }

  it('delivers with a token, caches it, and refreshes once when the token expired early', async () => {
    const extra = await oauthSetup();
    const relay = await serve(extra, {
      RELAYDESK_CLIENT_SECRET: tokens!.clientSecret,
      RELAYDESK_UPSTREAM_PASSWORD: '',
    });
    await sendScan(relay.port, 'one');
    await sendScan(relay.port, 'two', 'bob@contoso.com');
    await emulator!.waitForMessages(2);
    expect(tokens!.issued).toBe(1);

    // The token dies before its time (revoked, clock skew), and the server drops the pooled
    // connection: the new connection's AUTH gets 535, which triggers exactly one token refresh.
    tokens!.expireAll();
    emulator!.script('mail', { drop: true }, { times: 1 });
    const failuresBefore = emulator!.stats.authFailures;
    await sendScan(relay.port, 'three', 'carol@contoso.com');
    await emulator!.waitForMessages(3);
    expect(tokens!.issued).toBe(2);
    expect(emulator!.stats.authFailures).toBe(failuresBefore + 1);
    expect(
      relay.logs.filter((r) => r.event === 'failed' || r.event === 'held' || r.event === 'deferred'),
    ).toEqual([]);
    expect(emulator!.transcript.join('\n')).not.toContain(tokens!.clientSecret);
  });

  it('diagnoses a wrong client secret from the token endpoint (AADSTS7000215) and holds the queue', async () => {
    const extra = await oauthSetup();
    const relay = await serve(extra, {
      RELAYDESK_CLIENT_SECRET: 'not-the-secret',
      RELAYDESK_UPSTREAM_PASSWORD: '',
    });
    await sendScan(relay.port, 'x');
    const held = await relay.waitForLog((r) => r.event === 'held');
    expect(String(held.reason)).toContain('AADSTS7000215');
    expect(JSON.stringify(relay.logs)).not.toContain('not-the-secret');
  });

  it('check shows the token step and the XOAUTH2 AUTH', async () => {
    const extra = await oauthSetup();
    const { file } = await writeConfig(testConfig(25, emulator!.port, testCa.file, extra));
    const result = await runCli(['check', '--config', file], {
      RELAYDESK_CLIENT_SECRET: tokens!.clientSecret,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/ok +credentials .*OAuth 2\.0 token for john@contoso\.com obtained/);
    expect(result.stdout).toMatch(/ok +auth .*XOAUTH2/);
  });
});

describe('Microsoft 365 limits', () => {
  it('432 4.3.2 past 3 connections is retried, and everything arrives', async () => {
    const { emulator, relay } = await startRelayWithEmulator(teardown, {
      config: { upstream: { maxConnections: 5 }, queue: { minRetrySeconds: 1, maxRetrySeconds: 1 } },
    });
    const sends = Array.from({ length: 10 }, (_, i) => sendScan(relay.port, `n${i}`, `user${i}@contoso.com`));
    for (const sent of await Promise.all(sends)) expect(sent.final).toMatch(/^250 /);
    const received = await emulator.waitForMessages(10, 30_000);
    expect(new Set(received.flatMap((m) => m.rcptTo)).size).toBe(10);
    const deferred = relay.logs.filter((r) => r.event === 'deferred');
    expect(deferred.length).toBeGreaterThan(0);
    for (const record of deferred) expect(String(record.reply)).toContain('432 4.3.2');
    expect(relay.logs.filter((r) => r.event === 'failed')).toEqual([]);
  });

  it('stays within 3 connections and reuses them when configured like Microsoft 365', async () => {
    const { emulator, relay } = await startRelayWithEmulator(teardown, {
      config: { upstream: { maxConnections: 3 } },
    });
    const sends = Array.from({ length: 12 }, (_, i) => sendScan(relay.port, `n${i}`, `user${i}@contoso.com`));
    await Promise.all(sends);
    await emulator.waitForMessages(12, 30_000);
    expect(emulator.stats.maxConcurrent).toBeLessThanOrEqual(3);
    expect(emulator.stats.connections).toBeLessThan(12);
    expect(relay.logs.filter((r) => r.event === 'deferred')).toEqual([]);
  });
});

describe('secrets in the OS keychain', () => {
  it('password set stores the secret in a real Secret Service, and serve uses it without the environment variable', async () => {
    const session = await startKeyringSession();
    try {
      emulator = await startEmulator(teardown);
      const dataDir = teardown.dir(await tempDir());
      const port = await freePort();
      const config = testConfig(port, emulator!.port, testCa.file);
      await writeFile(join(dataDir, 'config.json'), JSON.stringify(config));
      const env = { ...session.env, RELAYDESK_UPSTREAM_PASSWORD: '' };
      const set = await runCli(['password', 'set', '--data-dir', dataDir], env, `${UPSTREAM_PASSWORD}\n`);
      expect(set.code).toBe(0);
      expect(set.stdout).toContain('Stored the password of john@contoso.com in Secret Service');
      expect(set.stdout + set.stderr).not.toContain(UPSTREAM_PASSWORD);

      const relay = await startRelay({ config, dataDir, env });
      teardown.relay(relay);
      await sendScan(port, 'from keychain');
      await emulator!.waitForMessages(1);
      await relay.stop();

      const clear = await runCli(['password', 'clear', '--data-dir', dataDir], env);
      expect(clear.stdout).toContain('Removed the password');
      const check = await runCli(['check', '--data-dir', dataDir], env);
      expect(check.code).toBe(1);
      expect(check.stdout).toContain('RELAYDESK_UPSTREAM_PASSWORD');
    } finally {
      await session.stop();
    }
  });
});
