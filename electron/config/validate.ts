/**
 * Turns the parsed JSON of a config file into a complete RelayConfig and the list of everything wrong
 * with it. Every problem is reported, each by its field path, so an admin fixes the file in one pass;
 * a refused value falls back to the preset or the default, so a UI can still show the whole config.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { defaultConfig } from './defaults.ts';
import { rangeWidth } from './client-range.ts';
import { isLanPasswordHash, lanUserNameProblem } from './lan-users.ts';
import { isLoopbackHost } from './loopback.ts';
import { applyPreset, PRESET_NAMES } from './presets.ts';
import type {
  AlertsConfig,
  ConfigProblem,
  LanAuthConfig,
  LanAuthUser,
  LanTlsConfig,
  LimitsConfig,
  ListenerConfig,
  OAuth2Config,
  PickupConfig,
  QueueConfig,
  RelayConfig,
  SenderConfig,
  UpstreamConfig,
} from './types.ts';

export interface ParsedConfig {
  config: RelayConfig;
  problems: ConfigProblem[];
}

type JsonObject = Record<string, unknown>;

interface IntegerRange {
  min: number;
  max: number;
  /** Added to the message in parentheses, e.g. `1 KB to 150 MB`. */
  hint?: string;
}

const PORT: IntegerRange = { min: 1, max: 65535 };
/** Exchange Online advertises SIZE 157286400: 150 MB is the largest message any mailbox can send. */
const MESSAGE_BYTES: IntegerRange = { min: 1024, max: 150 * 1024 * 1024, hint: '1 KB to 150 MB' };

const LISTENER_KEYS = ['host', 'port', 'tls'] as const;
const OAUTH2_KEYS = ['tenant', 'clientId', 'grant', 'authorityUrl', 'tokenUrl'] as const;
const OAUTH2_GRANTS = ['client_credentials', 'delegated'] as const;
const LAN_USER_KEYS = ['user', 'passwordHash'] as const;

const LISTENER_TLS = ['none', 'starttls', 'implicit'] as const;
const UPSTREAM_TYPES = ['smtp', 'graph'] as const;
const UPSTREAM_SECURITY = ['starttls', 'tls', 'none'] as const;
const UPSTREAM_AUTH = ['password', 'oauth2', 'none'] as const;
const SEND_AS = ['mailbox', 'from'] as const;
const SENDER_MODES = ['keep', 'rewrite'] as const;
const LAN_AUTH_MODES = ['ignore', 'check'] as const;
const WEBHOOK_FORMATS = ['json', 'teams', 'slack'] as const;
const ALERT_DIGESTS = ['off', 'daily'] as const;

/** Key names that hold a secret, compared lower-case without `_` or `-`. */
const SECRET_KEYS = new Set([
  'password',
  'passwd',
  'pass',
  'pwd',
  'secret',
  'clientsecret',
  'apppassword',
  'token',
  'accesstoken',
  'refreshtoken',
  'apikey',
]);

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every field path of the schema, for "did you mean" when a key sits in the wrong section. */
const SCHEMA_PATHS: string[] = (() => {
  const defaults = defaultConfig();
  const paths: string[] = [];
  for (const [section, value] of Object.entries(defaults)) {
    paths.push(section);
    if (isObject(value)) for (const key of Object.keys(value)) paths.push(`${section}.${key}`);
  }
  paths.push(...OAUTH2_KEYS.map((key) => `upstream.oauth2.${key}`));
  return paths;
})();

export const DEFAULT_AUTHORITY_URL = 'https://login.microsoftonline.com';

/** Tenants that name no one directory: a user of any work tenant signs in, so only delegated sign-in fits. */
const MULTI_TENANT = new Set(['organizations', 'common']);

export function defaultTokenUrl(tenant: string, authorityUrl = DEFAULT_AUTHORITY_URL): string {
  return `${authorityUrl.replace(/\/+$/, '')}/${tenant}/oauth2/v2.0/token`;
}

/** `upstream` + `port` → `upstream.port`; a key that is not an identifier is quoted: `x["max-size"]`. */
function childPath(parent: string, key: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

/** Map keys are data (IP addresses), always quoted: `sender.byClient["10.0.0.5"]`. */
function mapKeyPath(parent: string, key: string): string {
  return `${parent}[${JSON.stringify(key)}]`;
}

function quoteAll(values: readonly string[]): string {
  return values.map((value) => `'${value}'`).join(', ');
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length]!;
}

function looseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** The known key `key` was probably meant to be: a typo in this object, or the same name in another section. */
function suggestKey(key: string, objectPath: string, known: readonly string[]): string | null {
  const loose = looseKey(key);
  let nearMiss: string | undefined;
  let nearest = Infinity;
  for (const candidate of known) {
    const distance = looseKey(candidate) === loose ? 0 : editDistance(candidate, key);
    if (distance <= (candidate.length <= 4 ? 1 : 2) && distance < nearest) {
      nearMiss = candidate;
      nearest = distance;
    }
  }
  if (nearMiss !== undefined) return childPath(objectPath, nearMiss);
  const elsewhere = SCHEMA_PATHS.filter((schemaPath) => looseKey(schemaPath.split('.').at(-1)!) === loose);
  return elsewhere.length > 0 ? elsewhere.join(' or ') : null;
}

function secretAdvice(objectPath: string): string {
  if (objectPath.startsWith('lanAuth.')) {
    return (
      'a plain password never goes in the config file: remove it and add the user with ' +
      '`relaydesk lan-user add`, which stores only a passwordHash'
    );
  }
  return (
    'secrets never go in the config file: remove this key, then store the secret in the OS keychain with ' +
    '`relaydesk password set`, or give it to the relay in the environment variable ' +
    'RELAYDESK_UPSTREAM_PASSWORD (password) or RELAYDESK_CLIENT_SECRET (OAuth 2.0 client secret)'
  );
}

class Problems {
  readonly list: ConfigProblem[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }

  has(path: string): boolean {
    return this.list.some((problem) => problem.path === path);
  }

  /** For "must be set" checks: when the file's value was already refused, one problem says enough. */
  addUnlessReported(path: string, message: string): void {
    if (!this.has(path)) this.add(path, message);
  }
}

/** Problem message for a value, or null when it is fine. */
type Check<T> = (value: T) => string | null;

/** One JSON object of the file, read field by field; a refused or missing field yields its fallback. */
class Section {
  private constructor(
    private readonly values: JsonObject,
    readonly path: string,
    private readonly problems: Problems,
  ) {}

  /** `raw` is the value at `path`; undefined (the file omits it) reads as an empty object. */
  static open(raw: unknown, path: string, known: readonly string[], problems: Problems): Section {
    if (raw === undefined) return new Section({}, path, problems);
    if (!isObject(raw)) {
      problems.add(path, 'must be an object ({ ... })');
      return new Section({}, path, problems);
    }
    for (const key of Object.keys(raw)) {
      if (known.includes(key)) continue;
      const keyPath = childPath(path, key);
      if (SECRET_KEYS.has(looseKey(key))) {
        problems.add(keyPath, secretAdvice(path));
        continue;
      }
      const suggestion = suggestKey(key, path, known);
      problems.add(keyPath, `unknown setting${suggestion ? `; did you mean ${suggestion}?` : ''}`);
    }
    return new Section(raw, path, problems);
  }

  has(key: string): boolean {
    return this.values[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.values[key];
  }

  pathOf(key: string): string {
    return childPath(this.path, key);
  }

  report(key: string, message: string): void {
    this.problems.add(this.pathOf(key), message);
  }

  integer(key: string, fallback: number, range: IntegerRange): number {
    const value = this.values[key];
    if (value === undefined) return fallback;
    if (typeof value === 'number' && Number.isInteger(value) && value >= range.min && value <= range.max) {
      return value;
    }
    this.report(
      key,
      `must be an integer from ${range.min} to ${range.max}${range.hint ? ` (${range.hint})` : ''}`,
    );
    return fallback;
  }

  text(key: string, fallback: string, check?: Check<string>): string {
    const value = this.values[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || value.trim() === '') {
      this.report(key, 'must be a non-empty string');
      return fallback;
    }
    const problem = value === value.trim() ? check?.(value) : 'must not start or end with spaces';
    if (problem) {
      this.report(key, problem);
      return fallback;
    }
    return value;
  }

  nullableText(key: string, fallback: string | null, check?: Check<string>): string | null {
    if (this.values[key] === null) return null;
    const value = this.text(key, fallback ?? '', check);
    return value === '' ? fallback : value;
  }

  choice<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.values[key];
    if (value === undefined) return fallback;
    const match = allowed.find((candidate) => candidate === value);
    if (match !== undefined) return match;
    const caseless =
      typeof value === 'string' ? allowed.find((candidate) => candidate === value.toLowerCase()) : undefined;
    this.report(
      key,
      `must be one of ${quoteAll(allowed)}${caseless !== undefined ? ` (did you mean '${caseless}'?)` : ''}`,
    );
    return fallback;
  }

