/**
 * A refused password as an office admin meets it in the real window (Debian's Chromium, `relaydesk
 * serve --admin` with a real Secret Service, the Exchange Online emulator): the held queue's
 * diagnosis speaks of the password only, says it came from the keychain, shows what the server said,
 * never tells anyone to run a command, and its buttons test the connection again in place and take
 * the admin to the password in Settings (issue 15, "Advice speaks command line").
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sendFromDevice } from '../fixtures/device-send.ts';
import { runCommand } from '../fixtures/keyring-session.ts';
import { expectAccessible, relayConfig, useWindowHarness } from '../fixtures/window-harness.ts';

const MAILBOX = 'john@contoso.com';
const PASSWORD = 'correct horse battery staple';
const BIN = join(import.meta.dirname, '../../bin/relaydesk.js');

const harness = useWindowHarness({ emulator: { mailbox: MAILBOX, password: PASSWORD } });

beforeAll(async () => {
  const started = harness();
  // The upstream is the emulator, whose port the harness chose: configure, then start the relay again.
  await started.writeConfig(
    relayConfig(
      started,
      { security: 'starttls', auth: 'password', user: MAILBOX },
      { queue: { minRetrySeconds: 1, maxRetrySeconds: 2 } },
    ),
  );
  const args = [BIN, 'password', 'set', '--data-dir', started.dataDir];
  const stored = await runCommand(process.execPath, args, {
    env: started.serveEnv,
    input: 'the old password\n',
  });
  expect(stored.code, stored.stderr).toBe(0);
  await started.restartServe();
}, 90_000);

describe('a refused password in the window (Chromium, serve --admin)', () => {
  it('explains it without the command line, and its buttons test again and lead to the password in Settings', async () => {
    const sent = await sendFromDevice({
      port: harness().lanPort,
      from: MAILBOX,
      to: ['alice@contoso.com'],
      subject: 'Scan while the password is wrong',
    });
    expect(sent.final).toMatch(/^250/);

    const page = await harness().newPage('desktop');
    await page.goto(harness().adminUrl);
    const box = page.getByRole('group', { name: 'Sign-in refused' });
    await box.getByRole('heading', { name: 'Sign-in refused' }).waitFor({ timeout: 30_000 });
    const shown = (await box.textContent())!;
    expect(shown).toContain(`Microsoft 365 did not accept the password of ${MAILBOX}`);
    expect(shown).toContain("The password RelayDesk used is the one stored in this computer's keychain.");
    expect(shown).toMatch(/The server said: (auth: )?535 5\.7\.3 Authentication unsuccessful/);
    expect(shown).not.toMatch(/npx|relaydesk (password|check)|OAuth|PowerShell|service principal/);
    expect(shown).not.toMatch(/<[a-z][^>]*>|\{[^}]*\}/i);
    await expectAccessible(page, 'status-refused-password');

    await box.getByRole('button', { name: 'Test the connection again' }).click();
    await box.getByText('The connection test still fails: Sign-in refused').waitFor();

    await box.getByRole('button', { name: 'Enter the password again' }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    const password = page.getByLabel('Password', { exact: true });
    await password.waitFor();
    await expectAccessible(page, 'settings-from-refused-password');
    await page.close();
  }, 90_000);
});
