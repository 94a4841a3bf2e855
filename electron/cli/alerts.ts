/**
 * `relaydesk alerts test`: sends one test alert on every configured channel (the webhook, and mail to
 * `alerts.email` through the upstream) and shows each answer, so the admin knows alerts reach them
 * before they are needed.
 */
import { openConfigMailer } from '../relay/alerts-mail.ts';
import { sendTestAlert } from '../relay/alerts.ts';
import { createKeychainStore } from '../secrets/index.ts';
import { EXIT_CONFIG, loadCommandConfig, type CliIo, type ConfigFlags } from './context.ts';

export type AlertsFlags = ConfigFlags;

export async function alertsCommand(args: string[], flags: AlertsFlags, io: CliIo): Promise<number> {
  const [action] = args;
  if (action !== 'test') {
    io.stderr.write('Usage: relaydesk alerts test [--config FILE] [--data-dir DIR]\n');
    return 64;
  }
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config, dataDir } = loaded;
  const { webhookUrl, webhookFormat, email } = config.alerts;
  if (!webhookUrl && !email) {
    io.stderr.write(
      'No alert channel is configured: set "alerts.webhookUrl" or "alerts.email" in the config (see docs/alerts.md).\n',
    );
    return EXIT_CONFIG;
  }
  const mail = email
    ? openConfigMailer(config, { secrets: createKeychainStore(), env: io.env, dataDir })
    : null;
  try {
    const result = await sendTestAlert(config.alerts, { mailer: mail?.mailer });
    let failed = false;
    if (webhookUrl && result.webhook) {
      const where = new URL(webhookUrl).origin;
      if (result.webhook.ok) {
        io.stdout.write(`Test alert sent to ${where} (${webhookFormat}): HTTP ${result.webhook.status}\n`);
      } else {
        failed = true;
        io.stderr.write(`The test alert to ${where} (${webhookFormat}) failed: ${result.webhook.error}\n`);
      }
    }
    if (email && result.email) {
      if (result.email.ok) io.stdout.write(`Test alert mailed to ${email}: ${result.email.reply}\n`);
      else {
        failed = true;
        io.stderr.write(`The test alert mail to ${email} failed: ${result.email.error}\n`);
      }
    }
    return failed ? 1 : 0;
  } finally {
    await mail?.close();
  }
}
