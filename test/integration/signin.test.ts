/**
 * Issue 14 end to end: `relaydesk signin` through a real loopback redirect (the test plays the browser),
 * the refresh token in a real Secret Service, `serve` delivering through XOAUTH2 as the signed-in user,
 * one refresh when the access token dies, the queue held with "Sign in again" when the refresh token is
 * revoked, `signin --device-code`, and the held mail going out.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeEmulator, type Emulator } from '../fixtures/exchange-emulator.ts';
import { runCommand, startKeyringSession, type KeyringSession } from '../fixtures/keyring-session.ts';
import { testCa } from '../fixtures/tls.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';
import {
  createTeardown,
  freePort,
  runCli,
  sendScan,
  spawnCli,
  startRelay,
  tempDir,
  testConfig,
} from './harness.ts';

const DELEGATED_SMTP_SCOPE = 'https://outlook.office.com/SMTP.Send';

let keyring: KeyringSession;
const teardown = createTeardown();
beforeAll(async () => {
  keyring = await startKeyringSession();
}, 60_000);
afterAll(async () => {
  await teardown.run();
  await keyring?.stop();
});

/** A CLI run whose output the test reads while it runs (signin waits for the "browser"). */
function startCli(args: string[], env: NodeJS.ProcessEnv) {
  const { child, output, done } = spawnCli(args, env);
  return {
    done,
    /** Resolves with the first match of `pattern` in stdout (bounded). */
    async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const match = pattern.exec(output.stdout);
        if (match) return match;
        if (child.exitCode !== null) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error(`no ${pattern} in signin output:\n${output.stdout}\n${output.stderr}`);
    },
  };
}

