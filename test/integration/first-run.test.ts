/**
 * A first run as a newcomer meets it: an empty data folder, no config, no keychain. `serve` serves
 * the setup window (address and token printed) instead of stopping, and relays as soon as a config
 * is applied, without a restart; `relaydesk setup` does the same setup in the terminal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testCa } from '../fixtures/tls.ts';
import {
  createTeardown,
  freePort,
  ROOT,
  runCli,
  sendScan,
  startEmulator,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

/** No Secret Service on this bus: the keychain is unavailable, as on a fresh server. */
const NO_KEYCHAIN = { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent', NODE_EXTRA_CA_CERTS: testCa.file };

function startServe(
  dataDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/relaydesk.js'), 'serve', '--data-dir', dataDir], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  teardown.closing({
    close: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no address:\n${output}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Admin page: (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1]!, output: () => output });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}:\n${output}`)));
  });
}

describe('first run', () => {
  it('serve without a config serves the setup window, then relays what the wizard applies, without a restart', async () => {
    const dataDir = await tempDir();
    teardown.dir(dataDir);
    const emulator = await startEmulator(teardown);
    const serve = await startServe(dataDir, {
      ...NO_KEYCHAIN,
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(serve.output()).toContain('No config file yet');
    const [origin, token] = serve.url.split('/#token=') as [string, string];
    expect((await fetch(`${origin}/`)).status).toBe(200);

    const rpc = async (channel: string, payload: unknown) => {
      const response = await fetch(`${origin}/api/rpc/${channel}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(payload),
      });
      return ((await response.json()) as { result: Record<string, unknown> }).result;
    };
    expect(await rpc('relay:status', null)).toMatchObject({ state: 'unconfigured' });

    const lanPort = await freePort();
    const applied = await rpc('config:apply', { config: testConfig(lanPort, emulator.port, testCa.file) });
    expect(applied).toMatchObject({ ok: true });
    expect(await rpc('relay:status', null)).toMatchObject({ state: 'running' });
    expect((await sendScan(lanPort, 'first scan')).final).toMatch(/^250 /);
    await emulator.waitForMessages(1);
    expect(serve.child.exitCode).toBeNull();
  });

  it('relaydesk setup writes a config in the terminal, tests the connection and sends a test email', async () => {
    const dataDir = await tempDir();
    teardown.dir(dataDir);
    const emulator = await startEmulator(teardown);
    const lanPort = await freePort();
    const answers = [
      '2', // another mail server
      '127.0.0.1',
      '1', // STARTTLS
      String(emulator.port),
      'john@contoso.com',
      String(lanPort),
      '127.0.0.1, 192.168.1.0/24',
      'alice@contoso.com',
      '',
    ].join('\n');
    const result = await runCli(
      ['setup', '--data-dir', dataDir],
      { ...NO_KEYCHAIN, RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD },
      answers,
    );
    expect(result.stderr).toContain(`Using the password in RELAYDESK_UPSTREAM_PASSWORD`);
    expect(result.stderr).toContain('Test email sent to alice@contoso.com');
    expect(result.code).toBe(0);
    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({
      listen: { port: lanPort },
      allowedClients: ['127.0.0.1', '192.168.1.0/24'],
      upstream: { host: '127.0.0.1', port: emulator.port, security: 'starttls', user: 'john@contoso.com' },
    });
    expect(JSON.stringify(config)).not.toContain(UPSTREAM_PASSWORD);
    await emulator.waitForMessages(1);
  });

  it('relaydesk setup saves nothing when the connection test fails and the admin does not insist', async () => {
    const dataDir = await tempDir();
    teardown.dir(dataDir);
    const emulator = await startEmulator(teardown);
    const answers = ['2', '127.0.0.1', '1', String(emulator.port), 'john@contoso.com', 'no', ''].join('\n');
    const result = await runCli(
      ['setup', '--data-dir', dataDir],
      { ...NO_KEYCHAIN, RELAYDESK_UPSTREAM_PASSWORD: 'a wrong password' },
      answers,
    );
    expect(result.stdout + result.stderr).toMatch(/535/);
    expect(result.stderr).toContain('Nothing was saved');
    expect(result.code).toBe(1);
    await expect(readFile(join(dataDir, 'config.json'), 'utf8')).rejects.toThrow(/ENOENT/);
  });
});
