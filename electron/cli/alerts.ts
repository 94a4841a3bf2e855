/**
 * `relaydesk alerts test`: sends one test alert to the configured webhook and shows the answer, so the
 * admin knows alerts reach them before they are needed.
 */
import { sendWebhook } from '../relay/alerts.ts';
import { configPathFrom, dataDirFrom, EXIT_CONFIG, loadConfigOrReport, type CliIo } from './context.ts';

export interface AlertsFlags {
  config?: string;
  'data-dir'?: string;
}

export async function alertsCommand(args: string[], flags: AlertsFlags, io: CliIo): Promise<number> {
  const [action] = args;
  if (action !== 'test') {
    io.stderr.write('Usage: relaydesk alerts test [--config FILE] [--data-dir DIR]\n');
    return 64;
  }
  const dataDir = dataDirFrom(flags['data-dir'], io.env);
  const config = await loadConfigOrReport(configPathFrom(flags.config, dataDir), io);
  if (!config) return EXIT_CONFIG;
  const { webhookUrl, webhookFormat } = config.alerts;
  if (!webhookUrl) {
    io.stderr.write(
      'No webhook is configured: set "alerts.webhookUrl" in the config (see docs/monitoring.md, "Alerts").\n',
    );
    return EXIT_CONFIG;
  }
  const result = await sendWebhook(
    {
      kind: 'test',
      title: 'Test alert',
      text: 'This is a test alert from RelayDesk (relaydesk alerts test). Alerts reach you here.',
      time: Date.now(),
    },
    { url: webhookUrl, format: webhookFormat },
  );
  const where = new URL(webhookUrl).origin;
  if (result.ok) {
    io.stdout.write(`Test alert sent to ${where} (${webhookFormat}): HTTP ${result.status}\n`);
    return 0;
  }
  io.stderr.write(`The test alert to ${where} (${webhookFormat}) failed: ${result.error}\n`);
  return 1;
}
