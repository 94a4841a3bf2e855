/**
 * The shape of RelayDesk's config file (JSON). The keys in `listen`, `allowedClients`, `upstream`
 * (host, port, security, auth, user, caFile, maxConnections, messagesPerMinute, preset, oauth2, type,
 * mailbox, graphUrl, sendAs, saveToSentItems), `limits`, `queue`, `sender` and `pickup` are a public contract:
 * add to them, never rename or remove.
 */

export type ListenerTls = 'none' | 'starttls' | 'implicit';

export interface ListenerConfig {
  host: string;
  port: number;
  /** `none`: plain only; `starttls`: plain, STARTTLS offered; `implicit`: TLS from the first byte (465). */
  tls: ListenerTls;
}

export type UpstreamSecurity = 'starttls' | 'tls' | 'none';
export type UpstreamAuth = 'password' | 'oauth2' | 'none';
export type UpstreamPreset =
  'microsoft365' | 'microsoft365-hve' | 'microsoft365-direct-send' | 'google' | 'custom';

/**
 * `client_credentials`: app-only, the app's own client secret (SMTP.SendAsApp / Mail.Send application
 * permission). `delegated`: a user signs in once (`relaydesk signin`), RelayDesk keeps the refresh token
 * in the OS keychain and sends as that user (SMTP.Send / Mail.Send delegated permission).
 */
export type OAuth2Grant = 'client_credentials' | 'delegated';

export interface OAuth2Config {
  /** Directory (tenant) ID or domain; `organizations` (any work account) for delegated sign-in only. */
  tenant: string;
  clientId: string;
  grant: OAuth2Grant;
  /** The sign-in host: https://login.microsoftonline.com, or a national cloud's (login.microsoftonline.us). */
  authorityUrl: string;
  /** Defaults to {authorityUrl}/{tenant}/oauth2/v2.0/token */
  tokenUrl: string;
}

export interface UpstreamConfig {
  type: 'smtp' | 'graph';
  preset: UpstreamPreset;
  host: string;
  port: number;
  security: UpstreamSecurity;
  auth: UpstreamAuth;
  /** The mailbox that authenticates (SMTP AUTH user, XOAUTH2 `user=`). */
  user: string | null;
  /** Extra trusted CA (PEM file path) for private smart hosts and tests. */
  caFile: string | null;
  maxConnections: number;
  messagesPerMinute: number;
  /** The largest message the upstream takes, in bytes (35 MB for a Microsoft 365 mailbox). */
  maxMessageBytes: number;
  oauth2: OAuth2Config | null;
  /** Graph upstream only. */
  mailbox: string | null;
  graphUrl: string;
  sendAs: 'mailbox' | 'from';
  saveToSentItems: boolean;
  /** Seconds to wait for any one upstream reply. */
  timeoutSeconds: number;
  /** The name RelayDesk gives in EHLO; defaults to the computer's host name. */
  heloName: string | null;
}

export interface LimitsConfig {
  maxMessageBytes: number;
  maxRecipients: number;
  /** Simultaneous LAN connections from one IP; the next gets 421 4.7.0. */
  maxConnectionsPerClient: number;
  /** All LAN connections together. */
  maxConnections: number;
  /** Seconds a LAN client may stay silent between commands, and mid-DATA; also what one command line may take. */
  idleTimeoutSeconds: number;
  /** Connections from clients outside allowedClients, all together: a budget apart from the devices'. */
  maxUnlistedConnections: number;
  /** Connections from one client outside allowedClients. */
  maxConnectionsPerUnlistedClient: number;
  /** The slowest average DATA rate a LAN client may keep up after its first idleTimeoutSeconds. */
  minDataBytesPerSecond: number;
  /** The longest a LAN session may last; a message under way is finished first. */
  sessionTimeoutSeconds: number;
}

export interface QueueConfig {
  retryForHours: number;
  /** First retry delay after a transient failure; doubles per attempt up to maxRetrySeconds. */
  minRetrySeconds: number;
  maxRetrySeconds: number;
}

export interface SenderConfig {
  /** `keep`: relay From as is; `rewrite`: envelope sender and header From become the mailbox. */
  mode: 'keep' | 'rewrite';
  /** Per device (IP or CIDR) sender address. */
  byClient: Record<string, string>;
}

export interface LanAuthUser {
  user: string;
  /** scrypt hash as written by `relaydesk lan-user add` (never a plain password). */
  passwordHash: string;
}

export interface LanAuthConfig {
  /** `ignore`: any AUTH succeeds, trust is by IP (default); `check`: credentials are verified against `users`. */
  mode: 'ignore' | 'check';
  users: LanAuthUser[];
}

export interface LanTlsConfig {
  /** PEM paths; null means a self-signed certificate generated on first run in the data folder. */
  certFile: string | null;
  keyFile: string | null;
  /** Admit TLS 1.0/1.1 from old devices on the LAN side. Upstream always stays TLS 1.2+. */
  allowLegacyTls: boolean;
}

/** IIS's Pickup and Badmail folders: programs drop message files in, RelayDesk queues them. */
export interface PickupConfig {
  /** Absolute path of the folder programs write message files into; null: no pickup folder. */
  dir: string | null;
  /** Where a file that cannot be sent goes, with a `.reason` file; null: `Badmail` beside `dir`, as IIS had it. */
  badmailDir: string | null;
  /** How long a file must stay unchanged (size and time) before it is taken: the writer is done. */
  settleSeconds: number;
}

export type AlertsWebhookFormat = 'json' | 'teams' | 'slack';

export type AlertsDigest = 'off' | 'daily';

export interface AlertsConfig {
  /** Where alerts are POSTed: https://, or http:// to a loopback receiver; null turns webhook alerts off. */
  webhookUrl: string | null;
  /** `json`: RelayDesk's own shape; `teams` and `slack`: what their incoming webhooks take. */
  webhookFormat: AlertsWebhookFormat;
  /** The oldest queued message waiting longer than this raises a `queue-age` alert. */
  queueAgeMinutes: number;
  /** The admin's address: alerts are also mailed there through the upstream; null: no mail alerts. */
  email: string | null;
  /** A message that failed for good earns its sender a delivery status notification, as IIS's NDR did. */
  senderNotices: boolean;
  /** `daily`: one summary a day at `digestHour` instead of each alert as it happens. */
  digest: AlertsDigest;
  /** The local hour (0-23) the daily digest goes out. */
  digestHour: number;
}

export interface RelayConfig {
  listen: ListenerConfig;
  /** Further listeners beside `listen` (for example 2525, or 465 with implicit TLS). */
  extraListeners: ListenerConfig[];
  allowedClients: string[];
  /** Accept `allowedClients` ranges wider than one IPv4 /8 or IPv6 /32. Default false. */
  allowWideClientRanges: boolean;
  upstream: UpstreamConfig;
  limits: LimitsConfig;
  queue: QueueConfig;
  sender: SenderConfig;
  lanAuth: LanAuthConfig;
  lanTls: LanTlsConfig;
  pickup: PickupConfig;
  alerts: AlertsConfig;
}

/** One problem in a config file, named by its field path (`upstream.port`). */
export interface ConfigProblem {
  path: string;
  message: string;
}
