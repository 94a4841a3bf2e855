/**
 * The real window in Debian's Chromium, against a real `relaydesk serve --admin` process (with a real
 * Secret Service for the password) and the Exchange Online emulator: the setup wizard, a failed
 * connection test explained and fixed, the test email, a refused device allowed from the window, and
 * a device user added in Settings that the device then signs in with.
 * Screenshots of each page at 100% and 150% go to test-artifacts/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
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

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const artifacts = join(repoRoot, 'test-artifacts');
const MAILBOX = 'john@contoso.com';
const PASSWORD = 'correct horse battery staple';

let keyring: KeyringSession;
let emulator: Emulator;
let dataDir: string;
let serve: ChildProcess;
let serveOutput = '';
let adminUrl: string;
let browser: Browser;
let page: Page;
let lanPort: number;
const pageErrors: string[] = [];

function startServe(env: NodeJS.ProcessEnv): Promise<string> {
  serve = spawn(
    process.execPath,
    [join(repoRoot, 'bin/relaydesk.js'), 'serve', '--admin', '127.0.0.1:0', '--data-dir', dataDir],
    { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  serve.stdout?.on('data', (chunk: Buffer) => (serveOutput += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serve --admin printed no address:\n${serveOutput}`)),
      30_000,
    );
    serve.stderr?.on('data', (chunk: Buffer) => {
      serveOutput += chunk.toString('utf8');
      const match = /Admin page: (http:\/\/\S+)/.exec(serveOutput);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    serve.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve --admin exited with ${code}:\n${serveOutput}`));
    });
  });
}

/** A device signing in on the LAN port with AUTH PLAIN: the reply to AUTH. */
async function signIn(user: string, password: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port: lanPort });
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const replyAfter = async (marker: RegExp) => {
    await expect.poll(() => marker.test(received), { timeout: 10_000 }).toBe(true);
  };
  try {
    await replyAfter(/^220 /m);
    socket.write('EHLO ricoh.lan\r\n');
    await replyAfter(/^250 /m);
    const start = received.length;
    socket.write(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}\r\n`);
    await expect.poll(() => /^\d{3} .*\r\n/m.test(received.slice(start)), { timeout: 10_000 }).toBe(true);
    return received.slice(start).trim();
  } finally {
    socket.destroy();
  }
}

/** Files under `dir` whose bytes contain `text`. */
async function filesContaining(dir: string, text: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if ((await readFile(path)).includes(text)) found.push(path);
  }
  return found;
}

async function shoot(name: string): Promise<void> {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  ensureRendererBuilt();
  await mkdir(artifacts, { recursive: true });
  keyring = await startKeyringSession();
  emulator = await startExchangeEmulator({ mailbox: MAILBOX, password: PASSWORD });
  dataDir = await mkdtemp(join(tmpdir(), 'relaydesk-e2e-'));
  lanPort = await freePort();
  const env = { ...keyring.env };
  for (const key of Object.keys(env)) if (key.startsWith('RELAYDESK_')) delete env[key];
  adminUrl = await startServe(env);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (error) => pageErrors.push(error.message));
  // CSP violations and failed requests surface as console errors, not page errors.
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
});

afterEach(() => {
  expect(pageErrors, 'errors in the page').toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  if (serve && serve.exitCode === null) {
    const exited = new Promise((resolve) => serve.once('exit', resolve));
    serve.kill('SIGTERM');
    await exited;
  }
  await emulator?.close();
  await keyring?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('the RelayDesk window in Chromium (serve --admin, Exchange emulator)', () => {
  it('refuses to show anything to a browser without the token', async () => {
    const bare = await browser.newPage();
    await bare.goto(adminUrl.split('#')[0]!);
    await bare.getByLabel('Access token', { exact: true }).waitFor();
    await bare.getByLabel('Access token', { exact: true }).fill('not-the-token');
    await bare.getByRole('button', { name: 'Open RelayDesk' }).click();
    await bare.getByText('That token was refused').waitFor();
    await bare.close();
  });

  it('runs the wizard: a wrong password is explained (535 5.7.3), fixed, and the test email arrives', async () => {
    await page.goto(adminUrl);
    await page.getByRole('heading', { name: 'Set up RelayDesk' }).waitFor();
    expect(page.url()).not.toContain('token=');
    await shoot('wizard-1-provider');

    await page.getByLabel('Other mail server', { exact: true }).check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: '2. Sign-in' }).waitFor();

    expect(await page.getByLabel('Encryption', { exact: true }).inputValue()).toBe('starttls');
    expect(await page.getByLabel('Sign-in', { exact: true }).locator('option').allTextContents()).toEqual([
      'User name and password',
      'No sign-in',
    ]);
    await page.getByLabel('Mail server', { exact: true }).fill('127.0.0.1');
    await page.getByLabel('Port', { exact: true }).fill(String(emulator.port));
    await page.getByLabel('User name', { exact: true }).fill(MAILBOX);
    await page.getByLabel('Password', { exact: true }).fill('wrong password');
    await page.getByLabel('Extra trusted certificate (optional)', { exact: true }).fill(emulator.caFile);
    await shoot('wizard-2-sign-in');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByText('The connection test failed').waitFor();
    await page
      .getByText(/535 5\.7\.3/)
      .first()
      .waitFor();
    await page.getByRole('heading', { name: 'Sign-in refused' }).waitFor();
    await page.getByRole('heading', { name: 'How to fix it' }).waitFor();
    await expect.poll(() => page.locator('.steps li.failed').textContent()).toContain('Sign in (AUTH)');
    await shoot('wizard-3-test-failed');

    await page.getByRole('button', { name: 'Back to sign-in to fix it' }).click();
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByText('The connection works').waitFor();
    expect(await page.locator('.steps li.failed').count()).toBe(0);
    await shoot('wizard-3-test-passed');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByLabel('Port the devices send to', { exact: true }).fill(String(lanPort));
    await page.getByLabel(/^This computer only/).check();
    await page.getByLabel('Allowed devices', { exact: true }).fill('127.0.0.1\n0.0.0.0/1');
    await page.getByLabel('Allowed devices', { exact: true }).blur();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('open relay');
    await page.getByLabel('Allowed devices', { exact: true }).fill('127.0.0.1');
    await page.getByLabel('Allowed devices', { exact: true }).blur();
    await shoot('wizard-4-devices');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('button', { name: 'Save and start relaying' }).click();
    await page.getByText('RelayDesk is relaying.').waitFor();
    await page.getByRole('button', { name: 'Send test email' }).click();
    await page.getByText(`Test email sent to ${MAILBOX}.`).waitFor();
    const [message] = await emulator.waitForMessages(1);
    expect(message!.rcptTo).toEqual([MAILBOX]);
    await shoot('wizard-5-finished');
    expect(serveOutput).not.toContain(PASSWORD);
    expect(serveOutput).not.toContain('wrong password');

    await page.getByRole('button', { name: 'Go to the status page' }).click();
    const activity = page.locator('section', { has: page.getByRole('heading', { name: 'Recent activity' }) });
    await activity.getByRole('row', { name: /Test email delivered/ }).waitFor();
  });

  it('shows a refused device, allows it with one click, and its mail goes through', async () => {
    const refused = await sendFromDevice({
      port: lanPort,
      localAddress: '127.0.0.2',
      from: MAILBOX,
      to: ['bob@fabrikam.com'],
      subject: 'Scan from the second floor',
    });
    expect(refused.final).toMatch(/^550 5\.7\.1/);

    const allow = page.getByRole('button', { name: 'Allow 127.0.0.2' });
    await allow.waitFor();
    await shoot('status-device-refused');
    await allow.click();
    await page.getByText('127.0.0.2 may now send mail through RelayDesk.').waitFor();

    const accepted = await sendFromDevice({
      port: lanPort,
      localAddress: '127.0.0.2',
      from: MAILBOX,
      to: ['bob@fabrikam.com'],
      subject: 'Scan from the second floor',
    });
    expect(accepted.final).toMatch(/^250/);
    await emulator.waitForMessages(2);
    const activity = page.locator('section', { has: page.getByRole('heading', { name: 'Recent activity' }) });
    const row = activity.getByRole('row', { name: /Scan from the second floor/ });
    await expect.poll(() => row.textContent()).toContain('Delivered');
    await expect.poll(() => row.textContent()).toContain('127.0.0.2');
    await expect.poll(() => row.textContent()).toContain('250');
    await expect.poll(() => page.locator('.health').textContent()).toContain('Running');
    await shoot('status-100');
  });

  it('validates settings as they are typed, with the problem under the field', async () => {
    await page.getByRole('button', { name: 'Settings' }).click();
    const port = page.locator('#field-listen-port');
    await port.fill('99999');
    await page.getByText('must be an integer from 1 to 65535').first().waitFor();
    await expect.poll(() => port.getAttribute('aria-invalid')).toBe('true');
    await shoot('settings-100');
    await port.fill(String(lanPort));
    await expect.poll(() => port.getAttribute('aria-invalid')).toBe('false');
  });

  it('adds a device user in Settings: the device signs in with it, the password is nowhere on disk', async () => {
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('#field-lanAuth-mode').selectOption('check');
    await page.getByText("mode 'check' needs at least one user").waitFor();

    // A name a device cannot send: the problem names the user, and it comes out again.
    await page.locator('#lan-user-name').fill('front desk');
    await page.locator('#lan-user-password').fill('whatever');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByText('front desk: may hold only printable ASCII characters, without spaces').waitFor();
    await page.getByRole('button', { name: 'Remove front desk' }).click();

    // Enter in the password box adds the user; it does not save the settings.
    const devicePassword = 'Sc4n-2nd-floor!';
    await page.locator('#lan-user-name').fill('ricoh');
    await page.locator('#lan-user-password').fill(devicePassword);
    await page.locator('#lan-user-password').press('Enter');
    await page.getByRole('button', { name: 'Remove ricoh' }).waitFor();
    expect(await page.getByText('Saved. RelayDesk is relaying').count()).toBe(0);
    await expect.poll(() => page.locator('#lan-user-password').inputValue()).toBe('');
    await expect.poll(() => page.getByText("mode 'check' needs at least one user").count()).toBe(0);
    await shoot('settings-lan-users');
    await page.getByRole('button', { name: 'Save and apply' }).click();
    await page.getByText('Saved. RelayDesk is relaying with the new settings').waitFor();

    expect(await signIn('ricoh', devicePassword)).toMatch(/^235 /);
    expect(await signIn('ricoh', 'not-the-password')).toMatch(/^535 /);
    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'));
    expect(config.lanAuth).toMatchObject({
      mode: 'check',
      users: [{ user: 'ricoh', passwordHash: expect.stringMatching(/^scrypt\$/) }],
    });
    expect(await filesContaining(dataDir, devicePassword)).toEqual([]);

    // Back as it was, for the tests that follow.
    await page.getByRole('button', { name: 'Remove ricoh' }).click();
    await page.locator('#field-lanAuth-mode').selectOption('ignore');
    await page.getByRole('button', { name: 'Save and apply' }).click();
    await page.getByText('Saved. RelayDesk is relaying with the new settings').waitFor();
  });

  it('reads at 150% scaling (screenshots)', async () => {
    const scaled = await browser.newPage({ viewport: { width: 853, height: 600 }, deviceScaleFactor: 1.5 });
    await scaled.goto(adminUrl);
    await scaled.getByRole('heading', { name: 'Recent activity' }).waitFor();
    await scaled.screenshot({ path: join(artifacts, 'status-150.png'), fullPage: true });
    await scaled.getByRole('button', { name: 'Settings' }).click();
    await scaled.screenshot({ path: join(artifacts, 'settings-150.png'), fullPage: true });
    await scaled.getByRole('button', { name: 'Setup wizard' }).click();
    await scaled.getByLabel('Microsoft 365', { exact: true }).check();
    await scaled.getByRole('button', { name: 'Next' }).click();
    await scaled.screenshot({ path: join(artifacts, 'wizard-150.png'), fullPage: true });
    // A string, because the page's globals are not in this Node file's types.
    const overflow = Number(
      await scaled.evaluate('document.documentElement.scrollWidth - window.innerWidth'),
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await scaled.close();
  });
});
