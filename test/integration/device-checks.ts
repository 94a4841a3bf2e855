/**
 * Steps with their expectations that several integration files take the same way: a device caught
 * inside DATA while the relay stops.
 */
import { expect } from 'vitest';
import { SmtpDevice, type Relay } from './harness.ts';

/** A device that has begun a message (john@ to alice@) and not finished it: `firstPart` follows DATA. */
export async function deviceInData(port: number, firstPart: string): Promise<SmtpDevice> {
  const device = await SmtpDevice.connect(port);
  await device.read();
  await device.command('EHLO scanner');
  await device.command('MAIL FROM:<john@contoso.com>');
  await device.command('RCPT TO:<alice@contoso.com>');
  expect(await device.command('DATA')).toMatch(/^354 /);
  device.write(firstPart);
  return device;
}

/**
 * Stops `relay` with `signal` while `device` is inside DATA: a device connecting now gets 421 4.3.2,
 * `device` still finishes its message with `rest` and gets its 250, and the relay exits 0.
 */
export async function expectDrainsOn(
  signal: NodeJS.Signals,
  relay: Relay,
  device: SmtpDevice,
  rest: string,
): Promise<void> {
  relay.process.kill(signal);
  await relay.waitForLog((r) => r.event === 'stopping');
  const late = await SmtpDevice.connect(relay.port);
  expect(await late.read()).toMatch(/^421 4\.3\.2 /);
  late.close();

  device.write(rest);
  expect(await device.read()).toMatch(/^250 2\.0\.0 Ok: queued as /);
  device.close();
  expect(await relay.exited).toBe(0);
}
