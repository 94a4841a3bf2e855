/**
 * Every config field the Settings page edits, grouped as docs/configuration.md explains them, with
 * the help text shown under each input.
 */
export type FieldKind =
  | { type: 'text'; nullable?: boolean }
  | { type: 'number' }
  | { type: 'select'; options: readonly { value: string; label: string }[] }
  | { type: 'checkbox' };

export interface SettingsField {
  path: string;
  label: string;
  help?: string;
  kind: FieldKind;
  /** Shown only when this holds for the draft. */
  when?: (get: (path: string) => unknown) => boolean;
}

export interface SettingsSection {
  id: string;
  title: string;
  fields: SettingsField[];
}

const text = (nullable = false): FieldKind => ({ type: 'text', nullable });
const number: FieldKind = { type: 'number' };
export const select = (...options: [string, string][]): FieldKind => ({
  type: 'select',
  options: options.map(([value, label]) => ({ value, label })),
});

const isGraph = (get: (path: string) => unknown) => get('upstream.type') === 'graph';
const isSmtp = (get: (path: string) => unknown) => !isGraph(get);
const usesOAuth = (get: (path: string) => unknown) => isGraph(get) || get('upstream.auth') === 'oauth2';

export const SETTINGS_SECTIONS: SettingsSection[] = [
  {
    id: 'listen',
    title: 'Where devices send',
    fields: [
      {
        path: 'listen.host',
        label: 'Listen address',
        help: '0.0.0.0 for every network of this computer, 127.0.0.1 for this computer only, or one of its addresses.',
        kind: text(),
      },
      {
        path: 'listen.port',
        label: 'Port',
        help: '25 is what devices expect; 2525 needs no administrator rights.',
        kind: number,
      },
      {
        path: 'listen.tls',
        label: 'Encryption offered to devices',
        help: 'Most scanners and faxes cannot encrypt: leave it at none unless a device asks for STARTTLS.',
        kind: select(
          ['none', 'None'],
          ['starttls', 'STARTTLS offered'],
          ['implicit', 'TLS from the first byte (465)'],
        ),
      },
    ],
  },
  {
    id: 'upstream',
    title: 'Where mail goes (upstream)',
    fields: [
      {
        path: 'upstream.preset',
        label: 'Provider',
        help: 'Fills in the host, port, encryption and limits of a known provider.',
        kind: select(
          ['microsoft365', 'Microsoft 365'],
          ['microsoft365-direct-send', 'Microsoft 365 Direct Send'],
          ['google', 'Google Workspace / Gmail'],
          ['custom', 'Other mail server'],
        ),
      },
      {
        path: 'upstream.type',
        label: 'Protocol',
        help: 'SMTP for every provider; Microsoft Graph sends through the Graph API instead (OAuth 2.0 only).',
        kind: select(['smtp', 'SMTP'], ['graph', 'Microsoft Graph']),
      },
      {
        path: 'upstream.host',
        label: 'Mail server',
        help: 'smtp.office365.com for Microsoft 365.',
        kind: text(),
        when: isSmtp,
      },
      {
        path: 'upstream.port',
        label: 'Port',
        help: '587 with STARTTLS, 465 with TLS.',
        kind: number,
        when: isSmtp,
      },
      {
        path: 'upstream.security',
        label: 'Encryption',
        help: 'A password or token is never sent unencrypted.',
        kind: select(
          ['starttls', 'STARTTLS'],
          ['tls', 'TLS from the start'],
          ['none', 'None (local server only)'],
        ),
        when: isSmtp,
      },
      {
        path: 'upstream.auth',
        label: 'Sign-in',
        help: 'Password (SMTP AUTH), OAuth 2.0 with an Entra app, or none (Direct Send).',
        kind: select(['password', 'Password'], ['oauth2', 'OAuth 2.0'], ['none', 'None']),
        when: isSmtp,
      },
      {
        path: 'upstream.user',
        label: 'Mailbox that signs in',
        help: 'The full address, e.g. scanner@contoso.com.',
        kind: text(true),
        when: isSmtp,
      },
      {
        path: 'upstream.mailbox',
        label: 'Mailbox that sends (Graph)',
        help: 'The mailbox Microsoft Graph sends as.',
        kind: text(true),
        when: isGraph,
      },
      {
        path: 'upstream.oauth2.tenant',
        label: 'Directory (tenant) ID',
        help: 'Or a domain such as contoso.onmicrosoft.com.',
        kind: text(),
        when: usesOAuth,
      },
      {
        path: 'upstream.oauth2.clientId',
        label: 'Application (client) ID',
        help: "The Entra app registration's ID.",
        kind: text(),
        when: usesOAuth,
      },
      {
        path: 'upstream.oauth2.grant',
        label: 'OAuth 2.0 sign-in',
        help: "Sign in with Microsoft as the mailbox's user, or the app's own client secret (app-only).",
        kind: select(
          ['delegated', 'Sign in with Microsoft (user)'],
          ['client_credentials', 'App-only (client secret)'],
        ),
        when: usesOAuth,
      },
      {
        path: 'upstream.oauth2.authorityUrl',
        label: 'Sign-in host',
        help: 'https://login.microsoftonline.com unless your tenant is in a national cloud.',
        kind: text(),
        when: usesOAuth,
      },
      {
        path: 'upstream.oauth2.tokenUrl',
        label: 'Token endpoint',
        help: 'Leave as is unless your tenant is in a national cloud.',
        kind: text(),
        when: usesOAuth,
      },
      {
        path: 'upstream.graphUrl',
        label: 'Graph address',
        help: 'https://graph.microsoft.com unless your tenant is in a national cloud.',
        kind: text(),
        when: isGraph,
      },
      {
        path: 'upstream.sendAs',
        label: 'Send as',
        help: "The mailbox itself, or the device's From address (needs Send As rights).",
        kind: select(['mailbox', 'The mailbox'], ['from', "The message's From address"]),
        when: isGraph,
      },
      {
        path: 'upstream.saveToSentItems',
        label: 'Keep a copy in Sent Items',
        help: 'Graph only.',
        kind: { type: 'checkbox' },
        when: isGraph,
      },
      {
        path: 'upstream.caFile',
        label: 'Extra trusted certificate',
        help: 'Full path of a PEM file, for a server with a private certificate authority. Usually empty.',
        kind: text(true),
        when: isSmtp,
      },
      {
        path: 'upstream.heloName',
        label: 'Name in EHLO',
        help: "Empty uses this computer's name.",
        kind: text(true),
        when: isSmtp,
      },
      {
        path: 'upstream.maxConnections',
        label: 'Connections at once',
        help: 'Microsoft 365 allows 3 per mailbox.',
        kind: number,
      },
      {
        path: 'upstream.messagesPerMinute',
        label: 'Messages per minute',
        help: 'Microsoft 365 allows 30 per mailbox.',
        kind: number,
      },
      {
        path: 'upstream.maxMessageBytes',
        label: 'Largest message the upstream takes (bytes)',
        help: '36700160 (35 MB) for a Microsoft 365 mailbox.',
        kind: number,
      },
      {
        path: 'upstream.timeoutSeconds',
        label: 'Reply timeout (seconds)',
        help: 'How long to wait for any one reply of the server.',
        kind: number,
      },
    ],
  },
  {
    id: 'sender',
    title: 'Sender address',
    fields: [
      {
        path: 'sender.mode',
        label: 'From address',
        help: "Keep the device's address (needs Send As rights) or rewrite it to the mailbox.",
        kind: select(['keep', "Keep the device's address"], ['rewrite', 'Rewrite to the mailbox']),
      },
    ],
  },
  {
    id: 'limits',
    title: 'Limits for devices',
    fields: [
      {
        path: 'limits.maxMessageBytes',
        label: 'Largest message (bytes)',
        help: 'Bigger messages are refused with 552.',
        kind: number,
      },
      {
        path: 'limits.maxRecipients',
        label: 'Recipients per message',
        help: 'Microsoft 365 takes 500.',
        kind: number,
      },
      {
        path: 'limits.maxConnectionsPerClient',
        label: 'Connections per device',
        help: 'The next one is told to try again later.',
        kind: number,
      },
      {
        path: 'limits.maxConnections',
        label: 'Connections in all',
        help: 'All devices together.',
        kind: number,
      },
      {
        path: 'limits.idleTimeoutSeconds',
        label: 'Idle timeout (seconds)',
        help: 'A device silent this long is disconnected.',
        kind: number,
      },
    ],
  },
  {
    id: 'queue',
    title: 'Retries',
    fields: [
      {
        path: 'queue.retryForHours',
        label: 'Keep trying for (hours)',
        help: 'After this a message that keeps being deferred fails.',
        kind: number,
      },
      {
        path: 'queue.minRetrySeconds',
        label: 'First retry after (seconds)',
        help: 'Doubles per attempt.',
        kind: number,
      },
      {
        path: 'queue.maxRetrySeconds',
        label: 'Longest wait between retries (seconds)',
        help: 'The doubling stops here.',
        kind: number,
      },
    ],
  },
  {
    id: 'lanTls',
    title: 'Devices: encryption and sign-in',
    fields: [
      {
        path: 'lanTls.certFile',
        label: 'Certificate file',
        help: 'PEM; empty uses a self-signed certificate made on first start.',
        kind: text(true),
      },
      {
        path: 'lanTls.keyFile',
        label: 'Private key file',
        help: 'PEM, with the certificate.',
        kind: text(true),
      },
      {
        path: 'lanTls.allowLegacyTls',
        label: 'Allow TLS 1.0 and 1.1 from old devices',
        help: 'Towards the upstream RelayDesk always uses TLS 1.2 or later.',
        kind: { type: 'checkbox' },
      },
      {
        path: 'lanAuth.mode',
        label: 'Device sign-in',
        help: 'Ignore: trust is by address. Check: verify the device users listed below (or added with `relaydesk lan-user add`).',
        kind: select(['ignore', 'Ignore (trust by address)'], ['check', 'Check user and password']),
      },
    ],
  },
  {
    id: 'alerts',
    title: 'Alerts',
    fields: [
      {
        path: 'alerts.email',
        label: 'Admin address for alerts',
        help: 'Alerts are mailed here through the upstream while it works (docs/alerts.md). Empty: none.',
        kind: text(true),
      },
      {
        path: 'alerts.webhookUrl',
        label: 'Webhook',
        help: 'A Teams or Slack incoming webhook, or your own receiver (https). Empty: none.',
        kind: text(true),
      },
      {
        path: 'alerts.webhookFormat',
        label: 'Webhook format',
        kind: select(['json', 'JSON'], ['teams', 'Microsoft Teams'], ['slack', 'Slack']),
      },
      {
        path: 'alerts.queueAgeMinutes',
        label: 'Alert when mail waits longer than (minutes)',
        kind: number,
      },
      {
        path: 'alerts.digest',
        label: 'How often',
        kind: select(['off', 'Each alert as it happens'], ['daily', 'One summary a day']),
      },
      {
        path: 'alerts.digestHour',
        label: 'Summary at (hour, 0-23)',
        kind: number,
        when: (get) => get('alerts.digest') === 'daily',
      },
      {
        path: 'alerts.senderNotices',
        label: 'Tell the sender when a message fails for good',
        help: "A non-delivery notice to the device's sender address, as IIS SMTP sent.",
        kind: { type: 'checkbox' },
      },
    ],
  },
];
