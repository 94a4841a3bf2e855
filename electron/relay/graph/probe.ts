/**
 * `relaydesk check` for a Graph upstream: can RelayDesk get a token, may the app send from the
 * mailbox, and may it create drafts there, all without sending anything to anyone.
 */
import type { UpstreamConfig } from '../../config/types.ts';
import { GRAPH_SCOPE, type TokenProvider } from '../oauth-token.ts';
import { UpstreamError, type UpstreamFailure } from '../upstream-failure.ts';
import { createGraphClient, userPath } from './client.ts';

export interface GraphProbeStep {
  ok: boolean;
  /** One line for the CLI: what was tried and what it showed. */
  detail: string;
  failure: UpstreamFailure | null;
}

export interface GraphProbe {
  mailbox: string;
  token: GraphProbeStep;
  /** Mail.Send on the mailbox. Null when there was no token to try with. */
  send: GraphProbeStep | null;
  /**
   * Mail.ReadWrite on the mailbox: needed for messages over about 3 MB, and for every message when
   * `saveToSentItems` is false. Null when there was no token to try with.
   */
  drafts: GraphProbeStep | null;
}

/**
 * 1. a token for GRAPH_SCOPE; 2. `POST /users/{mailbox}/sendMail` with a message that has no
 * recipients: Graph checks the token, the Mail.Send permission and the app's access to the mailbox
 * (RBAC for Applications, Application Access Policy) first, so `400 ErrorInvalidRecipients` means all
 * of them passed and nothing was sent; 3. an empty draft created and deleted at once
 * (`POST /users/{mailbox}/messages`, `DELETE`), which takes Mail.ReadWrite.
 */
export async function probeGraphMailbox(
  upstream: UpstreamConfig,
  tokens: TokenProvider,
  fetchImpl?: typeof fetch,
): Promise<GraphProbe> {
  const mailbox = upstream.mailbox ?? '';
  const noMailbox: UpstreamFailure = {
    kind: 'config',
    code: 'NO_MAILBOX',
    message: 'upstream.mailbox is not set',
  };
  if (!mailbox) {
    return { mailbox, token: failed('no mailbox configured', noMailbox), send: null, drafts: null };
  }
  try {
    await tokens.getToken();
  } catch (error) {
    return { mailbox, token: failed('token request failed', failureOf(error)), send: null, drafts: null };
  }
  const token = { ok: true, detail: `token issued for ${GRAPH_SCOPE}`, failure: null };
  const client = createGraphClient({
    graphUrl: upstream.graphUrl,
    tokens,
    fetch: fetchImpl,
    timeoutMs: upstream.timeoutSeconds * 1000,
  });
  const user = userPath(mailbox);

  let send: GraphProbeStep;
  try {
    await client.call('POST', `${user}/sendMail`, {
      json: { message: { subject: 'RelayDesk permission check' }, saveToSentItems: false },
    });
    send = { ok: true, detail: `Graph accepted a message without recipients from ${mailbox}`, failure: null };
  } catch (error) {
    const failure = failureOf(error);
    send =
      failure.kind === 'graph' && failure.status === 400 && failure.code === 'ErrorInvalidRecipients'
        ? { ok: true, detail: `the app may send from ${mailbox} (Mail.Send)`, failure: null }
        : failed(`the app may not send from ${mailbox}`, failure);
  }

  let drafts: GraphProbeStep;
  try {
    const created = await client.call('POST', `${user}/messages`, {
      json: { subject: 'RelayDesk permission check (deleted at once)' },
    });
    const id = created.json?.id;
    if (typeof id === 'string' && id) {
      await client.call('DELETE', `${user}/messages/${encodeURIComponent(id)}`);
    }
    drafts = { ok: true, detail: `the app may create drafts in ${mailbox} (Mail.ReadWrite)`, failure: null };
  } catch (error) {
    drafts = failed(
      `the app may not create drafts in ${mailbox}: messages over about 3 MB` +
        (upstream.saveToSentItems ? '' : ', and every message with saveToSentItems false,') +
        ' cannot go out',
      failureOf(error),
    );
  }
  return { mailbox, token, send, drafts };
}

function failed(detail: string, failure: UpstreamFailure): GraphProbeStep {
  return { ok: false, detail, failure };
}

function failureOf(error: unknown): UpstreamFailure {
  if (error instanceof UpstreamError) return error.failure;
  throw error;
}
