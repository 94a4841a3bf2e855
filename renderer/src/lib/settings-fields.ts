/**
 * Every config field the Settings page edits, grouped in the sections the page shows (and its
 * in-page navigation lists), with plain labels and the help text shown under each input. The config
 * keys stay as they are: only what the admin reads changes.
 */
export type Get = (path: string) => unknown;

export type FieldKind =
  | { type: 'text'; nullable?: boolean }
  | { type: 'number' }
  /** Stored in bytes, shown and typed in MB (1 MB = 1,048,576 bytes, as docs/configuration.md counts). */
  | { type: 'megabytes' }
  | { type: 'select'; options: readonly { value: string; label: string }[] }
  | { type: 'checkbox' };

/**
 * Controls with a component of their own (a list, a secret, a sign-in). `path` is the config path
 * (or the name advice uses, such as `upstream.password`), which gives the control's element id.
 */
export type CustomControl =
  'allowedClients' | 'extraListeners' | 'senderByClient' | 'secret' | 'microsoftSignIn' | 'lanUsers';

interface ItemBase {
  path: string;
  label: string;
  help?: string;
  /** Shown only when this holds for the draft. */
  when?: (get: Get) => boolean;
}

export interface SettingsField extends ItemBase {
  kind: FieldKind;
}

export interface CustomItem extends ItemBase {
  custom: CustomControl;
}

export type SettingsItem = SettingsField | CustomItem;

export interface SettingsSection {
  id: string;
  title: string;
  /** One sentence under the heading: what this section is for. */
  intro?: string;
  items: SettingsItem[];
}

export const MEGABYTE = 1024 * 1024;

const text = (nullable = false): FieldKind => ({ type: 'text', nullable });
const number: FieldKind = { type: 'number' };
const megabytes: FieldKind = { type: 'megabytes' };
const checkbox: FieldKind = { type: 'checkbox' };
export const select = (...options: [string, string][]): FieldKind => ({
  type: 'select',
  options: options.map(([value, label]) => ({ value, label })),
});

/** The relay's config has this key (the window may meet an older relay). */
const present = (path: string) => (get: Get) => get(path) !== undefined;
const isGraph = (get: Get) => get('upstream.type') === 'graph';
const isSmtp = (get: Get) => !isGraph(get);
const usesOAuth = (get: Get) => isGraph(get) || get('upstream.auth') === 'oauth2';
const delegated = (get: Get) => usesOAuth(get) && get('upstream.oauth2.grant') === 'delegated';
const usesPassword = (get: Get) => isSmtp(get) && get('upstream.auth') === 'password';
const usesClientSecret = (get: Get) => usesOAuth(get) && !delegated(get);

