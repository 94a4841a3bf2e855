/**
 * "Sign in with Microsoft" in the real window in Debian's Chromium, against `relaydesk serve --admin`
 * (a real Secret Service for the refresh token), the identity emulator and the Exchange Online
 * emulator: the wizard's Microsoft 365 path offers it first; Settings signs in with a device code (the
 * admin page's browser may be on another computer), then shows who is signed in, and mail goes out as
 * that user.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFromDevice } from '../fixtures/device-send.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';
import { expectAccessible, relayConfig, useWindowHarness } from '../fixtures/window-harness.ts';
import { entraApp } from '../fixtures/entra-app.ts';

let endpoint: TokenEndpoint;

// The identity emulator starts before the harness and stops after it (its hooks come first).
beforeAll(async () => {
  endpoint = await startTokenEndpoint({
    users: [{ username: 'john@contoso.com', name: 'John Doe' }],
    deviceCodeInterval: 1,
  });
});

afterAll(async () => {
  await endpoint?.close();
});

// No config yet: the relay starts in setup mode, as on a first run.
const harness = useWindowHarness({
  emulator: { validateToken: (token) => endpoint.validate(token, 'https://outlook.office.com/SMTP.Send') },
});

async function openPage(): Promise<Page> {
  const page = await harness().newPage('desktop');
  page.setDefaultTimeout(20_000);
  await page.goto(harness().adminUrl);
  return page;
}

describe('Sign in with Microsoft in the window (Chromium, serve --admin)', () => {
  it('the wizard offers it first on the Microsoft 365 path, with no password to type', async () => {
    const page = await openPage();
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
    await expectAccessible(page, 'wizard-2-sign-in-with-microsoft');

    // Going on without signing in says what is missing.
    await page.getByLabel('Application (client) ID', { exact: true }).fill(endpoint.clientId);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('Sign in with Microsoft first').waitFor();
    await page.close();
  }, 60_000);

  it('Settings signs in with a device code, shows who is signed in, and mail goes out as that user', async () => {
    await harness().writeConfig(
      relayConfig(
        harness(),
        {
          preset: 'microsoft365',
          auth: 'oauth2',
          oauth2: entraApp(endpoint, 'delegated'),
        },
        { queue: { minRetrySeconds: 1, maxRetrySeconds: 2 } },
      ),
    );
    await harness().restartServe();
    const page = await openPage();
    await page.getByRole('button', { name: 'Settings' }).click();
    const signIn = page.getByRole('region', { name: 'Sign in with Microsoft' });
    await signIn.getByText('Nobody is signed in yet').waitFor();
    await signIn.getByRole('button', { name: 'Sign in with Microsoft' }).click();

    // The admin page's browser may be elsewhere: a code to enter, never a page opened on the server.
    const code = signIn.locator('.user-code');
    await code.waitFor();
    await signIn.getByText('https://microsoft.com/devicelogin').first().waitFor();
    await expectAccessible(page, 'settings-sign-in-device-code');
    expect(endpoint.approveDeviceCode((await code.textContent())!.trim())).toBe('approved');
    await signIn.getByText(/Signed in as John Doe <john@contoso\.com>/).waitFor();
    await signIn.getByRole('button', { name: 'Sign in again' }).waitFor();
    await expectAccessible(page, 'settings-signed-in');

    const sent = await sendFromDevice({
      port: harness().lanPort,
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      subject: 'Scan after signing in',
    });
    expect(sent.final).toMatch(/^250/);
    const [message] = await harness().emulator.waitForMessages(1);
    expect(message!.authUser).toBe('john@contoso.com');
    await page.close();
  }, 90_000);
});
