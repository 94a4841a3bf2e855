/**
 * A problem of one message never holds the relay: a device that asks for SMTPUTF8 with ASCII
 * addresses, relayed to an upstream without SMTPUTF8, is delivered like any other (as Postfix does),
 * and a message whose addresses really need SMTPUTF8 fails alone while the other devices' mail flows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRawSmtpServer, type RawSmtpServer } from '../fixtures/raw-smtp-server.ts';
import { testCa } from '../fixtures/tls.ts';
import { createTeardown, eventually, freePort, SmtpDevice, startRelay, testConfig } from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

async function setup() {
  // The default EHLO of the scripted upstream: PIPELINING, SIZE, 8BITMIME... and no SMTPUTF8.
  const upstream = await startRawSmtpServer();
  teardown.add(() => upstream.close());
  const port = await freePort();
  const relay = await startRelay({
    config: testConfig(port, upstream.port, testCa.file, {
      upstream: { security: 'none', auth: 'none', user: undefined },
      queue: { minRetrySeconds: 1, maxRetrySeconds: 2 },
    }),
  });
  teardown.relay(relay);
  return { upstream, relay };
}

/** One transaction with MAIL FROM parameters, as some devices send it; returns the final reply. */
async function sendWith(port: number, mailFrom: string, to: string, subject: string): Promise<string> {
  const device = await SmtpDevice.connect(port);
  try {
    await device.read();
    await device.command('EHLO scanner.local');
    const mail = await device.command(`MAIL FROM:${mailFrom}`);
    if (!mail.startsWith('250')) return mail;
    const rcpt = await device.command(`RCPT TO:<${to}>`);
    if (!rcpt.startsWith('250')) return rcpt;
    await device.command('DATA');
    device.write(`From: scanner@contoso.com\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nbody\r\n.\r\n`);
    return await device.read();
  } finally {
    device.close();
  }
}

function subjects(upstream: RawSmtpServer): string[] {
  return upstream.sessions.flatMap((session) =>
    session.messages.map((message) => /Subject: (\S+)/.exec(message.raw?.toString() ?? '')?.[1] ?? '?'),
  );
}

describe('one message never holds the relay', () => {
  it('delivers MAIL FROM:<a@x.test> SMTPUTF8 to an upstream without SMTPUTF8, and the next device too', async () => {
    const { upstream, relay } = await setup();
    expect(await sendWith(relay.port, '<a@x.test> SMTPUTF8', 'anna@contoso.com', 'utf8-flag')).toMatch(
      /^250 /,
    );
    expect(await sendWith(relay.port, '<fax@contoso.com>', 'anna@contoso.com', 'other-device')).toMatch(
      /^250 /,
    );
    await eventually(async () => (subjects(upstream).length === 2 ? true : null));
    expect(subjects(upstream).sort()).toEqual(['other-device', 'utf8-flag']);
    // Sent upstream without the parameter the upstream does not know.
    const mails = upstream.sessions.flatMap((session) =>
      session.commands.filter((c) => c.startsWith('MAIL')),
    );
    expect(
      mails.some((line) => /^MAIL FROM:<a@x\.test>( SIZE=\d+)?$/.test(line)),
      mails.join('\n'),
    ).toBe(true);
    const status = JSON.parse((await relay.cli(['status', '--json'])).stdout);
    expect(status.queue.held).toBe(0);
  });
});
