/**
 * The real window in Debian's Chromium, against a real `relaydesk serve --admin` process (with a real
 * Secret Service for the password) and the Exchange Online emulator: the setup wizard, a failed
 * connection test explained and fixed, the test email, a refused device allowed from the window, and
 * a device user added in Settings that the device then signs in with.
 * Screenshots of each page at 100% and 150% go to test-artifacts/, and axe-core checks each of them.
 */
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  axeViolations,
  expectAccessible,
  horizontalOverflow,
  scanFromSecondFloor,
  useWindowHarness,
} from '../fixtures/window-harness.ts';

const MAILBOX = 'john@contoso.com';
const PASSWORD = 'correct horse battery staple';

const harness = useWindowHarness({ emulator: { mailbox: MAILBOX, password: PASSWORD } });
let page: Page;

/** A device signing in on the LAN port with AUTH PLAIN: the reply to AUTH. */
async function signIn(user: string, password: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port: harness().lanPort });
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

const shoot = (name: string, on: Page = page) => expectAccessible(on, name);

beforeAll(async () => {
  page = await harness().newPage('desktop');
});

describe('the RelayDesk window in Chromium (serve --admin, Exchange emulator)', () => {
  it('has an accessibility check that finds a real violation (so its silence means something)', async () => {
    const scratch = await harness().browser.newPage();
    await scratch.setContent('<html lang="en"><title>t</title><main><img src="data:,"></main></html>');
    const violations = await axeViolations(scratch);
    expect(violations.map((violation) => violation.id)).toContain('image-alt');
    await scratch.close();
  });

  it('refuses to show anything to a browser without the token', async () => {
    const bare = await harness().browser.newPage();
    await bare.goto(harness().adminUrl.split('#')[0]!);
    await bare.getByLabel('Access token', { exact: true }).waitFor();
    await bare.getByLabel('Access token', { exact: true }).fill('not-the-token');
    await bare.getByRole('button', { name: 'Open RelayDesk' }).click();
    await bare.getByText('That token was refused').waitFor();
    await bare.close();
  });

  it('runs the wizard: a wrong password is explained (535 5.7.3), fixed, and the test email arrives', async () => {
    await page.goto(harness().adminUrl);
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
    await page.getByLabel('Port', { exact: true }).fill(String(harness().emulator.port));
    await page.getByLabel('User name', { exact: true }).fill(MAILBOX);
    await page.getByLabel('Password', { exact: true }).fill('wrong password');
    await page
      .getByLabel('Extra trusted certificate (optional)', { exact: true })
      .fill(harness().emulator.caFile);
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

    await page.getByLabel('Port the devices send to', { exact: true }).fill(String(harness().lanPort));
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
    const [message] = await harness().emulator.waitForMessages(1);
    expect(message!.rcptTo).toEqual([MAILBOX]);
    await shoot('wizard-5-finished');
    expect(harness().output()).not.toContain(PASSWORD);
    expect(harness().output()).not.toContain('wrong password');

    await page.getByRole('button', { name: 'Go to the status page' }).click();
    const activity = page.locator('section', { has: page.getByRole('heading', { name: 'Recent activity' }) });
    await activity.getByRole('row', { name: /Test email delivered/ }).waitFor();
  });

  it('shows a refused device, allows it with one click, and its mail goes through', async () => {
    const refused = await scanFromSecondFloor(harness(), { from: MAILBOX, to: 'bob@fabrikam.com' });
    expect(refused.final).toMatch(/^550 5\.7\.1/);

    const allow = page.getByRole('button', { name: 'Allow 127.0.0.2' });
    await allow.waitFor();
    await shoot('status-device-refused');
    await allow.click();
    await page.getByText('127.0.0.2 may now send mail through RelayDesk.').waitFor();

    const accepted = await scanFromSecondFloor(harness(), { from: MAILBOX, to: 'bob@fabrikam.com' });
    expect(accepted.final).toMatch(/^250/);
    await harness().emulator.waitForMessages(2);
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
    await port.fill(String(harness().lanPort));
    await expect.poll(() => port.getAttribute('aria-invalid')).toBe('false');
  });

  it('adds a device user in Settings: the device signs in with it, the password is nowhere on disk', async () => {
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('#field-lanAuth-mode').selectOption('check');
    // Under the users (the page's summary of problems names it too).
    await page.locator('#field-lanAuth-users').getByText("mode 'check' needs at least one user").waitFor();

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
    const config = await harness().readConfig();
    expect(config.lanAuth).toMatchObject({
      mode: 'check',
      users: [{ user: 'ricoh', passwordHash: expect.stringMatching(/^scrypt\$/) }],
    });
    expect(await filesContaining(harness().dataDir, devicePassword)).toEqual([]);

    // Back as it was, for the tests that follow.
    await page.getByRole('button', { name: 'Remove ricoh' }).click();
    await page.locator('#field-lanAuth-mode').selectOption('ignore');
    await page.getByRole('button', { name: 'Save and apply' }).click();
    await page.getByText('Saved. RelayDesk is relaying with the new settings').waitFor();
  });

  it('reads at 150% scaling (screenshots)', async () => {
    const scaled = await harness().newPage('scaled150');
    await scaled.goto(harness().adminUrl);
    await scaled.getByRole('heading', { name: 'Recent activity' }).waitFor();
    await shoot('status-150', scaled);
    await scaled.getByRole('button', { name: 'Settings' }).click();
    await shoot('settings-150', scaled);
    await scaled.getByRole('button', { name: 'Setup wizard' }).click();
    await scaled.getByLabel('Microsoft 365', { exact: true }).check();
    await scaled.getByRole('button', { name: 'Next' }).click();
    await shoot('wizard-150', scaled);
    expect(await horizontalOverflow(scaled)).toBeLessThanOrEqual(0);
    await scaled.close();
  });
});