  flag(key: string, fallback: boolean): boolean {
    const value = this.values[key];
    if (value === undefined) return fallback;
    if (typeof value === 'boolean') return value;
    this.report(key, 'must be true or false');
    return fallback;
  }
}

/**
 * A URL that carries a secret or a token: https only, except to this computer (a test server, a local
 * receiver). `example` and `loopbackUse` word the problem for the setting.
 */
function checkHttpsUrl(example: string, loopbackUse: string): Check<string> {
  return (value) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return `must be a URL such as ${example}`;
    }
    if (url.protocol === 'https:') return null;
    if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return null;
    return `must be an https:// URL (http:// is accepted only for ${loopbackUse})`;
  };
}

/** Token endpoints and Graph carry secrets and tokens. */
const checkServiceUrl = checkHttpsUrl('https://login.microsoftonline.com/...', 'a loopback test server');

function checkPemFile(kind: 'certificate' | 'private key'): Check<string> {
  return (file) => {
    // A service's working folder is not the config's folder (Windows services start in System32).
    if (!path.isAbsolute(file)) return 'must be an absolute path to a PEM file';
    let pem: string;
    try {
      if (!fs.statSync(file).isFile()) return `${file} is not a file`;
      pem = fs.readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return `${file} does not exist`;
      if (code === 'EACCES' || code === 'EPERM') return `${file} cannot be read (permission denied)`;
      return `${file} cannot be read (${code ?? 'unknown error'})`;
    }
    const marker =
      kind === 'certificate' ? /-----BEGIN CERTIFICATE-----/ : /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
    return marker.test(pem) ? null : `${file} does not contain a PEM ${kind} (-----BEGIN ...-----)`;
  };
}

/** Host names, user names and ids; file paths may hold spaces (`Application Support`, `Program Files`). */
const checkNoSpaces: Check<string> = (value) => (/\s/.test(value) ? 'must not contain spaces' : null);

const checkMailAddress: Check<string> = (value) =>
  /^[^\s@<>"]+@[^\s@<>"]+$/.test(value) ? null : 'must be a mail address such as john@contoso.com';

/** EHLO takes a domain or an address literal (RFC 5321 section 4.1.1.1). */
const checkHeloName: Check<string> = (value) =>
  /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(value) || /^\[[^\]]+\]$/.test(value)
    ? null
    : 'must be a host name such as relay.contoso.com, or an address literal such as [10.0.0.5]';

/** Microsoft accepts the directory (tenant) id or any of the tenant's domains. */
const checkTenant: Check<string> = (value) =>
  /^[A-Za-z0-9.-]+$/.test(value)
    ? null
    : 'must be the directory (tenant) ID or a domain such as contoso.onmicrosoft.com';

interface ClientRange {
  prefix: number | null;
}

/** An allowed-client or sender-map entry: one address, or a CIDR range. Returns a problem message on error. */
function parseClientRange(entry: string): ClientRange | string {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = net.isIP(address);
  if (family === 0) {
    const wildcard = /^((?:\d{1,3}\.){1,3})\*$/.exec(entry);
    if (wildcard) {
      const octets = wildcard[1]!.split('.').filter(Boolean);
      const network = [...octets, '0', '0', '0'].slice(0, 4).join('.');
      return `wildcards are not accepted: write ${network}/${octets.length * 8} for ${entry}`;
    }
    return 'must be an IPv4 or IPv6 address or a CIDR range such as 10.100.102.0/24 (host names are not accepted)';
  }
  // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; matching already uses their IPv4 form.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return `write the IPv4 form ${mapped[1]}${slash === -1 ? '' : '/...'} instead`;
  if (slash === -1) return { prefix: null };
  const maxPrefix = family === 4 ? 32 : 128;
  const prefixText = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
    return `the prefix length after / must be a whole number from 0 to ${maxPrefix} for an IPv${family} range`;
  }
  return { prefix: Number(prefixText) };
}

function readListener(
  raw: unknown,
  path: string,
  fallback: ListenerConfig,
  problems: Problems,
): ListenerConfig {
  const section = Section.open(raw, path, LISTENER_KEYS, problems);
  return {
    host: section.text('host', fallback.host, checkNoSpaces),
    port: section.integer('port', fallback.port, PORT),
    tls: section.choice('tls', LISTENER_TLS, fallback.tls),
  };
}

