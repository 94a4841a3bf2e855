/**
 * "Sign in with Microsoft" in the real window in Debian's Chromium, against `relaydesk serve --admin`
 * (a real Secret Service for the refresh token), the identity emulator and the Exchange Online
 * emulator: the wizard's Microsoft 365 path offers it first; Settings signs in with a device code (the
 * admin page's browser may be on another computer), then shows who is signed in, and mail goes out as
 * that user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sendFromDevice } from '../fixtures/device-send.ts';
import { startExchangeEmulator, type Emulator } from '../fixtures/exchange-emulator.ts';
import { freePort } from '../fixtures/free-port.ts';
import { startKeyringSession, type KeyringSession } from '../fixtures/keyring-session.ts';
import { ensureRendererBuilt } from '../fixtures/renderer-build.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const artifacts = join(repoRoot, 'test-artifacts');

let keyring: KeyringSession;
let endpoint: TokenEndpoint;
let emulator: Emulator;
let dataDir: string;
let env: NodeJS.ProcessEnv;
let serve: ChildProcess | null = null;
let serveOutput = '';
let browser: Browser;
const pageErrors: string[] = [];

function startServe(): Promise<string> {
  serveOutput = '';
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'bin/relaydesk.js'), 'serve', '--admin', '127.0.0.1:0', '--data-dir', dataDir],
    { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  serve = child;
  child.stdout?.on('data', (chunk: Buffer) => (serveOutput += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serve --admin printed no address:\n${serveOutput}`)),
      30_000,
    );
    child.stderr?.on('data', (chunk: Buffer) => {
      serveOutput += chunk.toString('utf8');
      const match = /Admin page: (http:\/\/\S+)/.exec(serveOutput);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve --admin exited with ${code}:\n${serveOutput}`));
    });
  });
}

async function stopServe(): Promise<void> {
  if (!serve || serve.exitCode !== null) return;
  const exited = new Promise((resolve) => serve!.once('exit', resolve));
  serve.kill('SIGTERM');
  await exited;
}

async function openPage(url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });

  await page.goto(url);
  return page;
}

beforeAll(async () => {
  ensureRendererBuilt();
  await mkdir(artifacts, { recursive: true });
  keyring = await startKeyringSession();
  endpoint = await startTokenEndpoint({
    users: [{ username: 'john@contoso.com', name: 'John Doe' }],
    deviceCodeInterval: 1,
  });
  emulator = await startExchangeEmulator({
    validateToken: (token) => endpoint.validate(token, 'https://outlook.office.com/SMTP.Send'),
  });
  dataDir = await mkdtemp(join(tmpdir(), 'relaydesk-e2e-signin-'));
  env = { ...keyring.env };
  for (const key of Object.keys(env)) if (key.startsWith('RELAYDESK_')) delete env[key];
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}, 60_000);

afterEach(() => {
  expect(pageErrors, 'errors in the page').toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  await stopServe();
  await emulator?.close();
  await endpoint?.close();
  await keyring?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('Sign in with Microsoft in the window (Chromium, serve --admin)', () => {
  it('the wizard offers it first on the Microsoft 365 path, with no password to type', async () => {
    const page = await openPage(await startServe());
    await page.getByRole('heading', { name: 'Set up RelayDesk' }).waitFor();
    await page.getByLabel('Microsoft 365', { exact: true }).check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: '2. Sign-in' }).waitFor();

    const choices = page.getByRole('group', { name: 'How RelayDesk signs in' }).getByRole('radio');
    expect(await choices.count()).toBe(3);
    await expect.poll(() => choices.first().getAttribute('id')).toBe('signin-microsoft');
    expect(await page.getByLabel('Sign in with Microsoft (recommended)').isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Sign in with Microsoft' }).waitFor();
    expect(await page.getByLabel('Password', { exact: true }).count()).toBe(0);
    await page.screenshot({ path: join(artifacts, 'wizard-2-sign-in-with-microsoft.png'), fullPage: true });

    // Going on without signing in says what is missing.
    await page.getByLabel('Application (client) ID', { exact: true }).fill(endpoint.clientId);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('Sign in with Microsoft first').waitFor();
    await page.close();
    await stopServe();
  }, 60_000);

  it('Settings signs in with a device code, shows who is signed in, and mail goes out as that user', async () => {
    const lanPort = await freePort();
    await writeFile(
      join(dataDir, 'config.json'),
      JSON.stringify({
        listen: { host: '127.0.0.1', port: lanPort },
        allowedClients: ['127.0.0.1'],
        upstream: {
          preset: 'microsoft365',
          host: '127.0.0.1',
          port: emulator.port,
          caFile: emulator.caFile,
          auth: 'oauth2',
          oauth2: {
            tenant: endpoint.tenant,
            clientId: endpoint.clientId,
            grant: 'delegated',
            authorityUrl: endpoint.authorityUrl,
          },
        },
        queue: { minRetrySeconds: 1, maxRetrySeconds: 2 },
      }),
    );
    const page = await openPage(await startServe());
    await page.getByRole('button', { name: 'Settings' }).click();
    const signIn = page.getByRole('region', { name: 'Sign in with Microsoft' });
    await signIn.getByText('Nobody is signed in yet').waitFor();
    await signIn.getByRole('button', { name: 'Sign in with Microsoft' }).click();

    // The admin page's browser may be elsewhere: a code to enter, never a page opened on the server.
    const code = signIn.locator('.user-code');
    await code.waitFor();
    await signIn.getByText('https://microsoft.com/devicelogin').first().waitFor();
    await page.screenshot({ path: join(artifacts, 'settings-sign-in-device-code.png'), fullPage: true });
    expect(endpoint.approveDeviceCode((await code.textContent())!.trim())).toBe('approved');
    await signIn.getByText(/Signed in as John Doe <john@contoso\.com>/).waitFor();
    await signIn.getByRole('button', { name: 'Sign in again' }).waitFor();
    await page.screenshot({ path: join(artifacts, 'settings-signed-in.png'), fullPage: true });

    const sent = await sendFromDevice({
      port: lanPort,
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      subject: 'Scan after signing in',
    });
    expect(sent.final).toMatch(/^250/);
    const [message] = await emulator.waitForMessages(1);
    expect(message!.authUser).toBe('john@contoso.com');
    await page.close();
  }, 90_000);
});
