/**
 * What a device's header block becomes upstream, end to end through `relaydesk serve` to the Exchange
 * Online emulator, which keeps the bytes exactly as they arrived: line ends as busybox sendmail
 * writes them, a bare CR inside a header, a Bcc header. (real-peers.test.ts sends the same through
 * real clients to a real Postfix, which would repair or hide some of this on its own.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startGraphEmulator } from '../fixtures/graph-emulator.ts';
import { startTokenEndpoint } from '../fixtures/token-endpoint.ts';
import {
  createTeardown,
  eventually,
  freePort,
  graphTestConfig,
  sendMail,
  startRelay,
  startRelayWithEmulator,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const relayToEmulator = (config: Record<string, unknown> = {}) =>
  startRelayWithEmulator(teardown, { config });

/** The header lines as the upstream got them (unfolded), our Received left out, and the body. */
function split(data: Buffer): { headers: string[]; body: string } {
  const text = data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const headers = text
    .slice(0, end)
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .filter((line) => !line.startsWith('Received:'));
  return { headers, body: text.slice(end + 4) };
}

// The emulator's mailbox is john@contoso.com, which Exchange lets send only as itself.
const HEADER = [
  'From: Help Desk <john@contoso.com>',
  'To: alice@contoso.com',
  'Subject: Scan 42',
  'Date: Thu, 3 Dec 2026 12:00:00 +0000',
  'Message-ID: <scan42@scanner.contoso.local>',
];

describe('what a device wrote in its header block, upstream', () => {
  it('keeps every header of a busybox sendmail message (`\\r\\r\\n` line ends) a header, and adds no blank lines', async () => {
    const { emulator, relay } = await relayToEmulator();
    // busybox dot-stuffs as it should; a lone dot must stay text once `\r\r\n` is cut to CRLF.
    const lines = [...HEADER, '', 'Page 1 of 2', '.', '', 'Page 2 of 2'];
    const sent = await sendMail(relay.port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      data: Buffer.from(lines.map((line) => `${line}\r\r\n`).join(''), 'latin1'),
      helo: 'busybox',
    });
    expect(sent.final).toMatch(/^250 /);
    const [received] = await emulator.waitForMessages(1);
    const { headers, body } = split(received!.data);
    expect(headers).toEqual(HEADER);
    expect(body).toBe('Page 1 of 2\r\n.\r\n\r\nPage 2 of 2');
  });

  it('never turns a bare CR inside a header into a From or Bcc line that sender rewriting did not see', async () => {
    const { emulator, relay } = await relayToEmulator({ sender: { mode: 'rewrite', byClient: {} } });
    const sent = await sendMail(relay.port, {
      from: 'scanner@contoso.com',
      to: ['alice@contoso.com'],
      data: [
        'From: Scanner <scanner@contoso.com>',
        'To: alice@contoso.com',
        'Subject: x\rFrom: ceo@contoso.com\rBcc: mallory@evil.test',
        '',
        'Pay the invoice.',
        '',
      ].join('\r\n'),
    });
    expect(sent.final).toMatch(/^250 /);
    const [received] = await emulator.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['alice@contoso.com']);
    const { headers } = split(received!.data);
    expect(headers.filter((line) => /^from:/i.test(line))).toEqual([
      'From: "Scanner (scanner@contoso.com)" <john@contoso.com>',
    ]);
    expect(headers.filter((line) => /^bcc:/i.test(line))).toEqual([]);
    expect(headers).toContain('Subject: x From: ceo@contoso.com Bcc: mallory@evil.test');
  });

  it("sends a device's Bcc recipients in the envelope only, not in a header everyone sees", async () => {
    const { emulator, relay } = await relayToEmulator();
    const sent = await sendMail(relay.port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com', 'audit@contoso.com'],
      data: [...HEADER, 'Bcc: audit@contoso.com', '', 'Scan attached.', ''].join('\r\n'),
    });
    expect(sent.final).toMatch(/^250 /);
    const [received] = await emulator.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['alice@contoso.com', 'audit@contoso.com']);
    const { headers, body } = split(received!.data);
    expect(headers).toEqual(HEADER);
    expect(received!.data.toString('latin1')).not.toContain('audit@');
    expect(body).toBe('Scan attached.');
  });
});

describe('over Microsoft Graph, which sends to the header', () => {
  it('sends to the envelope only: a bare CR cannot add a Bcc, a device Bcc reaches its recipient unseen', async () => {
    const tokens = teardown.closing(await startTokenEndpoint({ tenant: 'contoso.onmicrosoft.com' }));
    const graph = teardown.closing(
      await startGraphEmulator({
        tokens,
        mailboxes: ['john@contoso.com', 'alice@contoso.com', 'audit@contoso.com'],
      }),
    );
    const port = await freePort();
    teardown.relay(
      await startRelay({
        config: graphTestConfig(port, tokens, graph.url, { sender: { mode: 'rewrite', byClient: {} } }),
        env: { RELAYDESK_CLIENT_SECRET: tokens.clientSecret },
      }),
    );
    const sent = await sendMail(port, {
      from: 'scanner@contoso.com',
      to: ['alice@contoso.com', 'audit@contoso.com'],
      data: [
        'From: Scanner <scanner@contoso.com>',
        'To: alice@contoso.com',
        'Subject: x\rFrom: ceo@contoso.com\rBcc: mallory@evil.test',
        'Bcc: audit@contoso.com',
        '',
        'Pay the invoice.',
        '',
      ].join('\r\n'),
    });
    expect(sent.final).toMatch(/^250 /);
    await eventually(() => graph.delivered.length === 1);
    const [delivered] = graph.delivered;
    expect(delivered!.to).toEqual(['alice@contoso.com']);
    expect(delivered!.bcc).toEqual(['audit@contoso.com']);
    expect(delivered!.from).toContain('john@contoso.com');
    const visible = delivered!.visibleMime.toString('latin1');
    expect(visible).not.toMatch(/audit@|^From: ceo|^Bcc:/im);
    expect(visible).toContain('Subject: x From: ceo@contoso.com Bcc: mallory@evil.test');
  });
});