interface PlacedListener {
  path: string;
  listener: ListenerConfig;
}

/** Extra listeners must name their port; one that has any problem is left out of the result. */
function readExtraListeners(raw: unknown, fallback: ListenerConfig, problems: Problems): PlacedListener[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    problems.add(
      'extraListeners',
      'must be a list of listeners ([{ "host": ..., "port": ..., "tls": ... }])',
    );
    return [];
  }
  const placed: PlacedListener[] = [];
  raw.forEach((item, index) => {
    const path = `extraListeners[${index}]`;
    const before = problems.list.length;
    const listener = readListener(item, path, fallback, problems);
    if (isObject(item) && item.port === undefined) problems.add(`${path}.port`, 'must be set');
    if (problems.list.length === before) placed.push({ path, listener });
  });
  return placed;
}

/** Two listeners on one host and port cannot both bind: the later one is reported and left out. */
function withoutDuplicates(listeners: PlacedListener[], problems: Problems): PlacedListener[] {
  const firstByAddress = new Map<string, string>();
  return listeners.filter(({ path, listener }) => {
    const address = `${listener.host.toLowerCase()}:${listener.port}`;
    const first = firstByAddress.get(address);
    if (first === undefined) {
      firstByAddress.set(address, path);
      return true;
    }
    problems.add(path, `listens on ${listener.host} port ${listener.port}, like ${first}: use another port`);
    return false;
  });
}

/**
 * The allow-list. A range wider than one IPv4 /8 or IPv6 /32 needs `allowWideClientRanges`; one that
 * covers every address, or every IPv4 address, is refused whatever the flag says: it is an open relay.
 */
function readAllowedClients(
  raw: unknown,
  fallback: string[],
  allowWide: boolean,
  problems: Problems,
): string[] {
  if (raw === undefined) return fallback;
  if (!Array.isArray(raw)) {
    problems.add('allowedClients', 'must be a list of IP addresses or CIDR ranges (["10.100.102.2"])');
    return fallback;
  }
  const allowed: string[] = [];
  raw.forEach((entry, index) => {
    const path = `allowedClients[${index}]`;
    if (typeof entry !== 'string') {
      problems.add(path, 'must be a string: an IP address or a CIDR range');
      return;
    }
    const range = parseClientRange(entry);
    if (typeof range === 'string') {
      problems.add(path, range);
    } else if (range.prefix === 0) {
      problems.add(
        path,
        `${entry} matches every address: anyone who can reach RelayDesk could send mail through your ` +
          'mailbox (an open relay). List the devices, or their subnet such as 10.100.102.0/24',
      );
    } else {
      const width = range.prefix === null ? null : rangeWidth(entry.split('/')[0]!, range.prefix);
      if (width?.kind === 'every-ipv4') {
        problems.add(
          path,
          `${entry} ${width.description}: anyone who can reach RelayDesk over IPv4 could send mail ` +
            'through your mailbox (an open relay). List the devices, or their subnet such as 10.100.102.0/24',
        );
      } else if (width?.kind === 'wide' && !allowWide) {
        problems.add(
          path,
          `${entry} ${width.description}, more than one IPv4 /8 or IPv6 /32: list the devices or their ` +
            'subnet, or set "allowWideClientRanges": true if every one of those addresses may really relay',
        );
      } else {
        allowed.push(entry);
      }
    }
  });
  return allowed;
}

function readOAuth2(
  section: Section,
  fallback: OAuth2Config | null,
  problems: Problems,
): OAuth2Config | null {
  const raw = section.raw('oauth2');
  if (raw === undefined) return fallback;
  if (raw === null) return null;
  const oauth2 = Section.open(raw, section.pathOf('oauth2'), OAUTH2_KEYS, problems);
  if (!isObject(raw)) return fallback;
  const tenant = oauth2.text('tenant', '', checkTenant);
  const grant = oauth2.choice('grant', OAUTH2_GRANTS, 'client_credentials');
  const authorityUrl = oauth2
    .text('authorityUrl', DEFAULT_AUTHORITY_URL, checkAuthorityUrl)
    .replace(/\/+$/, '');
  if (grant === 'client_credentials' && MULTI_TENANT.has(tenant.toLowerCase())) {
    oauth2.report(
      'tenant',
      `'${tenant}' names no one tenant, and an app signs in to its own tenant only: give the directory ` +
        "(tenant) ID or domain, or use grant 'delegated' to let a user of any work tenant sign in",
    );
  }
  return {
    tenant,
    clientId: oauth2.text('clientId', '', checkNoSpaces),
    grant,
    authorityUrl,
    tokenUrl: oauth2.text('tokenUrl', defaultTokenUrl(tenant, authorityUrl), checkServiceUrl),
  };
}

