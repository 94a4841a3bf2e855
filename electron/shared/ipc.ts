/**
 * The one contract between the window and the relay: channel names, payload and result types, and the
 * run-time checks main (and the admin web server) apply to every payload. The preload, main's IPC
 * registration, the admin server and the renderer's HTTP client all derive from this file.
 *
 * It is imported by the renderer too, so it uses no Node module: only types from the config and the
 * diagnosis table, which are plain data.
 */
import type { ConfigProblem, RelayConfig, UpstreamConfig, UpstreamPreset } from '../config/types.ts';
import type { Diagnosis } from '../relay/diagnosis.ts';
import type { DayCounters, DeviceRecord, QueueCounts, QueueItem } from '../relay/views.ts';

export type Health = 'ok' | 'attention' | 'error' | 'paused';

/** unconfigured: no config file yet (first run); failed: the relay could not start (port taken...). */
export type RelayState = 'unconfigured' | 'starting' | 'running' | 'paused' | 'failed' | 'stopped';

export interface ListenerView {
  host: string;
  port: number;
  tls: string;
}

export interface UpstreamView {
  description: string;
  state: 'ok' | 'error' | 'held' | 'unknown';
  lastSuccessAt: number | null;
  lastSuccessReply: string | null;
  lastError: { at: number; reply: string; diagnosis: Diagnosis } | null;
  hold: { since: number; reason: string; diagnosis: Diagnosis; retryAt: number } | null;
}

export type QueueCountsView = QueueCounts;

export type TodayView = DayCounters;

export interface DeviceView extends DeviceRecord {
  /** Whether the current allowedClients let it relay (not what it was when it last tried). */
  allowed: boolean;
}

export interface AppStatus {
  state: RelayState;
  health: Health;
  /** One line for the tray tooltip and the window's header. */
  summary: string;
  /** Why the relay is not running, when state is 'failed'. */
  startError: string | null;
  listeners: ListenerView[];
  upstream: UpstreamView;
  queue: QueueCountsView;
  today: TodayView;
  devices: DeviceView[];
  allowedClients: string[];
  /** Delegated OAuth 2.0 only: who is signed in and since when; null when nobody is. */
  signedIn?: SignedInView | null;
}

export interface SignedInView {
  username: string;
  name: string | null;
  method: 'browser' | 'device-code';
  signedInAt: number;
  lastRefreshAt: number;
}

export type SignInMethod = 'browser' | 'device-code';

/** What the user must do to finish a sign-in: the page main opened, or a code to enter elsewhere. */
export type SignInPromptView =
  | { kind: 'browser'; url: string }
  | { kind: 'device-code'; userCode: string; verificationUri: string; message: string; expiresAt: number };

export interface SignInResultView {
  ok: boolean;
  account: SignedInView | null;
  /** Why it failed, in one line; the diagnosis says what to do. */
  error: string | null;
  diagnosis: Diagnosis | null;
}

export type { QueueItem };

export type ActivityResult =
  | 'queued'
  | 'delivered'
  | 'deferred'
  | 'held'
  | 'failed'
  | 'denied'
  | 'test-delivered'
  | 'test-failed'
  /** Deleted from the queue by the admin (window, `queue delete`) before it was delivered. */
  | 'deleted';

export interface ActivityEntry {
  /** Row id: the queue id for relayed mail, a generated one for denials and test emails. */
  id: string;
  time: number;
  /** The device's IP, or `RelayDesk` for the test email. */
  device: string;
  from: string;
  to: string[];
  subject: string | null;
  size: number | null;
  result: ActivityResult;
  /** The upstream's reply (or the failure), for the last thing that happened to this message. */
  reply: string | null;
}

export type SecretKind = 'password' | 'client-secret';
export type SecretSource = 'keychain' | 'environment' | null;

export interface PresetView {
  id: UpstreamPreset;
  label: string;
  notes: string;
  fields: Partial<UpstreamConfig>;
}

