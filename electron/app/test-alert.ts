/**
 * "Send a test alert" for the window (and the admin web page): one test alert on every configured
 * channel of the saved config, each answer in a line the window shows as it is. The same as
 * `relaydesk alerts test`.
 */
import type { RelayConfig } from '../config/types.ts';
import { openConfigMailer } from '../relay/alerts-mail.ts';
import { sendTestAlert } from '../relay/alerts.ts';
import type { UpstreamDeps } from '../relay/upstream.ts';
import type { TestAlertChannelView, TestAlertView } from '../shared/ipc.ts';

export async function sendAppTestAlert(config: RelayConfig, deps: UpstreamDeps): Promise<TestAlertView> {
  const { webhookUrl, email } = config.alerts;
  if (!webhookUrl && !email) return { channels: [] };
  const mail = email ? openConfigMailer(config, deps) : null;
  try {
    const result = await sendTestAlert(config.alerts, { mailer: mail?.mailer, fetch: deps.fetch });
    const channels: TestAlertChannelView[] = [];
    if (webhookUrl && result.webhook) {
      channels.push({
        channel: 'webhook',
        target: new URL(webhookUrl).origin,
        ok: result.webhook.ok,
        detail: result.webhook.ok ? `HTTP ${result.webhook.status}` : result.webhook.error,
      });
    }
    if (email && result.email) {
      channels.push({
        channel: 'email',
        target: email,
        ok: result.email.ok,
        detail: result.email.ok ? result.email.reply : result.email.error,
      });
    }
    return { channels };
  } finally {
    await mail?.close();
  }
}