/** Only the sign-in host: the tenant and the /oauth2/v2.0/... paths are added to it. */
const checkAuthorityUrl: Check<string> = (value) => {
  const problem = checkServiceUrl(value);
  if (problem)
    return problem.replace('https://login.microsoftonline.com/...', 'https://login.microsoftonline.com');
  const url = new URL(value);
  if (url.search || url.hash || /\/oauth2\b/i.test(url.pathname)) {
    return (
      'must be the sign-in host only, such as https://login.microsoftonline.com or ' +
      'https://login.microsoftonline.us: RelayDesk adds /{tenant}/oauth2/v2.0/authorize, /token and /devicecode'
    );
  }
  return null;
};

function reportMissingOAuth2(upstream: UpstreamConfig, reason: string, problems: Problems): void {
  if (upstream.oauth2 === null) {
    problems.addUnlessReported(
      'upstream.oauth2',
      `${reason} needs oauth2 with tenant and clientId (the Entra app registration)`,
    );
    return;
  }
  if (upstream.oauth2.tenant === '') {
    problems.addUnlessReported(
      'upstream.oauth2.tenant',
      'must be set: the directory (tenant) ID or a domain such as contoso.onmicrosoft.com',
    );
  }
  if (upstream.oauth2.clientId === '') {
    problems.addUnlessReported(
      'upstream.oauth2.clientId',
      "must be set: the app registration's application (client) ID",
    );
  }
}

/** Checks between upstream fields, once each field on its own is known to be valid or replaced. */
function reportUpstreamConflicts(upstream: UpstreamConfig, section: Section, problems: Problems): void {
  if (upstream.type === 'graph') {
    if (section.has('auth') && upstream.auth !== 'oauth2') {
      section.report('auth', "type 'graph' signs in with OAuth 2.0 only: use 'oauth2' or leave auth out");
    }
    reportMissingOAuth2(upstream, "type 'graph'", problems);
    if (upstream.mailbox === null) {
      problems.addUnlessReported(
        'upstream.mailbox',
        "type 'graph' needs the mailbox that sends, such as john@contoso.com",
      );
    }
    return;
  }

  const directSend = upstream.preset === 'microsoft365-direct-send';
  if (upstream.host === '') {
    problems.addUnlessReported(
      'upstream.host',
      directSend
        ? "must be set to your tenant's MX host, <tenant>.mail.protection.outlook.com " +
            '(Microsoft 365 admin center, Settings, Domains)'
        : 'must be set to the smart host, such as smtp.office365.com, or choose a preset',
    );
  } else if (directSend && upstream.host.toLowerCase() === 'smtp.office365.com') {
    section.report(
      'host',
      "Direct Send goes to your tenant's MX host (<tenant>.mail.protection.outlook.com), not " +
        'smtp.office365.com; to sign in to smtp.office365.com use the microsoft365 preset',
    );
  }
  if (directSend && upstream.auth !== 'none') {
    section.report('auth', "Direct Send does not sign in: use 'none', or the microsoft365 preset to sign in");
    return;
  }
  // Delegated sign-in sends as whoever signed in (`relaydesk signin`): no mailbox needs naming beforehand.
  const delegated = upstream.auth === 'oauth2' && upstream.oauth2?.grant === 'delegated';
  if (upstream.auth !== 'none' && upstream.user === null && !delegated) {
    problems.addUnlessReported(
      'upstream.user',
      `auth '${upstream.auth}' needs the mailbox that signs in, such as john@contoso.com`,
    );
  }
  if (upstream.auth === 'oauth2') reportMissingOAuth2(upstream, "auth 'oauth2'", problems);
  if (upstream.auth !== 'none' && upstream.security === 'none' && !isLoopbackHost(upstream.host)) {
    section.report(
      'security',
      `a password or token is never sent unencrypted: use 'starttls' or 'tls' with auth '${upstream.auth}' ` +
        "('none' is accepted only for a loopback host)",
    );
  }
}

