import type { RelayConfig } from './types.ts';

/** 35 MiB: the default sending limit of a Microsoft 365 mailbox. */
const MICROSOFT_365_MESSAGE_BYTES = 35 * 1024 * 1024;

/**
 * The configuration before any file is read. Out of the box only this computer may relay
 * (`allowedClients` is loopback), so a fresh install is never an open relay; the admin adds the
 * devices' addresses.
 */
export function defaultConfig(): RelayConfig {
  return {
    listen: { host: '0.0.0.0', port: 25, tls: 'none' },
    extraListeners: [],
    allowedClients: ['127.0.0.1', '::1'],
    allowWideClientRanges: false,
    upstream: {
      type: 'smtp',
      preset: 'custom',
      // Empty until the admin or a preset names the smart host: validation reports it.
      host: '',
      port: 587,
      security: 'starttls',
      auth: 'password',
      user: null,
      caFile: null,
      maxConnections: 3,
      messagesPerMinute: 30,
      maxMessageBytes: MICROSOFT_365_MESSAGE_BYTES,
      oauth2: null,
      mailbox: null,
      graphUrl: 'https://graph.microsoft.com',
      sendAs: 'mailbox',
      saveToSentItems: true,
      timeoutSeconds: 60,
      heloName: null,
    },
    limits: {
      maxMessageBytes: MICROSOFT_365_MESSAGE_BYTES,
      maxRecipients: 500,
      maxConnectionsPerClient: 20,
      maxConnections: 200,
      idleTimeoutSeconds: 300,
      maxUnlistedConnections: 10,
      maxConnectionsPerUnlistedClient: 2,
      // Postfix's smtpd_min_data_rate.
      minDataBytesPerSecond: 500,
      sessionTimeoutSeconds: 3600,
    },
    queue: { retryForHours: 48, minRetrySeconds: 60, maxRetrySeconds: 1800 },
    sender: { mode: 'keep', byClient: {} },
    lanAuth: { mode: 'ignore', users: [] },
    lanTls: { certFile: null, keyFile: null, allowLegacyTls: false },
    pickup: { dir: null, badmailDir: null, settleSeconds: 2 },
    alerts: {
      webhookUrl: null,
      webhookFormat: 'json',
      queueAgeMinutes: 30,
      email: null,
      senderNotices: true,
      digest: 'off',
      digestHour: 8,
    },
  };
}