export interface ConfigView {
  config: RelayConfig;
  /** False on first run: the window shows the setup wizard. */
  exists: boolean;
  problems: ConfigProblem[];
  /** Where each secret of the current config comes from; the secrets themselves never leave main. */
  secrets: { password: SecretSource; clientSecret: SecretSource };
  /** `Secret Service, service "RelayDesk"`. */
  secretStore: string;
  presets: PresetView[];
}

export interface ApplyResult {
  ok: boolean;
  problems: ConfigProblem[];
}

export interface SecretResult {
  ok: boolean;
  /** Why it could not be stored (no keychain, no mailbox named yet); never contains the secret. */
  error: string | null;
  storedIn: string;
}

export interface CheckStepView {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface CheckView {
  ok: boolean;
  upstream: string;
  steps: CheckStepView[];
  reason: string | null;
  diagnosis: Diagnosis | null;
  /** Config problems that kept the test from running at all. */
  problems: ConfigProblem[];
}

export interface TestEmailView {
  ok: boolean;
  to: string;
  from: string;
  reply: string;
  diagnosis: Diagnosis | null;
  at: number;
}

export interface NetworkSuggestion {
  hostname: string;
  /** This computer's IPv4 networks: the devices are usually on one of them. */
  networks: { interfaceName: string; address: string; subnet: string }[];
}

/** Every request the window can make: what it sends and what it gets back. */
export interface Requests {
  'relay:status': { payload: null; result: AppStatus };
  'relay:pause': { payload: null; result: AppStatus };
  'relay:resume': { payload: null; result: AppStatus };
  'queue:list': { payload: null; result: QueueItem[] };
  'queue:retry': { payload: { id: string }; result: boolean };
  'queue:delete': { payload: { id: string }; result: boolean };
  'queue:flush': { payload: null; result: number };
  'activity:list': { payload: null; result: ActivityEntry[] };
  'config:get': { payload: null; result: ConfigView };
  'config:validate': { payload: { config: Record<string, unknown> }; result: ConfigProblem[] };
  'config:apply': { payload: { config: Record<string, unknown> }; result: ApplyResult };
  'secret:store': {
    payload: { kind: SecretKind; secret: string; config: Record<string, unknown> };
    result: SecretResult;
  };
  'upstream:check': { payload: { config: Record<string, unknown> | null }; result: CheckView };
  /**
   * Sign in with Microsoft for the app in `config` (a draft is fine). The Electron app opens the system
   * browser; `serve --admin`, whose browser may be on another computer, uses a device code. The prompt
   * comes as `push:signin`; this answers when the sign-in is over.
   */
  'signin:start': {
    payload: { method: SignInMethod; config: Record<string, unknown> };
    result: SignInResultView;
  };
  'mail:send-test': { payload: { to: string | null }; result: TestEmailView };
  'device:allow': { payload: { ip: string }; result: ApplyResult };
  'network:suggest': { payload: null; result: NetworkSuggestion };
  /** The scrypt hash for a LAN device user's password, as `relaydesk lan-user add` writes it. */
  'lan-user:hash': { payload: { password: string }; result: string };
  'log:renderer-error': { payload: { message: string; stack: string | null }; result: null };
}

export type Channel = keyof Requests;
export type PayloadOf<C extends Channel> = Requests[C]['payload'];
export type ResultOf<C extends Channel> = Requests[C]['result'];

export const CHANNELS = [
  'relay:status',
  'relay:pause',
  'relay:resume',
  'queue:list',
  'queue:retry',
  'queue:delete',
  'queue:flush',
  'activity:list',
  'config:get',
  'config:validate',
  'config:apply',
  'secret:store',
  'upstream:check',
  'signin:start',
  'mail:send-test',
  'device:allow',
  'network:suggest',
  'lan-user:hash',
  'log:renderer-error',
] as const satisfies readonly Channel[];

/** What main pushes to the window. */
export interface PushEvents {
  'push:status': AppStatus;
  'push:activity': ActivityEntry;
  /** A test email sent from the tray: the window shows its result too. */
  'push:test-email': TestEmailView;
  /** A sign-in started: what the user must do now. */
  'push:signin': SignInPromptView;
}

export type PushChannel = keyof PushEvents;
export const PUSH_CHANNELS = [
  'push:status',
  'push:activity',
  'push:test-email',
  'push:signin',
] as const satisfies readonly PushChannel[];

/** The object the window talks to: `window.relaydesk` in Electron, an HTTP client in a browser. */
export interface RelayDeskApi {
  getStatus(): Promise<AppStatus>;
  pause(): Promise<AppStatus>;
  resume(): Promise<AppStatus>;
  listQueue(): Promise<QueueItem[]>;
  retryMessage(id: string): Promise<boolean>;
  deleteMessage(id: string): Promise<boolean>;
  flushQueue(): Promise<number>;
  listActivity(): Promise<ActivityEntry[]>;
  getConfig(): Promise<ConfigView>;
  validateConfig(config: Record<string, unknown>): Promise<ConfigProblem[]>;
  applyConfig(config: Record<string, unknown>): Promise<ApplyResult>;
  /** Stores the secret for the mailbox or app named in `config` (a draft is fine); never read back. */
  storeSecret(kind: SecretKind, secret: string, config: Record<string, unknown>): Promise<SecretResult>;
  /** Tests `config` (a draft) or, with null, the config in use. */
  testConnection(config: Record<string, unknown> | null): Promise<CheckView>;
  sendTestEmail(to: string | null): Promise<TestEmailView>;
  signIn(method: SignInMethod, config: Record<string, unknown>): Promise<SignInResultView>;
  allowDevice(ip: string): Promise<ApplyResult>;
  suggestNetwork(): Promise<NetworkSuggestion>;
  /** Hashes a LAN device user's password (scrypt) for `lanAuth.users`; the password goes no further. */
  hashLanPassword(password: string): Promise<string>;
  reportError(message: string, stack: string | null): Promise<null>;
  onStatus(listener: (status: AppStatus) => void): () => void;
  onActivity(listener: (entry: ActivityEntry) => void): () => void;
  onTestEmail(listener: (result: TestEmailView) => void): () => void;
  onSignInPrompt(listener: (prompt: SignInPromptView) => void): () => void;
}

/** A payload that does not match its channel's contract. The message names the field, never its value. */
export class PayloadError extends Error {
  constructor(channel: string, problem: string) {
    super(`${channel}: ${problem}`);
    this.name = 'PayloadError';
  }
}

export function isChannel(value: unknown): value is Channel {
  return typeof value === 'string' && (CHANNELS as readonly string[]).includes(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A config is a few kilobytes; anything far larger is not one. */
const MAX_CONFIG_CHARS = 256 * 1024;
const MAX_SECRET_CHARS = 4096;
const MESSAGE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const MAIL_ADDRESS = /^[^\s@<>"]{1,64}@[^\s@<>"]{1,255}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

type Fields = Record<string, unknown>;

function fields(channel: Channel, value: unknown, allowed: readonly string[]): Fields {
  if (!isPlainObject(value)) throw new PayloadError(channel, 'payload must be an object');
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new PayloadError(channel, `unexpected field "${key.slice(0, 40)}"`);
  }
  return value;
}

function configField(channel: Channel, value: unknown): Record<string, unknown> {
  if (!isPlainObject(value)) throw new PayloadError(channel, 'config must be an object');
  let size: number;
  try {
    size = JSON.stringify(value).length;
  } catch {
    throw new PayloadError(channel, 'config must be plain JSON data');
  }
  if (size > MAX_CONFIG_CHARS) throw new PayloadError(channel, 'config is too large');
  return value;
}

function idField(channel: Channel, value: unknown): string {
  if (typeof value !== 'string' || !MESSAGE_ID.test(value)) {
    throw new PayloadError(channel, 'id must be a queue id');
  }
  return value;
}

function nothing(channel: Channel, value: unknown): null {
  if (value !== null && value !== undefined) throw new PayloadError(channel, 'takes no payload');
  return null;
}

function text(channel: Channel, name: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length > max) {
    throw new PayloadError(channel, `${name} must be a string of at most ${max} characters`);
  }
  return value;
}

type Validators = { [C in Channel]: (value: unknown) => PayloadOf<C> };

const VALIDATORS: Validators = {
  'relay:status': (v) => nothing('relay:status', v),
  'relay:pause': (v) => nothing('relay:pause', v),
  'relay:resume': (v) => nothing('relay:resume', v),
  'queue:list': (v) => nothing('queue:list', v),
  'queue:retry': (v) => ({ id: idField('queue:retry', fields('queue:retry', v, ['id']).id) }),
  'queue:delete': (v) => ({ id: idField('queue:delete', fields('queue:delete', v, ['id']).id) }),
  'queue:flush': (v) => nothing('queue:flush', v),
  'activity:list': (v) => nothing('activity:list', v),
  'config:get': (v) => nothing('config:get', v),
  'config:validate': (v) => ({
    config: configField('config:validate', fields('config:validate', v, ['config']).config),
  }),
  'config:apply': (v) => ({
    config: configField('config:apply', fields('config:apply', v, ['config']).config),
  }),
  'secret:store': (v) => {
    const f = fields('secret:store', v, ['kind', 'secret', 'config']);
    if (f.kind !== 'password' && f.kind !== 'client-secret') {
      throw new PayloadError('secret:store', "kind must be 'password' or 'client-secret'");
    }
    const secret = text('secret:store', 'secret', f.secret, MAX_SECRET_CHARS);
    if (secret.length === 0) throw new PayloadError('secret:store', 'secret must not be empty');
    return { kind: f.kind, secret, config: configField('secret:store', f.config) };
  },
  'upstream:check': (v) => {
    const f = fields('upstream:check', v, ['config']);
    return { config: f.config === null ? null : configField('upstream:check', f.config) };
  },
  'signin:start': (v) => {
    const f = fields('signin:start', v, ['method', 'config']);
    if (f.method !== 'browser' && f.method !== 'device-code') {
      throw new PayloadError('signin:start', "method must be 'browser' or 'device-code'");
    }
    return { method: f.method, config: configField('signin:start', f.config) };
  },
  'mail:send-test': (v) => {
    const f = fields('mail:send-test', v, ['to']);
    if (f.to === null) return { to: null };
    if (typeof f.to !== 'string' || !MAIL_ADDRESS.test(f.to)) {
      throw new PayloadError('mail:send-test', 'to must be a mail address such as john@contoso.com');
    }
    return { to: f.to };
  },
  'device:allow': (v) => {
    const ip = fields('device:allow', v, ['ip']).ip;
    if (typeof ip !== 'string' || !(IPV4.test(ip) || (ip.includes(':') && IPV6.test(ip)))) {
      throw new PayloadError('device:allow', 'ip must be an IPv4 or IPv6 address');
    }
    return { ip };
  },
  'network:suggest': (v) => nothing('network:suggest', v),
  'lan-user:hash': (v) => {
    const password = text(
      'lan-user:hash',
      'password',
      fields('lan-user:hash', v, ['password']).password,
      1024,
    );
    if (password.length === 0) throw new PayloadError('lan-user:hash', 'password must not be empty');
    return { password };
  },
  'log:renderer-error': (v) => {
    const f = fields('log:renderer-error', v, ['message', 'stack']);
    return {
      message: text('log:renderer-error', 'message', f.message, 2000),
      stack: f.stack === null ? null : text('log:renderer-error', 'stack', f.stack, 8000),
    };
  },
};

/** Checks `payload` against `channel`'s contract; throws PayloadError for an unknown channel or a bad payload. */
export function validatePayload<C extends Channel>(channel: C, payload: unknown): PayloadOf<C>;
export function validatePayload(channel: string, payload: unknown): unknown {
  if (!isChannel(channel)) throw new PayloadError(String(channel).slice(0, 60), 'no such channel');
  return VALIDATORS[channel](payload);
}
