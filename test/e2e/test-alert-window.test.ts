/**
 * "Send a test alert" in the real window (Chromium, `serve --admin`): the Settings page's Alerts
 * section sends one test alert on each configured channel and shows each answer; the mail arrives
 * at the Exchange emulator and the webhook at its receiver.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeEmulator, type Emulator } from '../fixtures/exchange-emulator.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../fixtures/webhook-receiver.ts';
import { expectAccessible, relayConfig, useWindowHarness } from '../fixtures/window-harness.ts';

const PASSWORD = 'correct horse battery staple';
const ADMIN = 'admin@contoso.com';

let upstream: Emulator;
let hook: WebhookReceiver;
let page: Page;

// The upstream and the webhook's receiver start before the harness and stop after it (their hooks
// come first): the config names them.
beforeAll(async () => {
  upstream = await startExchangeEmulator({ mailbox: 'john@contoso.com', password: PASSWORD });
  hook = await startWebhookReceiver();
});

afterAll(async () => {
  await hook?.close();
  await upstream?.close();
});

const harness = useWindowHarness({
  config: ({ lanPort }) =>
    relayConfig(
      { emulator: upstream, lanPort },
      { security: 'starttls', auth: 'password', user: 'john@contoso.com' },
      { alerts: { email: ADMIN, webhookUrl: hook.url, webhookFormat: 'json' } },
    ),
  env: { RELAYDESK_UPSTREAM_PASSWORD: PASSWORD },
});

beforeAll(async () => {
  page = await harness().newPage('desktop');
  await page.goto(harness().adminUrl);
});

describe('Send a test alert, in the window', () => {
  it('reaches the admin by mail and the webhook, and says so for each', async () => {
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Send a test alert' }).click();
    await page.getByText(`Test alert mailed to ${ADMIN}.`).waitFor();
    await page.getByText(/Test alert sent to http:\/\/127\.0\.0\.1:\d+\./).waitFor();
    await expectAccessible(page, 'settings-test-alert');

    const [mail] = upstream.messages.filter((m) => m.rcptTo.includes(ADMIN));
    expect(mail!.data.toString()).toMatch(/^Subject: RelayDesk on .*: Test alert$/m);
    expect(hook.received.map((r) => (r.body as { kind: string }).kind)).toEqual(['test']);
  });
});
