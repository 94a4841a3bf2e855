import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { UpstreamConfig } from '../../electron/config/types.ts';
import { diagnose } from '../../electron/relay/diagnosis.ts';
import { UPLOAD_CHUNK_BYTES } from '../../electron/relay/graph/client.ts';
import { createGraphTransport, probeGraphMailbox } from '../../electron/relay/graph/index.ts';
import { createTokenProvider, GRAPH_SCOPE, SMTP_SCOPE } from '../../electron/relay/oauth-token.ts';
import type { SpooledMessage } from '../../electron/relay/spool.ts';
import type { AttemptOutcome, OutboundJob, Transport } from '../../electron/relay/transport.ts';
import type { UpstreamFailure } from '../../electron/relay/upstream-failure.ts';
import {
  startGraphEmulator,
  type GraphEmulator,
  type GraphEmulatorOptions,
} from '../fixtures/graph-emulator.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';
import { entraApp } from '../fixtures/entra-app.ts';

interface Setup {
  tokens: TokenEndpoint;
  graph: GraphEmulator;
  upstream: UpstreamConfig;
  transport: Transport;
}

async function setup(
  emulator: Partial<Omit<GraphEmulatorOptions, 'tokens'>> = {},
  upstreamOverrides: Partial<UpstreamConfig> = {},
  clientSecret?: string,
): Promise<Setup> {
  const tokens = await startTokenEndpoint();
  onTestFinished(() => tokens.close());
  const graph = await startGraphEmulator({
    tokens,
    mailboxes: ['john@contoso.com', 'jane@contoso.com'],
    ...emulator,
  });
  onTestFinished(() => graph.close());
  const upstream: UpstreamConfig = {
    ...defaultConfig().upstream,
    type: 'graph',
    auth: 'oauth2',
    oauth2: { ...entraApp(tokens, 'client_credentials'), tokenUrl: tokens.url() },
    mailbox: 'john@contoso.com',
    graphUrl: graph.url,
    timeoutSeconds: 20,
    ...upstreamOverrides,
  };
  const provider = createTokenProvider({
    tokenUrl: tokens.url(),
    clientId: tokens.clientId,
    scope: GRAPH_SCOPE,
    getClientSecret: async () => clientSecret ?? tokens.clientSecret,
  });
  const transport = createGraphTransport({ upstream, tokens: provider });
  onTestFinished(() => transport.close());
  return { tokens, graph, upstream, transport };
}

function job(message: Buffer, rcptTo: string[], headerFrom: string | null = null): OutboundJob {
  return {
    // The transport reads only open(); the spooled record is the queue's business.
    message: {} as SpooledMessage,
    mailFrom: headerFrom ?? 'john@contoso.com',
    rcptTo,
    headerFrom,
    size: message.length,
    eightBit: false,
    smtpUtf8: false,
    open: () => Readable.from([message]),
  };
}

function mail(headers: string[], body = 'Scanned document attached.'): Buffer {
  return Buffer.from([...headers, '', body, ''].join('\r\n'), 'latin1');
}