function readUpstream(raw: unknown, defaults: UpstreamConfig, problems: Problems): UpstreamConfig {
  const section = Section.open(raw, 'upstream', Object.keys(defaults), problems);
  const preset = section.choice('preset', PRESET_NAMES, defaults.preset);
  const type = section.choice('type', UPSTREAM_TYPES, defaults.type);
  const base = applyPreset(defaults, preset);
  // Graph signs in with OAuth 2.0 only, so a Graph upstream need not say so.
  if (type === 'graph') base.auth = 'oauth2';

  const upstream: UpstreamConfig = {
    type,
    preset,
    host: section.text('host', base.host, checkNoSpaces),
    port: section.integer('port', base.port, PORT),
    security: section.choice('security', UPSTREAM_SECURITY, base.security),
    auth: section.choice('auth', UPSTREAM_AUTH, base.auth),
    user: section.nullableText('user', base.user, checkNoSpaces),
    caFile: section.nullableText('caFile', base.caFile, checkPemFile('certificate')),
    maxConnections: section.integer('maxConnections', base.maxConnections, { min: 1, max: 100 }),
    messagesPerMinute: section.integer('messagesPerMinute', base.messagesPerMinute, { min: 1, max: 10000 }),
    maxMessageBytes: section.integer('maxMessageBytes', base.maxMessageBytes, MESSAGE_BYTES),
    oauth2: readOAuth2(section, base.oauth2, problems),
    mailbox: section.nullableText('mailbox', base.mailbox, checkMailAddress),
    graphUrl: section.text('graphUrl', base.graphUrl, checkServiceUrl),
    sendAs: section.choice('sendAs', SEND_AS, base.sendAs),
    saveToSentItems: section.flag('saveToSentItems', base.saveToSentItems),
    timeoutSeconds: section.integer('timeoutSeconds', base.timeoutSeconds, { min: 1, max: 3600 }),
    heloName: section.nullableText('heloName', base.heloName, checkHeloName),
  };
  reportUpstreamConflicts(upstream, section, problems);
  return upstream;
}

function readLimits(raw: unknown, defaults: LimitsConfig, problems: Problems): LimitsConfig {
  const section = Section.open(raw, 'limits', Object.keys(defaults), problems);
  return {
    maxMessageBytes: section.integer('maxMessageBytes', defaults.maxMessageBytes, MESSAGE_BYTES),
    maxRecipients: section.integer('maxRecipients', defaults.maxRecipients, { min: 1, max: 10000 }),
    maxConnectionsPerClient: section.integer('maxConnectionsPerClient', defaults.maxConnectionsPerClient, {
      min: 1,
      max: 10000,
    }),
    maxConnections: section.integer('maxConnections', defaults.maxConnections, { min: 1, max: 10000 }),
    idleTimeoutSeconds: section.integer('idleTimeoutSeconds', defaults.idleTimeoutSeconds, {
      min: 1,
      max: 3600,
    }),
    maxUnlistedConnections: section.integer('maxUnlistedConnections', defaults.maxUnlistedConnections, {
      min: 1,
      max: 10000,
    }),
    maxConnectionsPerUnlistedClient: section.integer(
      'maxConnectionsPerUnlistedClient',
      defaults.maxConnectionsPerUnlistedClient,
      { min: 1, max: 10000 },
    ),
    minDataBytesPerSecond: section.integer('minDataBytesPerSecond', defaults.minDataBytesPerSecond, {
      min: 1,
      max: 1_000_000_000,
    }),
    sessionTimeoutSeconds: section.integer('sessionTimeoutSeconds', defaults.sessionTimeoutSeconds, {
      min: 1,
      max: 604800,
    }),
  };
}

function readQueue(raw: unknown, defaults: QueueConfig, problems: Problems): QueueConfig {
  const section = Section.open(raw, 'queue', Object.keys(defaults), problems);
  const queue: QueueConfig = {
    retryForHours: section.integer('retryForHours', defaults.retryForHours, { min: 1, max: 720 }),
    minRetrySeconds: section.integer('minRetrySeconds', defaults.minRetrySeconds, { min: 1, max: 86400 }),
    maxRetrySeconds: section.integer('maxRetrySeconds', defaults.maxRetrySeconds, { min: 1, max: 86400 }),
  };
  if (queue.minRetrySeconds > queue.maxRetrySeconds) {
    section.report(
      'minRetrySeconds',
      `must not be more than queue.maxRetrySeconds (${queue.maxRetrySeconds}): the delay doubles from min up to max`,
    );
    return { ...queue, minRetrySeconds: Math.min(defaults.minRetrySeconds, queue.maxRetrySeconds) };
  }
  return queue;
}

