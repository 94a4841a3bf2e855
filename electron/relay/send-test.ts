/**
 * The one-click test email (`relaydesk send-test`, the tray and the window): a short message sent
 * straight through the configured upstream, so the answer is Microsoft's (or the smart host's) own,
 * not "queued". Subject and body say which relay sent it, by which path, and when.
 */
import type { RelayConfig } from '../config/types.ts';
import { describeUpstream, failureOf } from './check.ts';
import { isDelegated } from './oauth/endpoints.ts';
import { readSignedIn } from './oauth/signed-in.ts';
import { diagnose, diagnosisContextFor, type Diagnosis } from './diagnosis.ts';
import { formatDate } from './message/headers.ts';
import { ownMessageJob } from './own-message.ts';
import { newMessageId } from './spool.ts';
import { createUpstreamTransport, relayHostname, type UpstreamDeps } from './upstream.ts';
import { describeFailure, type UpstreamFailure } from './upstream-failure.ts';

export interface TestEmailResult {
  ok: boolean;
  to: string;
  from: string;
  messageId: string;
  /** The upstream's reply (`250 2.0.0 OK ...`, `accepted by Microsoft Graph (202)`) or the failure. */
  reply: string;
  failure: UpstreamFailure | null;
  diagnosis: Diagnosis | null;
}

export function buildTestMessage(
  config: RelayConfig,
  to: string,
  from: string,
  id: string,
  now = Date.now(),
) {
  const host = relayHostname(config.upstream);
  const listeners = [config.listen, ...config.extraListeners].map((l) => `${l.host}:${l.port}`).join(', ');
  const when = formatDate(now);
  const text = [
    `From: "RelayDesk on ${host}" <${from}>`,
    `To: <${to}>`,
    `Subject: RelayDesk test message from ${host} (${when})`,
    `Date: ${when}`,
    `Message-ID: <${id}@${host}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    `This is a test message from RelayDesk on the computer ${host}.`,
    '',
    `Path: devices send to RelayDesk on ${listeners} (allowed: ${config.allowedClients.join(', ')}),`,
    `RelayDesk sends to ${describeUpstream(config)}.`,
    `Sent: ${when}`,
    '',
    'If you can read this, the upstream accepted mail from RelayDesk. Devices can now send through it.',
    '',
  ].join('\r\n');
  return Buffer.from(text, 'utf8');
}

export async function sendTestEmail(
  config: RelayConfig,
  deps: UpstreamDeps,
  to: string,
): Promise<TestEmailResult> {
  const from =
    (config.upstream.type === 'graph' ? config.upstream.mailbox : config.upstream.user) ??
    // A delegated sign-in without a configured user sends as whoever signed in.
    (isDelegated(config.upstream) && deps.dataDir ? readSignedIn(deps.dataDir)?.username : undefined) ??
    `relaydesk@${relayHostname(config.upstream)}`;
  const id = newMessageId();
  const bytes = buildTestMessage(config, to, from, id);
  const job = ownMessageJob({
    id,
    from,
    to,
    bytes,
    eightBit: true,
    origin: { helo: 'relaydesk-test', listener: 'send-test' },
  });
  const context = { ...diagnosisContextFor(config.upstream, deps.env), mailbox: from };
  const result = (reply: string, failure: UpstreamFailure | null): TestEmailResult => ({
    ok: failure === null,
    to,
    from,
    messageId: id,
    reply,
    failure,
    diagnosis: failure ? diagnose(failure, context) : null,
  });

  let transport;
  try {
    transport = await createUpstreamTransport(config.upstream, deps);
  } catch (error) {
    const failure = failureOf(error);
    return result(describeFailure(failure), failure);
  }
  try {
    const outcome = await transport.send(job);
    if (!outcome.ok) return result(describeFailure(outcome.failure), outcome.failure);
    const recipient = outcome.recipients[0];
    if (!recipient?.accepted) {
      const failure = recipient?.failure ?? {
        kind: 'config' as const,
        code: 'NO_RECIPIENT',
        message: 'the upstream took no recipient',
      };
      return result(recipient?.response ?? describeFailure(failure), failure);
    }
    return result(recipient.response, null);
  } catch (error) {
    const failure = failureOf(error);
    return result(describeFailure(failure), failure);
  } finally {
    await transport.close();
  }
}
