/**
 * Microsoft Graph as the upstream, end to end through `relaydesk serve`: the loopback Graph emulator
 * and token endpoint stand in for graph.microsoft.com and login.microsoftonline.com.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startGraphEmulator, type GraphEmulator } from '../fixtures/graph-emulator.ts';
import { startTokenEndpoint } from '../fixtures/token-endpoint.ts';
import {
  createTeardown,
  eventually,
  freePort,
  graphTestConfig,
  runCli,
  sendMail,
  startRelay,
  writeConfigFile,
} from './harness.ts';

let graph: GraphEmulator | null = null;
const teardown = createTeardown();
afterEach(async () => {
  await teardown.run();
  graph = null;
});

async function setup(options: { sendAs?: 'mailbox' | 'from'; allowedMailboxes?: string[] } = {}) {
  const tokens = teardown.closing(await startTokenEndpoint({ tenant: 'contoso.onmicrosoft.com' }));
  graph = await startGraphEmulator({
    tokens,
    mailboxes: [
      { address: 'john@contoso.com', sendAs: ['scanner@contoso.com'] },
      'alice@contoso.com',
      'bob@contoso.com',
    ],
    allowedMailboxes: options.allowedMailboxes ?? null,
  });
  teardown.closing(graph);
  const port = await freePort();
  const config = graphTestConfig(port, tokens, graph.url, {
    upstream: { sendAs: options.sendAs ?? 'mailbox' },
    queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 },
  });
  return { config, port, env: { RELAYDESK_CLIENT_SECRET: tokens.clientSecret } };
}

async function serve(config: object, env: NodeJS.ProcessEnv) {
  const relay = await startRelay({ config: config as Record<string, unknown>, env });
  return teardown.relay(relay);
}

function message(from: string, to: string, subject: string, body = 'Scan attached.\r\n'): string {
  return `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\n\r\n${body}`;
}

describe('Graph upstream', () => {
  it('delivers to a Bcc recipient without showing it to the others', async () => {
    const { config, port, env } = await setup();
    const relay = await serve(config, env);
    const sent = await sendMail(port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com', 'secret-bcc@contoso.com'],
      data: message('john@contoso.com', 'alice@contoso.com', 'with bcc'),
    });
    expect(sent.final).toMatch(/^250 /);
    const delivered = await relay.waitForLog((r) => r.event === 'delivered');
    expect(String(delivered.reply)).toContain('accepted by Microsoft Graph (202)');
    const [message0] = graph!.delivered;
    expect(message0!.mailbox).toBe('john@contoso.com');
    expect(message0!.to).toEqual(['alice@contoso.com']);
    expect(message0!.bcc).toEqual(['secret-bcc@contoso.com']);
    expect(message0!.visibleMime.toString()).not.toContain('secret-bcc');
  });

  it('delivers a 20 MB attachment intact', async () => {
    const { config, port, env } = await setup();
    const relay = await serve(config, env);
    const pdf = randomBytes(20 * 1024 * 1024);
    const base64 = pdf.toString('base64').replace(/.{76}/g, '$&\r\n');
    const mime = [
      'From: john@contoso.com',
      'To: alice@contoso.com',
      'Subject: big scan',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'Your scan.',
      '--b1',
      'Content-Type: application/pdf; name="scan.pdf"',
      'Content-Disposition: attachment; filename="scan.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      base64,
      '--b1--',
      '',
    ].join('\r\n');
    const sent = await sendMail(port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: mime });
    expect(sent.final).toMatch(/^250 /);
    await relay.waitForLog((r) => r.event === 'delivered', 60_000);
    const [delivered] = graph!.delivered;
    const attachment = delivered!.attachments.find((a) => a.name === 'scan.pdf');
    expect(attachment?.content.equals(pdf)).toBe(true);
  });

  it('sendAs "from" sends each message through the sender\'s own mailbox, falling back to the configured one', async () => {
    const { config, port, env } = await setup({ sendAs: 'from' });
    const relay = await serve(config, env);
    await sendMail(port, {
      from: 'alice@contoso.com',
      to: ['x@fabrikam.com'],
      data: message('alice@contoso.com', 'x@fabrikam.com', 'from alice'),
    });
    await sendMail(port, {
      from: 'bob@contoso.com',
      to: ['x@fabrikam.com'],
      data: message('bob@contoso.com', 'x@fabrikam.com', 'from bob'),
    });
    await sendMail(port, {
      from: 'scanner@contoso.com',
      to: ['x@fabrikam.com'],
      data: message('scanner@contoso.com', 'x@fabrikam.com', 'from a device'),
    });
    await eventually(
      () => relay.logs.filter((r) => r.event === 'delivered' || r.event === 'failed').length === 3,
      20_000,
    );
    const bySubject = Object.fromEntries(graph!.delivered.map((m) => [m.subject, m.mailbox]));
    expect(bySubject['from alice']).toBe('alice@contoso.com');
    expect(bySubject['from bob']).toBe('bob@contoso.com');
    // No mailbox for the device's address: the configured mailbox sends it (it has Send As on it).
    expect(bySubject['from a device']).toBe('john@contoso.com');
  });

  it('defers on 429 with Retry-After and delivers once the throttling is over', async () => {
    const { config, port, env } = await setup();
    const relay = await serve(config, env);
    graph!.failNext({
      status: 429,
      code: 'ApplicationThrottled',
      message: 'Application is over its MailboxConcurrency limit.',
      retryAfterSeconds: 2,
    });
    await sendMail(port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      data: message('john@contoso.com', 'alice@contoso.com', 'throttled'),
    });
    const deferred = await relay.waitForLog((r) => r.event === 'deferred');
    expect(String(deferred.reply)).toContain('429');
    const retryIn = Date.parse(String(deferred.retryAt)) - Date.parse(String(deferred.time));
    expect(retryIn).toBeGreaterThanOrEqual(1500);
    expect(retryIn).toBeLessThan(10_000);
    await relay.waitForLog((r) => r.event === 'delivered', 20_000);
    expect(graph!.delivered).toHaveLength(1);
  });

  it("holds the queue for a mailbox outside the app's scope, and status explains it", async () => {
    const { config, port, env } = await setup({ allowedMailboxes: ['alice@contoso.com'] });
    const relay = await serve(config, env);
    await sendMail(port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      data: message('john@contoso.com', 'alice@contoso.com', 'forbidden'),
    });
    const held = await relay.waitForLog((r) => r.event === 'held');
    expect(String(held.reason)).toMatch(/403/);
    const status = await relay.cli(['status']);
    expect(status.stdout).toContain('HELD');
    expect(status.stdout).toMatch(
      /how to fix:.*(RBAC|New-ManagementRoleAssignment|Application Access Policy|scope)/i,
    );

    graph!.setAllowedMailboxes(null);
    await relay.cli(['queue', 'flush']);
    await relay.waitForLog((r) => r.event === 'delivered', 20_000);
  });

  it('check probes the token and the mailbox without sending; send-test sends through Graph', async () => {
    const { config, env } = await setup();
    const { file } = await writeConfigFile(teardown, config);
    const check = await runCli(['check', '--config', file], env);
    expect(check.stdout).toMatch(/ok +token/);
    expect(check.stdout).toMatch(/ok +mailbox send/);
    expect(check.code).toBe(0);
    expect(graph!.delivered).toHaveLength(0);

    const test = await runCli(['send-test', '--to', 'alice@contoso.com', '--config', file], env);
    expect(test.code).toBe(0);
    expect(test.stdout).toContain('accepted by Microsoft Graph (202)');
    expect(graph!.delivered[0]?.subject).toMatch(/^RelayDesk test message from /);
  });
});