/** A scanner's message: a line of text and one PDF, base64 in 76-character lines. */
function scanWithPdf(headers: string[], pdf: Buffer): Buffer {
  const base64 = pdf.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    [
      ...headers,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="scan-boundary"',
      '',
      '--scan-boundary',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'Scanned on 2F.',
      '--scan-boundary',
      'Content-Type: application/pdf; name="scan.pdf"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="scan.pdf"',
      '',
      base64,
      '--scan-boundary--',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

function accepted(outcome: AttemptOutcome): string {
  if (!outcome.ok) throw new Error(`expected success, got ${JSON.stringify(outcome.failure)}`);
  for (const recipient of outcome.recipients) {
    expect(recipient.accepted).toBe(true);
    expect(recipient.response).toBe(outcome.dataResponse);
  }
  return outcome.dataResponse;
}

function failed(outcome: AttemptOutcome): UpstreamFailure {
  if (outcome.ok) throw new Error(`expected a failure, got ${outcome.dataResponse}`);
  return outcome.failure;
}

describe('createGraphTransport', () => {
  it('sends a small message as MIME through sendMail, and Microsoft accepting it is the response', async () => {
    const { graph, transport } = await setup();
    const message = mail([
      'From: john@contoso.com',
      'To: jane@contoso.com',
      'Subject: Scan to email',
      'Message-ID: <1@relay>',
    ]);

    const outcome = await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com'));

    expect(accepted(outcome)).toBe('accepted by Microsoft Graph (202) from mailbox john@contoso.com');
    expect(outcome.ok && outcome.recipients.map((r) => r.address)).toEqual(['jane@contoso.com']);
    expect(graph.delivered).toHaveLength(1);
    const [sent] = graph.delivered;
    expect(sent).toMatchObject({
      mailbox: 'john@contoso.com',
      via: 'sendMail',
      to: ['jane@contoso.com'],
      cc: [],
      bcc: [],
      subject: 'Scan to email',
      savedToSentItems: true,
    });
    expect(sent!.visibleMime.equals(message)).toBe(true);
    expect(graph.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'POST /v1.0/users/john%40contoso.com/sendMail 202',
    ]);
  });

  it('adds envelope-only recipients as Bcc, which the To and Cc recipients cannot see', async () => {
    const { graph, transport } = await setup();
    const message = mail([
      'From: john@contoso.com',
      'To: jane@contoso.com',
      'Cc: max@contoso.com',
      'Subject: Q3',
    ]);

    const outcome = await transport.send(
      job(message, ['jane@contoso.com', 'max@contoso.com', 'audit@contoso.com'], 'john@contoso.com'),
    );

    expect(accepted(outcome)).toContain('1 envelope recipient(s) added as Bcc');
    const [sent] = graph.delivered;
    expect(sent).toMatchObject({
      to: ['jane@contoso.com'],
      cc: ['max@contoso.com'],
      bcc: ['audit@contoso.com'],
    });
    expect(sent!.visibleMime.toString('latin1')).not.toContain('audit@contoso.com');
  });

  it('sends only to the envelope when the header names more recipients than it', async () => {
    const { graph, transport } = await setup();
    const message = mail([
      'From: john@contoso.com',
      'To: jane@contoso.com, max@contoso.com',
      'Subject: retry',
    ]);

    const outcome = await transport.send(job(message, ['max@contoso.com'], 'john@contoso.com'));

    expect(accepted(outcome)).toContain('header recipient(s) not in the envelope left out: jane@contoso.com');
    expect(graph.delivered[0]).toMatchObject({ to: ['max@contoso.com'], cc: [], bcc: [] });
  });

  it('delivers a 20 MB attachment intact through a draft and upload sessions', async () => {
    const { graph, transport } = await setup();
    const pdf = randomBytes(20 * 1024 * 1024);
    const message = scanWithPdf(['From: john@contoso.com', 'To: jane@contoso.com', 'Subject: Big scan'], pdf);

    const outcome = await transport.send(
      job(message, ['jane@contoso.com', 'audit@contoso.com'], 'john@contoso.com'),
    );

    expect(accepted(outcome)).toBe(
      'accepted by Microsoft Graph (202) from mailbox john@contoso.com; sent as a draft, 1 attachment(s) ' +
        'added outside the MIME; 1 envelope recipient(s) added as Bcc',
    );
    const [sent] = graph.delivered;
    expect(sent).toMatchObject({
      via: 'draft',
      to: ['jane@contoso.com'],
      bcc: ['audit@contoso.com'],
      subject: 'Big scan',
    });
    expect(sent!.attachments).toHaveLength(1);
    expect(sent!.attachments[0]).toMatchObject({ name: 'scan.pdf', contentType: 'application/pdf' });
    expect(sent!.attachments[0]!.content.equals(pdf)).toBe(true);
    expect(sent!.visibleMime.toString('latin1')).toContain('Scanned on 2F.');
    expect(graph.draftCount).toBe(0);

    const uploads = graph.requests.filter((r) => r.method === 'PUT');
    expect(uploads).toHaveLength(Math.ceil(pdf.length / UPLOAD_CHUNK_BYTES));
    for (const upload of uploads) {
      expect(upload.authorization).toBe(false);
      expect(upload.bodyBytes).toBeLessThanOrEqual(UPLOAD_CHUNK_BYTES);
    }
    expect(graph.requests.every((r) => r.bodyBytes <= 4 * 1024 * 1024)).toBe(true);
  });

  it('falls back to a draft without attachments when sendMail answers 413 below the expected limit', async () => {
    const { graph, transport } = await setup({ maxRequestBytes: 3 * 1024 * 1024 });
    const pdf = randomBytes(2_000_000);
    const message = scanWithPdf(['From: john@contoso.com', 'To: jane@contoso.com', 'Subject: Mid-size'], pdf);

    const outcome = await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com'));

    expect(accepted(outcome)).toContain('sent as a draft, 1 attachment(s) added outside the MIME');
    expect(graph.requests[0]).toMatchObject({ path: '/v1.0/users/john%40contoso.com/sendMail', status: 413 });
    expect(graph.delivered[0]!.attachments[0]!.content.equals(pdf)).toBe(true);
    expect(graph.requests.some((r) => r.method === 'PUT')).toBe(false);
  });

  it('refuses a message whose text alone is too large for Graph, for good', async () => {
    const { graph, transport } = await setup();
    const message = mail(['From: john@contoso.com', 'To: jane@contoso.com'], 'x'.repeat(3_500_000));

    const failure = failed(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(failure).toMatchObject({ kind: 'graph', status: 413, code: 'ErrorMessageSizeExceeded' });
    expect(diagnose(failure).action).toBe('fail-message');
    expect(graph.requests).toEqual([]);
  });

  it("with sendAs 'from' sends through each sender's own mailbox, and through the configured one when there is none", async () => {
    const { graph, transport } = await setup(
      {
        mailboxes: [
          { address: 'john@contoso.com', sendAs: ['scanner@contoso.com'] },
          'alice@contoso.com',
          'bob@contoso.com',
        ],
      },
      { sendAs: 'from' },
    );
    const from = (address: string) => mail([`From: ${address}`, 'To: jane@contoso.com', 'Subject: Scan']);

    const alice = await transport.send(
      job(from('alice@contoso.com'), ['jane@contoso.com'], 'alice@contoso.com'),
    );
    const bob = await transport.send(job(from('bob@contoso.com'), ['jane@contoso.com'], 'bob@contoso.com'));
    const scanner = await transport.send(
      job(from('scanner@contoso.com'), ['jane@contoso.com'], 'scanner@contoso.com'),
    );

    expect(accepted(alice)).toBe('accepted by Microsoft Graph (202) from mailbox alice@contoso.com');
    expect(accepted(bob)).toBe('accepted by Microsoft Graph (202) from mailbox bob@contoso.com');
    expect(accepted(scanner)).toBe(
      'accepted by Microsoft Graph (202) from mailbox john@contoso.com; scanner@contoso.com has no mailbox in ' +
        'Graph (ErrorInvalidUser), sent through john@contoso.com',
    );
    expect(graph.delivered.map((m) => [m.mailbox, m.from])).toEqual([
      ['alice@contoso.com', 'alice@contoso.com'],
      ['bob@contoso.com', 'bob@contoso.com'],
      ['john@contoso.com', 'scanner@contoso.com'],
    ]);
  });

  it('keeps a copy out of Sent Items through a draft when saveToSentItems is false', async () => {
    const { graph, transport } = await setup({}, { saveToSentItems: false });
    const message = mail(['From: john@contoso.com', 'To: jane@contoso.com', 'Subject: No copy']);

    accepted(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(graph.delivered[0]).toMatchObject({
      via: 'draft',
      savedToSentItems: false,
      to: ['jane@contoso.com'],
    });
    expect(graph.draftCount).toBe(0);
  });

  it('turns 429 and 503 into a graph failure with Retry-After, which the table retries after that long', async () => {
    const { graph, transport } = await setup();
    graph.failNext({
      status: 429,
      code: 'ApplicationThrottled',
      message: 'Application is over its MailboxConcurrency limit.',
      retryAfterSeconds: 30,
    });
    graph.failNext({
      status: 503,
      code: 'ServiceUnavailable',
      message: 'Service Unavailable',
      retryAfterSeconds: 7,
    });
    const message = mail(['From: john@contoso.com', 'To: jane@contoso.com']);

    const throttled = failed(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));
    const unavailable = failed(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(throttled).toEqual({
      kind: 'graph',
      status: 429,
      code: 'ApplicationThrottled',
      message: 'Application is over its MailboxConcurrency limit. (mailbox john@contoso.com)',
      retryAfterSeconds: 30,
    });
    expect(diagnose(throttled)).toMatchObject({ action: 'retry', retryAfterSeconds: 30 });
    expect(unavailable).toMatchObject({ status: 503, retryAfterSeconds: 7 });
    expect(diagnose(unavailable)).toMatchObject({ action: 'retry', retryAfterSeconds: 7 });
    accepted(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));
    expect(graph.delivered).toHaveLength(1);
  });

  it('reports a mailbox outside the app scope as ErrorAccessDenied, which holds the queue', async () => {
    const { graph, transport } = await setup({ allowedMailboxes: ['jane@contoso.com'] });
    const message = mail(['From: john@contoso.com', 'To: jane@contoso.com']);

    const failure = failed(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(failure).toMatchObject({ kind: 'graph', status: 403, code: 'ErrorAccessDenied' });
    expect(failure.kind === 'graph' && failure.message).toMatch(/\[RAOP\].*\(mailbox john@contoso\.com\)$/);
    expect(diagnose(failure, { mailbox: 'john@contoso.com' })).toMatchObject({
      id: 'graph-access-denied',
      action: 'hold',
    });
    expect(graph.delivered).toEqual([]);
  });

  it('deletes the draft again when sending it fails', async () => {
    const { graph, transport } = await setup({ permissions: ['Mail.ReadWrite'] });
    const message = scanWithPdf(
      ['From: john@contoso.com', 'To: jane@contoso.com'],
      randomBytes(4 * 1024 * 1024),
    );

    const failure = failed(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(failure).toMatchObject({ kind: 'graph', status: 403, code: 'ErrorAccessDenied' });
    expect(graph.requests.at(-1)).toMatchObject({ method: 'DELETE', status: 204 });
    expect(graph.draftCount).toBe(0);
  });

  it('passes a token endpoint refusal through as the failure, without calling Graph', async () => {
    const { graph, transport } = await setup({}, {}, 'not-the-secret');
    const message = mail(['From: john@contoso.com', 'To: jane@contoso.com']);

    const failure = failed(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(failure).toMatchObject({ kind: 'token', status: 401, error: 'invalid_client', aadsts: [7000215] });
    expect(graph.requests).toEqual([]);
  });

  it('fetches a new token once when Graph answers 401 for an expired one', async () => {
    const { tokens, graph, transport } = await setup();
    const message = mail(['From: john@contoso.com', 'To: jane@contoso.com']);
    accepted(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));
    tokens.expireAll();

    accepted(await transport.send(job(message, ['jane@contoso.com'], 'john@contoso.com')));

    expect(graph.requests.map((r) => r.status)).toEqual([202, 401, 202]);
    expect(tokens.issued).toBe(2);
  });

  it('turns an unreachable Graph into a network failure', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const { transport } = await setup({}, { graphUrl: `http://127.0.0.1:${port}` });

    const failure = failed(
      await transport.send(
        job(mail(['From: john@contoso.com', 'To: jane@contoso.com']), ['jane@contoso.com']),
      ),
    );

    expect(failure).toMatchObject({ kind: 'network', code: 'ECONNREFUSED', stage: 'connect' });
    expect(diagnose(failure).action).toBe('retry');
  });
});

describe('probeGraphMailbox', () => {
  function provider(tokens: TokenEndpoint, scope = GRAPH_SCOPE) {
    return createTokenProvider({
      tokenUrl: tokens.url(),
      clientId: tokens.clientId,
      scope,
      getClientSecret: async () => tokens.clientSecret,
    });
  }

  it('checks the token, Mail.Send and Mail.ReadWrite on the mailbox without sending or leaving anything', async () => {
    const { tokens, graph, upstream } = await setup();

    const probe = await probeGraphMailbox(upstream, provider(tokens));

    expect(probe.mailbox).toBe('john@contoso.com');
    expect(probe.token.ok).toBe(true);
    expect(probe.send).toMatchObject({
      ok: true,
      detail: 'the app may send from john@contoso.com (Mail.Send)',
    });
    expect(probe.drafts).toMatchObject({ ok: true, failure: null });
    expect(graph.delivered).toEqual([]);
    expect(graph.draftCount).toBe(0);
  });

  it('names the refusal for a mailbox outside the app scope, and for missing Mail.ReadWrite', async () => {
    const { tokens, graph, upstream } = await setup({ permissions: ['Mail.Send'] });

    const drafts = await probeGraphMailbox(upstream, provider(tokens));
    graph.setAllowedMailboxes(['jane@contoso.com']);
    const scoped = await probeGraphMailbox(upstream, provider(tokens));

    expect(drafts.send?.ok).toBe(true);
    expect(drafts.drafts).toMatchObject({
      ok: false,
      failure: { kind: 'graph', status: 403, code: 'ErrorAccessDenied' },
    });
    expect(drafts.drafts?.detail).toContain('messages over about 3 MB');
    expect(scoped.send).toMatchObject({
      ok: false,
      failure: { kind: 'graph', status: 403, code: 'ErrorAccessDenied' },
    });
  });

  it('stops at the token when the token endpoint refuses', async () => {
    const { tokens, graph, upstream } = await setup();
    tokens.requireConsent(GRAPH_SCOPE, false);

    const probe = await probeGraphMailbox(upstream, provider(tokens));

    expect(probe.token).toMatchObject({ ok: false, failure: { kind: 'token', aadsts: [65001] } });
    expect(probe.send).toBeNull();
    expect(probe.drafts).toBeNull();
    expect(graph.requests).toEqual([]);
  });

  it('reports a token for the wrong resource as Graph refusing it', async () => {
    const { tokens, upstream } = await setup();

    const probe = await probeGraphMailbox(upstream, provider(tokens, SMTP_SCOPE));

    expect(probe.send).toMatchObject({ ok: false, failure: { kind: 'graph', status: 401 } });
    expect(diagnose(probe.send!.failure!).id).toBe('graph-token-invalid');
  });
});
