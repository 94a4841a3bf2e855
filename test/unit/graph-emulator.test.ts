import { afterEach, describe, expect, it } from 'vitest';
import { createTokenProvider, GRAPH_SCOPE } from '../../electron/relay/oauth-token.ts';
import { startGraphEmulator, type GraphEmulator } from '../fixtures/graph-emulator.ts';
import { startTokenEndpoint } from '../fixtures/token-endpoint.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function start(): Promise<{ graph: GraphEmulator; token: string }> {
  const tokens = await startTokenEndpoint();
  cleanups.push(() => tokens.close());
  const graph = await startGraphEmulator({
    tokens,
    mailboxes: ['john@contoso.com', { address: 'onprem@contoso.com', restEnabled: false }],
  });
  cleanups.push(() => graph.close());
  const token = await createTokenProvider({
    tokenUrl: tokens.url(),
    clientId: tokens.clientId,
    scope: GRAPH_SCOPE,
    getClientSecret: async () => tokens.clientSecret,
  }).getToken();
  return { graph, token };
}

async function call(
  graph: GraphEmulator,
  token: string,
  method: string,
  path: string,
  body?: string | object,
): Promise<{ status: number; json: { error?: { code: string } } & Record<string, unknown> }> {
  const text = typeof body === 'string';
  const response = await fetch(`${graph.url}/v1.0${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': text ? 'text/plain' : 'application/json',
    },
    body: body === undefined ? undefined : text ? body : JSON.stringify(body),
  });
  const raw = await response.text();
  return { status: response.status, json: raw ? JSON.parse(raw) : {} };
}

const smallMime = Buffer.from('From: john@contoso.com\r\nTo: jane@contoso.com\r\n\r\nhi\r\n').toString(
  'base64',
);

describe('graph emulator', () => {
  it('answers like Graph for unknown, on-premises and out-of-scope mailboxes and oversized requests', async () => {
    const { graph, token } = await start();

    const unknown = await call(graph, token, 'POST', '/users/nobody%40contoso.com/sendMail', smallMime);
    const onPrem = await call(graph, token, 'POST', '/users/onprem%40contoso.com/sendMail', smallMime);
    graph.setAllowedMailboxes([]);
    const scoped = await call(graph, token, 'POST', '/users/john%40contoso.com/sendMail', smallMime);
    const huge = await call(
      graph,
      token,
      'POST',
      '/users/john%40contoso.com/sendMail',
      'A'.repeat(4 * 1024 * 1024 + 4),
    );

    expect([unknown.status, unknown.json.error?.code]).toEqual([404, 'ErrorInvalidUser']);
    expect([onPrem.status, onPrem.json.error?.code]).toEqual([404, 'MailboxNotEnabledForRESTAPI']);
    expect([scoped.status, scoped.json.error?.code]).toEqual([403, 'ErrorAccessDenied']);
    expect(huge.status).toBe(413);
    expect(graph.delivered).toEqual([]);
  });

  it('takes upload ranges only in order, only without a token, and attaches the file when complete', async () => {
    const { graph, token } = await start();
    const draft = await call(graph, token, 'POST', '/users/john%40contoso.com/messages', smallMime);
    const draftPath = `/users/john%40contoso.com/messages/${encodeURIComponent(String(draft.json.id))}`;
    const session = await call(graph, token, 'POST', `${draftPath}/attachments/createUploadSession`, {
      AttachmentItem: { attachmentType: 'file', name: 'a.bin', size: 10 },
    });
    const uploadUrl = String(session.json.uploadUrl);
    const put = (range: string, bytes: string, authorization?: string) =>
      fetch(uploadUrl, {
        method: 'PUT',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': range,
          ...(authorization ? { authorization } : {}),
        },
        body: bytes,
      });

    expect((await put('bytes 5-9/10', '56789')).status).toBe(416);
    expect((await put('bytes 0-4/10', '01234', `Bearer ${token}`)).status).toBe(401);
    const first = await put('bytes 0-4/10', '01234');
    expect([
      first.status,
      ((await first.json()) as { nextExpectedRanges: string[] }).nextExpectedRanges,
    ]).toEqual([200, ['5']]);
    const last = await put('bytes 5-9/10', '56789');
    expect(last.status).toBe(201);
    expect(last.headers.get('location')).toContain('/attachments/');
    expect((await call(graph, token, 'POST', `${draftPath}/send`)).status).toBe(202);

    expect(graph.delivered[0]!.attachments[0]!.content.toString()).toBe('0123456789');
    expect(graph.delivered[0]!.to).toEqual(['jane@contoso.com']);
  });
});