function readSender(raw: unknown, defaults: SenderConfig, problems: Problems): SenderConfig {
  const section = Section.open(raw, 'sender', Object.keys(defaults), problems);
  const mode = section.choice('mode', SENDER_MODES, defaults.mode);
  const rawByClient = section.raw('byClient');
  if (rawByClient === undefined) return { mode, byClient: defaults.byClient };
  if (!isObject(rawByClient)) {
    section.report(
      'byClient',
      'must be an object mapping a device address to its sender ({ "10.100.102.3": ... })',
    );
    return { mode, byClient: defaults.byClient };
  }
  const byClient: Record<string, string> = {};
  for (const [client, address] of Object.entries(rawByClient)) {
    const path = mapKeyPath('sender.byClient', client);
    const range = parseClientRange(client);
    const addressProblem =
      typeof address === 'string'
        ? checkMailAddress(address)
        : 'must be a mail address such as john@contoso.com';
    if (typeof range === 'string') problems.add(path, range);
    if (addressProblem) problems.add(path, addressProblem);
    if (typeof range !== 'string' && !addressProblem) byClient[client] = address as string;
  }
  return { mode, byClient };
}

function readLanAuth(raw: unknown, defaults: LanAuthConfig, problems: Problems): LanAuthConfig {
  const section = Section.open(raw, 'lanAuth', Object.keys(defaults), problems);
  const mode = section.choice('mode', LAN_AUTH_MODES, defaults.mode);
  const rawUsers = section.raw('users');
  if (rawUsers !== undefined && !Array.isArray(rawUsers)) {
    section.report('users', 'must be a list of { "user": ..., "passwordHash": ... }');
  }
  const users: LanAuthUser[] = [];
  (Array.isArray(rawUsers) ? rawUsers : []).forEach((item: unknown, index) => {
    const path = `lanAuth.users[${index}]`;
    const before = problems.list.length;
    const entry = Section.open(item, path, LAN_USER_KEYS, problems);
    // Only where the users are used: in 'ignore' mode a leftover entry harms nothing.
    const user = entry.text('user', '', mode === 'check' ? lanUserNameProblem : undefined);
    const passwordHash = entry.text('passwordHash', '');
    if (isObject(item)) {
      for (const key of LAN_USER_KEYS) {
        if (!entry.has(key))
          entry.report(key, 'must be set (`relaydesk lan-user add` writes both user and passwordHash)');
      }
    }
    if (mode === 'check' && passwordHash !== '' && !isLanPasswordHash(passwordHash)) {
      entry.report(
        'passwordHash',
        'is not a hash written by `relaydesk lan-user add` (scrypt$N$r$p$salt$key), so no password would ever match it; run `relaydesk lan-user add` for this user',
      );
    }
    if (users.some((existing) => existing.user === user)) entry.report('user', `${user} is listed twice`);
    if (problems.list.length === before) users.push({ user, passwordHash });
  });
  if (mode === 'check' && users.length === 0 && !problems.has('lanAuth.users')) {
    problems.add(
      'lanAuth.users',
      "mode 'check' needs at least one user, or every device that signs in is refused; add one with `relaydesk lan-user add`",
    );
  }
  return { mode, users };
}

function readLanTls(raw: unknown, defaults: LanTlsConfig, problems: Problems): LanTlsConfig {
  const section = Section.open(raw, 'lanTls', Object.keys(defaults), problems);
  const certFile = section.nullableText('certFile', defaults.certFile, checkPemFile('certificate'));
  const keyFile = section.nullableText('keyFile', defaults.keyFile, checkPemFile('private key'));
  const allowLegacyTls = section.flag('allowLegacyTls', defaults.allowLegacyTls);
  if ((certFile === null) !== (keyFile === null)) {
    const [missing, other] = certFile === null ? ['certFile', 'keyFile'] : ['keyFile', 'certFile'];
    problems.addUnlessReported(
      `lanTls.${missing}`,
      `must be set together with lanTls.${other} (or leave both out for a self-signed certificate)`,
    );
  }
  // Half a certificate pair is unusable: fall back to the self-signed certificate.
  const pair =
    certFile !== null && keyFile !== null ? { certFile, keyFile } : { certFile: null, keyFile: null };
  return { ...pair, allowLegacyTls };
}