describe('Sign in with Microsoft (delegated OAuth 2.0) end to end', () => {
  let endpoint: TokenEndpoint;
  let emulator: Emulator;
  let dataDir: string;
  let configFile: string;
  let config: Record<string, unknown>;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    endpoint = teardown.closing(
      await startTokenEndpoint({
        tenant: 'contoso.onmicrosoft.com',
        users: [{ username: 'john@contoso.com', name: 'John Doe' }],
        deviceCodeInterval: 1,
      }),
    );
    emulator = teardown.closing(
      await startExchangeEmulator({
        validateToken: (token) => endpoint.validate(token, DELEGATED_SMTP_SCOPE),
      }),
    );
    dataDir = teardown.dir(await tempDir());
    configFile = join(dataDir, 'config.json');
    config = testConfig(await freePort(), emulator.port, testCa.file, {
      upstream: {
        auth: 'oauth2',
        // No user: XOAUTH2 goes out as whoever signs in.
        user: null,
        oauth2: {
          tenant: endpoint.tenant,
          clientId: endpoint.clientId,
          grant: 'delegated',
          authorityUrl: endpoint.authorityUrl,
        },
      },
    });
    // No password or client secret anywhere: the sign-in is all there is.
    env = { ...keyring.env, RELAYDESK_UPSTREAM_PASSWORD: '', RELAYDESK_CLIENT_SECRET: '' };
    await import('node:fs/promises').then((fs) => fs.writeFile(configFile, JSON.stringify(config)));
  });

  it('signs in, sends as the user, survives an expired access token, holds on revocation, and recovers with a device code', async () => {
    // 1. `signin` through a real loopback redirect; the test is the browser.
    const signin = startCli(['signin', '--no-browser', '--config', configFile, '--data-dir', dataDir], env);
    const [url] = await signin.waitFor(/http:\/\/127\.0\.0\.1:\d+\/\S+\/oauth2\/v2\.0\/authorize\?\S+/);
    const signInPage = await fetch(url, { redirect: 'manual' });
    expect(signInPage.status).toBe(302);
    const loopback = signInPage.headers.get('location')!;
    expect(loopback).toMatch(/^http:\/\/localhost:\d+\/\?code=/);
    const landing = await fetch(loopback);
    expect(await landing.text()).toContain('Signed in to RelayDesk');
    const signedIn = await signin.done;
    expect(signedIn.stderr).toBe('');
    expect(signedIn.code).toBe(0);
    expect(signedIn.stdout).toContain('Signed in as John Doe <john@contoso.com>.');
    expect(signedIn.stdout).toContain('Secret Service, service "RelayDesk"');

    // The refresh token is in the keychain under service RelayDesk, and nowhere in the data folder.
    const account = `oauth2-refresh:${endpoint.tenant}:${endpoint.clientId}`.toLowerCase();
    const lookup = await runCommand('secret-tool', ['lookup', 'service', 'RelayDesk', 'username', account], {
      env: keyring.env,
    });
    expect(lookup.stdout).toMatch(/^1\.A/);
    const refreshToken = lookup.stdout;
    const record = await readFile(join(dataDir, 'signin.json'), 'utf8');
    expect(record).toContain('john@contoso.com');
    expect(record).not.toContain(refreshToken);
    expect(signedIn.stdout).not.toContain(refreshToken);

    // `check` works with the sign-in.
    const check = await runCli(['check', '--config', configFile, '--data-dir', dataDir], env);
    expect(check.stdout).toMatch(
      /ok +credentials .*OAuth 2\.0 token for john@contoso\.com obtained \(signed in/,
    );
    expect(check.stdout).toMatch(/ok +auth .*XOAUTH2/);
    expect(check.code).toBe(0);
    const sendTest = await runCli(
      ['send-test', '--to', 'alice@contoso.com', '--config', configFile, '--data-dir', dataDir],
      env,
    );
    expect(sendTest.stdout).toContain('Test message sent from john@contoso.com to alice@contoso.com.');
    expect(sendTest.code).toBe(0);
    expect((await emulator.waitForMessages(1, 60_000))[0]!.authUser).toBe('john@contoso.com');

    // 2. `serve` delivers through XOAUTH2 as the user.
    const relay = teardown.relay(await startRelay({ config, dataDir, env }));
    await relay.waitForLog((r) => r.event === 'signin-renewed', 60_000);
    await sendScan(relay.port, 'one');
    const [, first] = await emulator.waitForMessages(2, 60_000);
    expect(first!.authUser).toBe('john@contoso.com');
    const status = await relay.cli(['status'], env);
    expect(status.stdout).toMatch(
      /Signed in: John Doe <john@contoso\.com> since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(browser\)/,
    );

    // 3. The access token dies early and the pooled connection is dropped: the next message goes out
    // after exactly one refresh.
    const refreshesBefore = endpoint.grants.refresh_token ?? 0;
    endpoint.expireAll();
    emulator.script('mail', { drop: true }, { times: 1 });
    await sendScan(relay.port, 'two', 'bob@contoso.com');
    const afterExpiry = await emulator.waitForMessages(3, 60_000);
    expect(afterExpiry[2]!.authUser).toBe('john@contoso.com');
    expect(endpoint.grants.refresh_token).toBe(refreshesBefore + 1);

    // 4. The password is changed: every refresh token is revoked. Mail is held, not failed.
    endpoint.revokeRefreshTokens(50173);
    endpoint.expireAll();
    emulator.script('mail', { drop: true }, { times: 1 });
    await sendScan(relay.port, 'three', 'carol@contoso.com');
    const held = await relay.waitForLog((r) => r.event === 'held', 60_000);
    expect(held.diagnosis).toBe('signin-revoked');
    expect(String(held.fix)).toMatch(/^Sign in again: run `npx relaydesk signin`/);
    const heldStatus = await relay.cli(['status'], env);
    expect(heldStatus.stdout).toContain('HELD');
    expect(heldStatus.stdout).toContain('Sign in again');
    expect(relay.logs.filter((r) => r.event === 'failed')).toEqual([]);
    expect(emulator.messages).toHaveLength(3);

    // 5. `signin --device-code`: the user enters the code on another device.
    const deviceSignIn = startCli(
      ['signin', '--device-code', '--config', configFile, '--data-dir', dataDir],
      env,
    );
    const [, userCode] = await deviceSignIn.waitFor(/Code: +(\S+)/);
    expect(endpoint.approveDeviceCode(userCode!)).toBe('approved');
    const deviceResult = await deviceSignIn.done;
    expect(deviceResult.code).toBe(0);
    expect(deviceResult.stdout).toContain('https://microsoft.com/devicelogin');
    expect(deviceResult.stdout).toContain('Signed in as John Doe <john@contoso.com>.');
    expect(deviceResult.stdout).toContain('The running relay sends the waiting mail now.');

    // 6. The held mail goes out.
    const all = await emulator.waitForMessages(4, 60_000);
    expect(all[3]!.authUser).toBe('john@contoso.com');
    await relay.waitForLog((r) => r.event === 'released', 60_000);
    const logs = await readFile(
      join(dataDir, 'logs', (await import('node:fs')).readdirSync(join(dataDir, 'logs'))[0]!),
      'utf8',
    );
    const secretNow = (
      await runCommand('secret-tool', ['lookup', 'service', 'RelayDesk', 'username', account], {
        env: keyring.env,
      })
    ).stdout;
    expect(logs).not.toContain(secretNow);
    expect(logs).not.toContain(refreshToken);
    expect(await relay.stop()).toBe(0);
  }, 240_000);

  it('signin without a delegated config says what to set, and signout forgets the sign-in', async () => {
    const appOnlyFile = join(dataDir, 'app-only.json');
    const { upstream } = config as { upstream: Record<string, unknown> };
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(
        appOnlyFile,
        JSON.stringify({
          ...config,
          upstream: {
            ...upstream,
            user: 'john@contoso.com',
            oauth2: { tenant: endpoint.tenant, clientId: endpoint.clientId },
          },
        }),
      ),
    );
    const refused = await runCli(['signin', '--config', appOnlyFile, '--data-dir', dataDir], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('upstream.oauth2.grant to "delegated"');

    // "Allow public client flows" is off in the app registration: the diagnosis, and a non-zero exit.
    endpoint.setPublicClientFlows(false);
    const blocked = startCli(['signin', '--device-code', '--config', configFile, '--data-dir', dataDir], env);
    const [, code] = await blocked.waitFor(/Code: +(\S+)/);
    endpoint.approveDeviceCode(code!);
    const failed = await blocked.done;
    endpoint.setPublicClientFlows(true);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('Sign-in failed: token endpoint: HTTP 401 invalid_client AADSTS7000218');
    expect(failed.stderr).toContain('Allow public client flows');
    expect(failed.stderr).toContain('diagnosis signin-public-client-off');

    const out = await runCli(['signout', '--config', configFile, '--data-dir', dataDir], env);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('Signed out');
    const check = await runCli(['check', '--config', configFile, '--data-dir', dataDir], env);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('diagnosis signin-needed');

    // With no mail at all, the relay's own renewal at start finds nobody signed in and holds.
    const relay = teardown.relay(await startRelay({ config, dataDir, env }));
    const held = await relay.waitForLog((r) => r.event === 'held', 60_000);
    expect(held.diagnosis).toBe('signin-needed');
    const status = await relay.cli(['status'], env);
    expect(status.stdout).toContain('Signed in: nobody (run `relaydesk signin`)');
    expect(status.stdout).toContain('HELD');
  }, 120_000);
});
