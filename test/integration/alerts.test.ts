/**
 * Alerts end to end: the real `relaydesk serve`, the Exchange emulator refusing the password so the
 * queue is held, and a webhook receiver on 127.0.0.1 that must hear about it, once; and
 * `relaydesk alerts test` reaching the same receiver.
 */
import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { testCa } from '../fixtures/tls.ts';
import { startWebhookReceiver } from '../fixtures/webhook-receiver.ts';
import {
  createTeardown,
  eventually,
  runCli,
  sendMail,
  startRelayWithEmulator,
  testConfig,
  UPSTREAM_PASSWORD,
  writeConfigFile,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Scan\r\n\r\npage 1\r\n';

describe('alerts', () => {
  it('a held queue reaches the webhook once; `alerts test` reaches it too', async () => {
    const hook = teardown.closing(await startWebhookReceiver());
    const { emulator, relay } = await startRelayWithEmulator(teardown, {
      emulator: { password: 'a different password' },
      config: { alerts: { webhookUrl: hook.url, webhookFormat: 'json' } },
    });
    const sent = await sendMail(relay.port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      data: MESSAGE,
    });
    expect(sent.final).toMatch(/^250/);

    const alert = await eventually(() => hook.received[0], 60_000);
    expect(alert!.body).toMatchObject({ kind: 'held', host: expect.any(String) });
    const { title, text } = alert!.body as { title: string; text: string };
    expect(title).toMatch(/^Mail is held: /);
    expect(text).toContain('How to fix:');
    expect(JSON.stringify(alert!.body)).not.toContain('correct horse battery staple');
    expect(JSON.stringify(alert!.body)).not.toContain('page 1');

    // The relay keeps probing the upstream, still refused: the condition lasts, the alert is not repeated.
    const failuresAtAlert = emulator.stats.authFailures;
    await eventually(() => emulator.stats.authFailures >= failuresAtAlert + 2, 30_000);
    expect(hook.received.map((r) => (r.body as { kind: string }).kind)).toEqual(['held']);

    const test = await relay.cli(['alerts', 'test', '--config', relay.configPath]);
    expect(test.stderr).toBe('');
    expect(test.stdout).toMatch(/Test alert sent to http:\/\/127\.0\.0\.1:\d+ \(json\): HTTP 200/);
    expect(test.code).toBe(0);
    expect(hook.received.at(-1)!.body).toMatchObject({ kind: 'test' });
  });

  it('a message refused for good: the admin gets an alert mail and the sender a notice, through the upstream', async () => {
    const { emulator, relay } = await startRelayWithEmulator(teardown, {
      config: { alerts: { email: 'admin@contoso.com' } },
    });
    emulator.script(
      'rcpt',
      '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup',
      {
        match: (address) => address === 'nobody@contoso.com',
      },
    );
    const scan =
      'From: john@contoso.com\r\nTo: nobody@contoso.com\r\nSubject: Scan 7\r\nMessage-ID: <scan-7@mfp>\r\n\r\npage 1\r\n';
    const sent = await sendMail(relay.port, {
      from: 'john@contoso.com',
      to: ['nobody@contoso.com'],
      data: scan,
    });
    expect(sent.final).toMatch(/^250/);

    const mails = await emulator.waitForMessages(2, 60_000);
    const toAdmin = mails.find((m) => m.rcptTo.includes('admin@contoso.com'));
    const toSender = mails.find((m) => m.rcptTo.includes('john@contoso.com'));
    expect(toAdmin!.data.toString()).toMatch(/^Subject: RelayDesk on .*: A message failed for good: /m);
    expect(toSender!.data.toString()).toMatch(/^Subject: Undeliverable: Scan 7$/m);
    expect(toSender!.data.toString()).toMatch(
      /^Content-Type: multipart\/report; report-type=delivery-status;/m,
    );
    expect(toSender!.data.toString()).toContain('Message-ID: <scan-7@mfp>');
    await relay.waitForLog((r) => r.event === 'notice-sent');

    const test = await relay.cli(['alerts', 'test', '--config', relay.configPath], {
      RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
    });
    expect(test.stderr).toBe('');
    expect(test.stdout).toMatch(/^Test alert mailed to admin@contoso\.com: 250 /m);
    expect(test.code).toBe(0);
    const [testMail] = await emulator.waitForMessages(3, 30_000).then((all) => all.slice(2));
    expect(testMail!.data.toString()).toMatch(/^Subject: RelayDesk on .*: Test alert$/m);
  });

  it('`alerts test` fails clearly without a webhook, and when the webhook refuses', async () => {
    const { dir, file: configPath } = await writeConfigFile(teardown, testConfig(2525, 587, testCa.file));
    const none = await runCli(['alerts', 'test', '--config', configPath, '--data-dir', dir]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain(
      'No alert channel is configured: set "alerts.webhookUrl" or "alerts.email"',
    );

    const hook = teardown.closing(await startWebhookReceiver());
    hook.answerWith(404);
    await writeFile(
      configPath,
      JSON.stringify(
        testConfig(2525, 587, testCa.file, { alerts: { webhookUrl: hook.url, webhookFormat: 'slack' } }),
      ),
    );
    const refused = await runCli(['alerts', 'test', '--config', configPath, '--data-dir', dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/The test alert to http:\/\/127\.0\.0\.1:\d+ \(slack\) failed: HTTP 404/);
    expect(refused.stderr).not.toContain('abc123');
    expect(hook.received[0]!.body).toMatchObject({ text: expect.stringContaining('Test alert') });
  });
});