/** The sections shown open, in order. */
export const SETTINGS_SECTIONS: SettingsSection[] = [
  {
    id: 'devices',
    title: 'Devices',
    intro: 'Where the printers, scanners and programs send their mail, and which of them may.',
    items: [
      {
        path: 'listen.host',
        label: 'Accept mail on',
        help: '0.0.0.0 for every network of this computer, 127.0.0.1 for this computer only, or one of its addresses.',
        kind: text(),
      },
      {
        path: 'listen.port',
        label: 'Port the devices send to',
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
          ['implicit', 'Encrypted from the start (port 465)'],
        ),
      },
      { path: 'allowedClients', label: 'Allowed devices', custom: 'allowedClients' },
    ],
  },
  {
    id: 'upstream',
    title: 'Mail server',
    intro: 'Where RelayDesk delivers the mail, and how it signs in there.',
    items: [
      {
        path: 'upstream.preset',
        label: 'Provider',
        help: 'Fills in the server, port, encryption and limits of a known provider.',
        kind: select(
          ['microsoft365', 'Microsoft 365'],
          ['microsoft365-hve', 'Microsoft 365 High Volume Email'],
          ['microsoft365-direct-send', 'Microsoft 365 Direct Send'],
          ['google', 'Google Workspace / Gmail'],
          ['custom', 'Other mail server'],
        ),
      },
      {
        path: 'upstream.type',
        label: 'Send with',
        help: 'SMTP for every provider; Microsoft Graph sends through the Graph API instead (Microsoft sign-in only).',
        kind: select(['smtp', 'SMTP'], ['graph', 'Microsoft Graph']),
      },
      {
        path: 'upstream.host',
        label: 'Mail server address',
        help: 'smtp.office365.com for Microsoft 365.',
        kind: text(),
        when: isSmtp,
      },
      {
        path: 'upstream.port',
        label: 'Mail server port',
        help: '587 with STARTTLS, 465 with encryption from the start.',
        kind: number,
        when: isSmtp,
      },
      {
        path: 'upstream.security',
        label: 'Encryption',
        help: 'A password or token is never sent unencrypted.',
        kind: select(
          ['starttls', 'STARTTLS'],
          ['tls', 'Encrypted from the start'],
          ['none', 'None (a server on this computer only)'],
        ),
        when: isSmtp,
      },
      {
        path: 'upstream.auth',
        label: 'How RelayDesk signs in',
        help: "The mailbox's password, a Microsoft sign-in (OAuth 2.0), or none (Direct Send).",
        kind: select(
          ['password', 'Password'],
          ['oauth2', 'Microsoft sign-in (OAuth 2.0)'],
          ['none', 'No sign-in'],
        ),
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
        label: 'Mailbox that sends',
        help: 'The mailbox Microsoft Graph sends from.',
        kind: text(true),
        when: isGraph,
      },
      { path: 'upstream.password', label: 'Password', custom: 'secret', when: usesPassword },
      {
        path: 'upstream.oauth2.grant',
        label: 'Microsoft sign-in',
        help: "The mailbox's user signs in once, or an app signs in with its own client secret.",
        kind: select(
          ['delegated', 'Sign in with Microsoft (user)'],
          ['client_credentials', 'App with a client secret'],
        ),
        when: usesOAuth,
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
      { path: 'upstream.oauth', label: 'Sign in with Microsoft', custom: 'microsoftSignIn', when: delegated },
      { path: 'upstream.clientSecret', label: 'Client secret', custom: 'secret', when: usesClientSecret },
      {
        path: 'upstream.sendAs',
        label: 'Send from',
        help: "The mailbox itself, or the mailbox in the message's From address (needs Send As rights).",
        kind: select(['mailbox', 'The mailbox'], ['from', "The message's From address"]),
        when: isGraph,
      },
      {
        path: 'upstream.saveToSentItems',
        label: 'Keep a copy in Sent Items',
        help: "In the sending mailbox's Sent Items folder.",
        kind: checkbox,
        when: isGraph,
      },
    ],
  },
  {
    id: 'sender',
    title: 'Sender address',
    intro: 'Microsoft 365 refuses mail from an address the mailbox may not send as (5.7.60 SendAsDenied).',
    items: [
      {
        path: 'sender.mode',
        label: 'Mail comes from',
        help: "Each device's own address needs Send As permission for the mailbox on those addresses; the mailbox's address always works.",
        kind: select(
          ['keep', "Each device's own From address"],
          ['rewrite', "The mailbox's address, for every device"],
        ),
      },
      {
        path: 'sender.byClient',
        label: 'Sender per device (optional)',
        help: 'A fixed sender for a device, whatever it writes: one per line as device = address, e.g. 10.100.102.3 = fax@contoso.com.',
        custom: 'senderByClient',
      },
    ],
  },
  {
    id: 'limits',
    title: 'Limits',
    intro: 'How much RelayDesk takes from devices and sends to the mail server.',
    items: [
      {
        path: 'limits.maxMessageBytes',
        label: 'Largest message a device may send (MB)',
        help: 'Bigger messages are refused at once, so the device reports it.',
        kind: megabytes,
      },
      {
        path: 'upstream.maxMessageBytes',
        label: 'Largest message the mail server takes (MB)',
        help: '35 MB for a Microsoft 365 mailbox.',
        kind: megabytes,
      },
      {
        path: 'limits.maxRecipients',
        label: 'Recipients per message',
        help: 'Microsoft 365 takes 500.',
        kind: number,
      },
      {
        path: 'upstream.messagesPerMinute',
        label: 'Messages sent per minute',
        help: 'Microsoft 365 allows 30 per mailbox; RelayDesk waits rather than send faster.',
        kind: number,
      },
      {
        path: 'upstream.maxConnections',
        label: 'Connections to the mail server at once',
        help: 'Microsoft 365 allows 3 per mailbox.',
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
        label: 'Connections from all devices',
        help: 'All allowed devices together.',
        kind: number,
      },
    ],
  },
  {
    id: 'queue',
    title: 'Retries',
    intro: 'Mail the server defers is tried again, with longer waits each time.',
    items: [
      {
        path: 'queue.retryForHours',
        label: 'Keep trying for (hours)',
        help: 'After this a message that keeps being deferred fails and is reported.',
        kind: number,
      },
      {
        path: 'queue.minRetrySeconds',
        label: 'First retry after (seconds)',
        help: 'The wait doubles with each attempt.',
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
    id: 'signin',
    title: 'Device sign-in',
    intro: 'For devices that insist on a user name and password before they send.',
    items: [
      {
        path: 'lanAuth.mode',
        label: 'Device user names and passwords',
        help: 'Ignore: any user name is accepted, trust is by address. Check: only the device users listed below.',
        kind: select(['ignore', 'Ignore (trust by address)'], ['check', 'Check user and password']),
      },
      {
        path: 'lanAuth.users',
        label: 'Device users',
        custom: 'lanUsers',
        when: (get) => get('lanAuth.mode') === 'check',
      },
    ],
  },
  {
    id: 'alerts',
    title: 'Alerts',
    intro: 'Tell someone when mail is stuck, in Teams, Slack or your own receiver.',
    items: [
      {
        path: 'alerts.webhookUrl',
        label: 'Send alerts to (web address)',
        help: 'A Teams or Slack incoming webhook, starting with https://. Empty sends no alerts.',
        kind: text(true),
      },
      {
        path: 'alerts.webhookFormat',
        label: 'Alert format',
        kind: select(['json', "RelayDesk's own (JSON)"], ['teams', 'Microsoft Teams'], ['slack', 'Slack']),
      },
      {
        path: 'alerts.queueAgeMinutes',
        label: 'Alert when mail has waited (minutes)',
        help: 'The oldest message still waiting in the queue.',
        kind: number,
      },
      // Alerts by mail (issue 16) arrive with a newer relay: each shows once the relay's config has it.
      {
        path: 'alerts.email',
        label: 'Also mail alerts to',
        help: 'An address that gets each alert by mail, sent through the mail server above. Empty sends none.',
        kind: text(true),
        when: present('alerts.email'),
      },
      {
        path: 'alerts.digest',
        label: 'Send alerts',
        kind: select(['off', 'As they happen'], ['daily', 'As one summary a day']),
        when: present('alerts.digest'),
      },
      {
        path: 'alerts.digestHour',
        label: 'Daily summary at (hour, 0 to 23)',
        kind: number,
        when: (get) => present('alerts.digestHour')(get) && get('alerts.digest') === 'daily',
      },
      {
        path: 'alerts.senderNotices',
        label: 'Tell the sender when a message cannot be delivered',
        help: 'A delivery failure notice to the address the device sent from, as IIS sent one.',
        kind: checkbox,
        when: present('alerts.senderNotices'),
      },
    ],
  },
];

/** Rarely changed: shown in a closed "Advanced" section. */
export const ADVANCED_SECTION: SettingsSection = {
  id: 'advanced',
  title: 'Advanced',
  intro: 'Rarely needed. Leave these as they are unless a device or your network needs otherwise.',
  items: [
    {
      path: 'extraListeners',
      label: 'More ports (optional)',
      help: 'For a device that must use another port: one per line as address:port and none, starttls or implicit, e.g. 0.0.0.0:2525 none.',
      custom: 'extraListeners',
    },
    {
      path: 'allowWideClientRanges',
      label: 'Allow very large address ranges in Allowed devices',
      help: 'Ranges wider than 10.0.0.0/8 are refused unless this is on: every address in them could send mail as your mailbox.',
      kind: checkbox,
    },
    {
      path: 'lanTls.certFile',
      label: 'Certificate file for devices',
      help: 'Full path of a PEM file; empty uses a certificate RelayDesk makes on first start.',
      kind: text(true),
    },
    {
      path: 'lanTls.keyFile',
      label: 'Private key file for that certificate',
      help: 'Full path of a PEM file.',
      kind: text(true),
    },
    {
      path: 'lanTls.allowLegacyTls',
      label: 'Allow old encryption (TLS 1.0 and 1.1) from old devices',
      help: 'Towards the mail server RelayDesk always uses TLS 1.2 or later.',
      kind: checkbox,
    },
    {
      path: 'upstream.caFile',
      label: 'Extra trusted certificate',
      help: 'Full path of a PEM file, for a mail server with a private certificate authority. Usually empty.',
      kind: text(true),
      when: isSmtp,
    },
    {
      path: 'upstream.heloName',
      label: 'Name this computer gives the mail server',
      help: "Sent when RelayDesk greets the server (EHLO). Empty uses this computer's name.",
      kind: text(true),
      when: isSmtp,
    },
    {
      path: 'upstream.timeoutSeconds',
      label: 'Wait for the mail server (seconds)',
      help: 'How long to wait for any one reply of the server.',
      kind: number,
    },
    {
      path: 'upstream.oauth2.authorityUrl',
      label: 'Microsoft sign-in address',
      help: 'https://login.microsoftonline.com unless your tenant is in a national cloud.',
      kind: text(),
      when: usesOAuth,
    },
    {
      path: 'upstream.oauth2.tokenUrl',
      label: 'Token address',
      help: 'Leave as is unless your tenant is in a national cloud.',
      kind: text(),
      when: usesOAuth,
    },
    {
      path: 'upstream.graphUrl',
      label: 'Microsoft Graph address',
      help: 'https://graph.microsoft.com unless your tenant is in a national cloud.',
      kind: text(),
      when: isGraph,
    },
    {
      path: 'limits.idleTimeoutSeconds',
      label: 'Disconnect a silent device after (seconds)',
      help: 'Also the longest one command may take to arrive.',
      kind: number,
    },
    {
      path: 'limits.sessionTimeoutSeconds',
      label: 'Longest connection (seconds)',
      help: 'A device is then asked to connect again; a message under way is finished first.',
      kind: number,
    },
    {
      path: 'limits.minDataBytesPerSecond',
      label: 'Slowest a message may arrive (bytes per second)',
      help: 'A device sending slower than this on average is disconnected.',
      kind: number,
    },
    {
      path: 'limits.maxUnlistedConnections',
      label: 'Connections from unknown computers, all together',
      help: 'Computers not in Allowed devices have this budget of their own and never take a device’s place.',
      kind: number,
    },
    {
      path: 'limits.maxConnectionsPerUnlistedClient',
      label: 'Connections from one unknown computer',
      kind: number,
    },
    {
      path: 'pickup.dir',
      label: 'Pickup folder',
      help: 'Programs that wrote mail files for IIS can drop them here; empty turns it off. Full path of a folder.',
      kind: text(true),
    },
    {
      path: 'pickup.badmailDir',
      label: 'Folder for files that cannot be sent',
      help: 'Empty uses Badmail beside the pickup folder, as IIS had it.',
      kind: text(true),
      when: (get) => get('pickup.dir') !== null && get('pickup.dir') !== '',
    },
    {
      path: 'pickup.settleSeconds',
      label: 'Take a file once unchanged for (seconds)',
      help: 'Raise it for a program that pauses while writing, or a network share.',
      kind: number,
      when: (get) => get('pickup.dir') !== null && get('pickup.dir') !== '',
    },
  ],
};

export const ALL_SECTIONS: SettingsSection[] = [...SETTINGS_SECTIONS, ADVANCED_SECTION];

export function isCustom(item: SettingsItem): item is CustomItem {
  return 'custom' in item;
}

/** The item a config path belongs to (the longest item path it starts with), and its section. */
export function itemFor(path: string): { item: SettingsItem; section: SettingsSection } | null {
  let best: { item: SettingsItem; section: SettingsSection } | null = null;
  for (const section of ALL_SECTIONS) {
    for (const item of section.items) {
      const matches =
        path === item.path || path.startsWith(`${item.path}.`) || path.startsWith(`${item.path}[`);
      if (matches && (!best || item.path.length > best.item.path.length)) best = { item, section };
    }
  }
  if (best) return best;
  // A problem with a whole group (`upstream.oauth2`) belongs to the group's first item.
  for (const section of ALL_SECTIONS) {
    const item = section.items.find((candidate) => candidate.path.startsWith(`${path}.`));
    if (item) return { item, section };
  }
  return null;
}

/** Bytes shown as MB: whole numbers stay whole, others keep up to three decimals. */
export function bytesToMegabytes(bytes: number): string {
  return String(Math.round((bytes / MEGABYTE) * 1000) / 1000);
}

/** The validator counts bytes; a field typed in MB says its range in MB. */
export function megabyteMessage(message: string): string {
  return message.replace(/^must be an integer from (\d+) to (\d+)(?: \(.*\))?$/, (_all, min, max) => {
    return `must be from ${bytesToMegabytes(Number(min))} to ${bytesToMegabytes(Number(max))} MB`;
  });
}

/** What the admin calls the setting a problem is about: its label, or the config path when none fits. */
export function settingLabel(path: string): string {
  return itemFor(path)?.item.label ?? path;
}
