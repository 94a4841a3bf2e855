/**
 * The setup wizard in Chromium against `relaydesk serve --admin` in setup mode (no config) and the
 * Exchange Online emulator (issue 15, items 7 and 8): Microsoft 365 first, Enter goes on, a progress
 * list rather than buttons, no way around the connection test before one failed, the focus kept after
 * Test connection, a short live sentence, device lines named, the sender question, and Finish.
 * axe-core checks every step; screenshots at 1280 x 800, 800 wide and 150%.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectAccessible, horizontalOverflow, useWindowHarness } from '../fixtures/window-harness.ts';

const MAILBOX = 'john@contoso.com';
const PASSWORD = 'correct horse battery staple';

const harness = useWindowHarness({ emulator: { mailbox: MAILBOX, password: PASSWORD } });
let page: Page;

const shoot = (name: string, on: Page = page) => expectAccessible(on, name);

function focused(on: Page = page): Promise<string> {
  return on.evaluate<string>(`(() => {
    const element = document.activeElement;
    return element?.id || element?.textContent?.trim() || element?.tagName || '';
  })()`);
}

const stepHeading = (name: string) => page.getByRole('heading', { name, level: 3 });

beforeAll(async () => {
  page = await harness().newPage('desktop');
  await page.goto(harness().adminUrl);
  await page.getByRole('heading', { name: 'Set up RelayDesk' }).waitFor();
});

describe('the setup wizard in Chromium (setup mode, Exchange emulator)', () => {
  it('starts at Microsoft 365, and shows the steps as a progress list, not as buttons', async () => {
    expect(await page.getByLabel('Microsoft 365', { exact: true }).isChecked()).toBe(true);
    expect(await page.getByLabel('Other mail server', { exact: true }).isChecked()).toBe(false);

    const progress = page.getByRole('list', { name: 'Progress' });
    const current = progress.locator('li[aria-current="step"]');
    expect(await current.textContent()).toContain('Provider');
    expect(await progress.getByRole('button').count()).toBe(0);
    expect(await progress.getByRole('link').count()).toBe(0);
    // Nothing about an entry says "press me": no outline, no filled shape, no hand pointer.
    for (const item of await progress.locator('li').all()) {
      const style = await item.evaluate((li) => {
        const css = li.ownerDocument.defaultView!.getComputedStyle(li);
        return { border: css.borderTopStyle, background: css.backgroundColor, cursor: css.cursor };
      });
      expect(style).toEqual({ border: 'none', background: 'rgba(0, 0, 0, 0)', cursor: 'auto' });
    }
    await shoot('wizard-steps-provider');
  });

  it('goes on with Enter, and a refused step puts the focus in the field to fix', async () => {
    await page.getByLabel('Other mail server', { exact: true }).check();
    await page.getByLabel('Other mail server', { exact: true }).press('Enter');
    await stepHeading('2. Sign-in').waitFor();

    await page.getByLabel('Mail server', { exact: true }).fill('127.0.0.1');
    await page.getByLabel('Port', { exact: true }).fill('0');
    await page.getByLabel('User name', { exact: true }).fill(MAILBOX);
    await page.getByLabel('Password', { exact: true }).fill('wrong password');
    await page
      .getByLabel('Extra trusted certificate (optional)', { exact: true })
      .fill(harness().emulator.caFile);
    await page.getByLabel('Password', { exact: true }).press('Enter');
    await expect.poll(() => focused()).toBe('field-upstream-port');
    await stepHeading('2. Sign-in').waitFor();

    await page.getByLabel('Port', { exact: true }).fill(String(harness().emulator.port));
    await page.getByLabel('Port', { exact: true }).press('Enter');
    await stepHeading('3. Test connection').waitFor();
  });

  it('offers no way around the test before one failed, then only a secondary one; the focus stays put', async () => {
    const nav = page.locator('.wizard-nav');
    expect(await nav.getByRole('button').allTextContents()).toEqual(['Back']);
    await shoot('wizard-test-before');

    const test = page.getByRole('button', { name: 'Test connection' });
    await test.click();
    await page.getByText('The connection test failed').waitFor();
    // The button that was pressed still has the keyboard (it now reads "Test again").
    await expect.poll(() => focused()).toBe('Test again');
    // What a screen reader hears: one short sentence, not the whole explanation below it.
    const live = page.locator('.wizard [role="status"]');
    expect(await live.count()).toBe(1);
    const spoken = (await live.textContent())!.trim();
    expect(spoken).toMatch(/^Test failed/);
    expect(spoken.length).toBeLessThan(100);

    const around = nav.getByRole('button', { name: 'Continue without a working test' });
    expect(await around.getAttribute('class')).toContain('secondary');
    expect(await nav.getByRole('button', { name: 'Next' }).count()).toBe(0);
    await shoot('wizard-test-failed');

    await page.getByRole('button', { name: 'Back to sign-in to fix it' }).click();
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Password', { exact: true }).press('Enter');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByText('The connection works').waitFor();
    expect(await live.textContent()).toBe('Test passed: RelayDesk signed in.');
    expect(await nav.getByRole('button', { name: 'Next' }).getAttribute('class')).toBeNull();
    await shoot('wizard-test-passed');
    await nav.getByRole('button', { name: 'Next' }).click();
    await stepHeading('4. Devices').waitFor();
  });

  it('names the line of a wrong device entry, and asks which address the mail comes from', async () => {
    await page.getByLabel('Port the devices send to', { exact: true }).fill(String(harness().lanPort));
    await page.getByLabel(/^This computer only/).check();
    const clients = page.getByLabel('Allowed devices', { exact: true });
    await clients.fill('127.0.0.1\nscanner.lan');
    await clients.blur();
    await page.getByRole('button', { name: 'Next' }).click();
    const lineProblem = page.locator('#field-allowedClients-problems').getByText(/^Line 2: /);
    await lineProblem.waitFor();
    expect(await lineProblem.textContent()).not.toContain('CIDR');
    await expect.poll(() => focused()).toBe('field-allowedClients');
    await clients.fill('127.0.0.1');
    await clients.blur();
    await expect.poll(() => clients.getAttribute('aria-invalid')).toBe('false');

    const sender = page.getByRole('group', { name: 'Which address should the mail come from?' });
    await sender.getByLabel(`Always ${MAILBOX}`).check();
    expect(await sender.getByText('5.7.60 SendAsDenied').count()).toBe(1);
    await shoot('wizard-devices');
    await page.getByRole('button', { name: 'Next' }).click();
    await stepHeading('5. Finish').waitFor();
  });

  it('sums up before starting, starts in one click, and puts the focus on the news', async () => {
    const facts = page.locator('dl.finish-facts');
    expect(await facts.locator('dt').allTextContents()).toEqual([
      'Provider',
      'Mail server',
      'Signs in as',
      'Mail comes from',
      'Devices send to',
      'Allowed devices',
    ]);
    expect(await facts.textContent()).toContain(`Always ${MAILBOX}`);
    await shoot('wizard-finish');
    await page.getByRole('button', { name: 'Save and start relaying' }).click();
    await page.getByText('RelayDesk is relaying.').waitFor();
    await expect
      .poll(() => page.evaluate<boolean>("document.activeElement?.classList.contains('ok') === true"))
      .toBe(true);
    await shoot('wizard-finished');

    const config = await harness().readConfig();
    expect(config.sender.mode).toBe('rewrite');
    expect(config.allowedClients).toEqual(['127.0.0.1']);
  });

  it.each(['narrow', 'scaled150'] as const)(
    'reads in the %s view: no sideways scrolling, nothing axe-core objects to',
    async (view) => {
      const other = await harness().newPage(view);
      await other.goto(harness().adminUrl);
      await other.getByRole('button', { name: 'Setup wizard' }).click();
      await shoot(`wizard-${view}-provider`, other);
      await other.getByRole('button', { name: 'Next' }).click();
      await other.getByRole('heading', { name: '2. Sign-in' }).waitFor();
      await shoot(`wizard-${view}-sign-in`, other);
      expect(await horizontalOverflow(other)).toBeLessThanOrEqual(0);
      await other.close();
    },
  );
});
