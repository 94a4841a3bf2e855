/**
 * The envelope a device gives, as the upstream gets it: a recipient named twice is one recipient,
 * and addresses beyond ASCII (RFC 6531 SMTPUTF8) arrive as the device wrote them. The real
 * `relaydesk serve` in front of the Exchange Online emulator, which offers SMTPUTF8 as Microsoft 365 does.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTeardown, eventually, queueFiles, SmtpDevice, startRelayWithEmulator } from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: envelope\r\n\r\nHello.\r\n';

const setup = () => startRelayWithEmulator(teardown);

/** Writes each command as UTF-8 bytes (SmtpDevice writes strings as UTF-8) and returns the replies. */
async function converse(device: SmtpDevice, commands: string[]): Promise<string[]> {
  const replies: string[] = [];
  for (const command of commands) replies.push(await device.command(command));
  return replies;
}

/** DATA, the message, its 250; then the device hangs up. */
async function sendData(device: SmtpDevice): Promise<void> {
  expect(await device.command('DATA')).toMatch(/^354 /);
  device.write(`${MESSAGE}.\r\n`);
  expect(await device.read()).toMatch(/^250 2\.0\.0 Ok: queued as /);
  device.close();
}

describe('envelope recipients', () => {
  it('takes a recipient named twice with 250, as Postfix does, and delivers the message to it once', async () => {
    const { emulator, relay } = await setup();
    const device = await SmtpDevice.connect(relay.port);
    await device.read();
    expect(
      await converse(device, [
        'EHLO mailmerge',
        'MAIL FROM:<john@contoso.com>',
        'RCPT TO:<alice@contoso.com>',
        'RCPT TO:<bob@contoso.com>',
        'RCPT TO:<alice@contoso.com>',
        'RCPT TO:<ALICE@contoso.com>',
      ]),
    ).toEqual([
      expect.stringMatching(/^250-/),
      '250 2.1.0 Ok',
      '250 2.1.5 Ok',
      '250 2.1.5 Ok',
      '250 2.1.5 Ok',
      '250 2.1.5 Ok',
    ]);
    await sendData(device);

    const [received] = await emulator.waitForMessages(1);
    // Local parts may be case-sensitive (RFC 5321 §2.4): only the exact same address is a duplicate.
    expect(received!.rcptTo).toEqual(['alice@contoso.com', 'bob@contoso.com', 'ALICE@contoso.com']);
    await eventually(async () => (await queueFiles(relay.dataDir)).length === 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(emulator.messages).toHaveLength(1);
    expect(relay.logs.filter((r) => r.event === 'delivered')).toHaveLength(1);
  });
});

describe('addresses beyond ASCII (SMTPUTF8)', () => {
  it.each([
    { name: 'declared with SMTPUTF8', mail: 'MAIL FROM:<john@contoso.com> SMTPUTF8' },
    { name: 'not declared (devices that send UTF-8 anyway)', mail: 'MAIL FROM:<john@contoso.com>' },
  ])('advertises SMTPUTF8 and relays josé@ as josé@, $name', async ({ mail }) => {
    const { emulator, relay } = await setup();
    const device = await SmtpDevice.connect(relay.port);
    await device.read();
    const ehlo = await device.command('EHLO scanner');
    expect(ehlo.split('\r\n')).toContain('250-SMTPUTF8');
    expect(await converse(device, [mail, 'RCPT TO:<josé@contoso.com>', 'RCPT TO:<зоя@пример.рф>'])).toEqual([
      '250 2.1.0 Ok',
      '250 2.1.5 Ok',
      '250 2.1.5 Ok',
    ]);
    await sendData(device);

    const [received] = await emulator.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['josé@contoso.com', 'зоя@пример.рф']);
    const delivered = await relay.waitForLog((r) => r.event === 'delivered');
    expect(delivered.rcptTo).toEqual(['josé@contoso.com', 'зоя@пример.рф']);
  });

  it('refuses an address that is not valid UTF-8 with 501 5.1.3 rather than guess its characters', async () => {
    const { relay } = await setup();
    const device = await SmtpDevice.connect(relay.port);
    await device.read();
    await device.command('EHLO scanner');
    expect(await device.command('MAIL FROM:<john@contoso.com>')).toBe('250 2.1.0 Ok');
    // "josé" in ISO-8859-1: the é is a lone 0xE9 byte.
    device.write(
      Buffer.concat([Buffer.from('RCPT TO:<jos'), Buffer.from([0xe9]), Buffer.from('@contoso.com>\r\n')]),
    );
    expect(await device.read()).toMatch(/^501 5\.1\.3 /);
    device.close();
  });
});
