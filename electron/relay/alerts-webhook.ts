/**
 * The webhook channel of the alerts: one JSON POST per alert, in RelayDesk's own shape or the shapes
 * Teams' and Slack's incoming webhooks take. A failure is an outcome, never a throw.
 */
import { hostname as osHostname } from 'node:os';
import type { AlertsWebhookFormat } from '../config/types.ts';
import type { Alert } from './alerts.ts';
import { redactSecrets } from './redact.ts';

const WEBHOOK_TIMEOUT_MS = 10 * 1000;

/** The JSON body a webhook of `format` takes for `alert`. */
export function webhookPayload(alert: Alert, format: AlertsWebhookFormat, host: string): unknown {
  const title = redactSecrets(alert.title);
  const text = redactSecrets(alert.text);
  switch (format) {
    case 'json':
      return { kind: alert.kind, title, text, time: new Date(alert.time).toISOString(), host };
    case 'slack':
      // Slack incoming webhooks take `text` (mrkdwn); it is also the notification's fallback.
      return { text: `*RelayDesk on ${host}: ${title}*\n${text}` };
    case 'teams':
      // The Adaptive Card envelope both Teams Incoming Webhooks and Workflows ("Post to a channel
      // when a webhook request is received") accept.
      return {
        type: 'message',
        attachments: [
          {
            contentType: 'application/vnd.microsoft.card.adaptive',
            contentUrl: null,
            content: {
              $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
              type: 'AdaptiveCard',
              version: '1.2',
              body: [
                { type: 'TextBlock', text: `RelayDesk on ${host}: ${title}`, weight: 'Bolder', wrap: true },
                { type: 'TextBlock', text, wrap: true },
              ],
            },
          },
        ],
      };
  }
}

export type WebhookResult =
  { ok: true; status: number } | { ok: false; status: number | null; error: string };

export interface WebhookTarget {
  url: string;
  format: AlertsWebhookFormat;
  host?: string;
  fetch?: typeof fetch;
}

/** POSTs one alert; resolves with the outcome, never rejects. */
export async function sendWebhook(alert: Alert, target: WebhookTarget): Promise<WebhookResult> {
  const send = target.fetch ?? fetch;
  try {
    const response = await send(target.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(webhookPayload(alert, target.format, target.host ?? osHostname())),
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    await response.body?.cancel();
    if (response.ok) return { ok: true, status: response.status };
    return { ok: false, status: response.status, error: `HTTP ${response.status} ${response.statusText}` };
  } catch (error) {
    const { name, message } = error as Error;
    const reason = name === 'TimeoutError' ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s` : message;
    return { ok: false, status: null, error: redactSecrets(reason) };
  }
}

/** Where the webhook goes in a log line: scheme and host only, the path often holds its key. */
export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}