/** A service does not start in the config's folder (Windows services start in System32): absolute only. */
const checkFolder: Check<string> = (folder) =>
  path.isAbsolute(folder)
    ? null
    : `must be an absolute path to a folder, such as ${
        process.platform === 'win32' ? 'C:\\inetpub\\mailroot\\Pickup' : '/var/spool/relaydesk/pickup'
      } (a relative path would depend on the folder RelayDesk starts in)`;

function readPickup(raw: unknown, defaults: PickupConfig, problems: Problems): PickupConfig {
  const section = Section.open(raw, 'pickup', Object.keys(defaults), problems);
  const dir = section.nullableText('dir', defaults.dir, checkFolder);
  const badmailDir = section.nullableText('badmailDir', defaults.badmailDir, checkFolder);
  const settleSeconds = section.integer('settleSeconds', defaults.settleSeconds, { min: 1, max: 300 });
  if (dir !== null && badmailDir !== null && path.resolve(dir) === path.resolve(badmailDir)) {
    section.report(
      'badmailDir',
      'must not be the pickup folder itself: a refused file would be picked up again (leave it out for a Badmail folder beside the pickup folder)',
    );
    return { dir, badmailDir: defaults.badmailDir, settleSeconds };
  }
  return { dir, badmailDir, settleSeconds };
}

/** A webhook URL often carries its own secret in the path (Teams, Slack). */
const checkWebhookUrl = checkHttpsUrl(
  'https://contoso.webhook.office.com/... or https://hooks.slack.com/services/...',
  'a receiver on this computer, 127.0.0.1 or ::1',
);

function readAlerts(raw: unknown, defaults: AlertsConfig, problems: Problems): AlertsConfig {
  const section = Section.open(raw, 'alerts', Object.keys(defaults), problems);
  return {
    webhookUrl: section.nullableText('webhookUrl', defaults.webhookUrl, checkWebhookUrl),
    webhookFormat: section.choice('webhookFormat', WEBHOOK_FORMATS, defaults.webhookFormat),
    queueAgeMinutes: section.integer('queueAgeMinutes', defaults.queueAgeMinutes, {
      min: 1,
      max: 10080,
      hint: '1 minute to 7 days',
    }),
    email: section.nullableText('email', defaults.email, checkMailAddress),
    senderNotices: section.flag('senderNotices', defaults.senderNotices),
    digest: section.choice('digest', ALERT_DIGESTS, defaults.digest),
    digestHour: section.integer('digestHour', defaults.digestHour, {
      min: 0,
      max: 23,
      hint: 'the hour of the local day, 8 for 08:00',
    }),
  };
}

export function parseConfig(raw: unknown): ParsedConfig {
  const problems = new Problems();
  const defaults = defaultConfig();
  if (!isObject(raw)) {
    problems.add('(file)', 'must hold a JSON object ({ ... }) at the top level');
    return { config: defaults, problems: problems.list };
  }
  const root = Section.open(raw, '', Object.keys(defaults), problems);
  const listen = readListener(root.raw('listen'), 'listen', defaults.listen, problems);
  const [, ...extraListeners] = withoutDuplicates(
    [
      { path: 'listen', listener: listen },
      ...readExtraListeners(root.raw('extraListeners'), defaults.listen, problems),
    ],
    problems,
  );

  const allowWideClientRanges = root.flag('allowWideClientRanges', defaults.allowWideClientRanges);
  const config: RelayConfig = {
    listen,
    extraListeners: extraListeners.map(({ listener }) => listener),
    allowedClients: readAllowedClients(
      root.raw('allowedClients'),
      defaults.allowedClients,
      allowWideClientRanges,
      problems,
    ),
    allowWideClientRanges,
    upstream: readUpstream(root.raw('upstream'), defaults.upstream, problems),
    limits: readLimits(root.raw('limits'), defaults.limits, problems),
    queue: readQueue(root.raw('queue'), defaults.queue, problems),
    sender: readSender(root.raw('sender'), defaults.sender, problems),
    lanAuth: readLanAuth(root.raw('lanAuth'), defaults.lanAuth, problems),
    lanTls: readLanTls(root.raw('lanTls'), defaults.lanTls, problems),
    pickup: readPickup(root.raw('pickup'), defaults.pickup, problems),
    alerts: readAlerts(root.raw('alerts'), defaults.alerts, problems),
  };
  return { config, problems: problems.list };
}
