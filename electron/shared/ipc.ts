/**
 * The one contract between the window and the relay: channel names, payload and result types, and the
 * run-time checks main (and the admin web server) apply to every payload. The preload, main's IPC
 * registration, the admin server and the renderer's HTTP client all derive from this file.
 *
 * It is imported by the renderer too, so it uses no Node module: only types from the config and the
 * diagnosis table, which are plain data.
 */
import type { ConfigProblem, RelayConfig, UpstreamConfig, UpstreamPreset } from '../config/types.ts';
import type { Diagnosis } from '../relay/diagnosis/types.ts';
import type { DayCounters, DeviceRecord, QueueCounts, QueueItem, UpstreamStatus } from '../relay/views.ts';

export type Health = 'ok' | 'attention' | 'error' | 'paused';

/** unconfigured: no config file yet (first run); failed: the relay could not start (port taken...). */
export type RelayState = 'unconfigured' | 'starting' | 'running' | 'paused' | 'failed' | 'stopped';

export interface ListenerView {
  host: string;
  port: number;
  tls: string;
}

/** The upstream's status as the window shows it: while the queue is held, why and until when. */
export interface UpstreamView extends Omit<UpstreamStatus, 'heldSince'> {
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

/** One channel's answer to "Send a test alert": where it went and what the receiver said. */
export interface TestAlertChannelView {
  channel: 'webhook' | 'email';
  /** The webhook's scheme and host (its path holds its key), or the admin's address. */
  target: string;
  ok: boolean;
  /** The receiver's answer (`HTTP 200`, `250 2.0.0 OK ...`) or why it failed. */
  detail: string;
}

export interface TestAlertView {
  /** Empty when no alert channel is configured. */
  channels: TestAlertChannelView[];
}

export interface NetworkSuggestion {
  hostname: string;
  /** This computer's IPv4 networks: the devices are usually on one of them. */
  networks: { interfaceName: string; address: string; subnet: string }[];
}

/**
 * One request of the contract: the window's method for it, how that method's arguments become the
 * payload, and the run-time check main and the admin server apply to what arrives. `R` is the result,
 * a type only.
 */
export interface RequestContract<M extends string, A extends unknown[], P, R> {
  method: M;
  payload(...args: A): P;
  validate(value: unknown, channel: string): P;
  /** Never set: carries the result type. */
  readonly result?: R;
}

/** Declares a request answering `R`; the method, arguments and payload are inferred from the entry. */
function request<R>() {
  return <const M extends string, A extends unknown[], P>(entry: {
    method: M;
    payload: (...args: A) => P;
    validate: (value: unknown, channel: string) => P;
  }): RequestContract<M, A, P, R> => entry;
}

/** A request without arguments or payload. */
function plain<R>() {
  return <const M extends string>(method: M): RequestContract<M, [], null, R> => ({
    method,
    payload: () => null,
    validate: nothing,
  });
}

/** A config is a few kilobytes; anything far larger is not one. */
const MAX_CONFIG_CHARS = 256 * 1024;
const MAX_SECRET_CHARS = 4096;
const MESSAGE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const MAIL_ADDRESS = /^[^\s@<>"]{1,64}@[^\s@<>"]{1,255}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/**
 * Every request the window can make. Adding one: an entry here and its handler in
 * electron/app/handlers.ts; the preload, main's registration, the admin server's route and the
 * browser's client follow from this object.
 */
export const REQUESTS = {
  'relay:status': plain<AppStatus>()('getStatus'),
  'relay:pause': plain<AppStatus>()('pause'),
  'relay:resume': plain<AppStatus>()('resume'),
  'queue:list': plain<QueueItem[]>()('listQueue'),
  'queue:retry': request<boolean>()({
    method: 'retryMessage',
    payload: (id: string) => ({ id }),
    validate: (v, channel) => ({ id: idField(channel, fields(channel, v, ['id']).id) }),
  }),
  'queue:delete': request<boolean>()({
    method: 'deleteMessage',
    payload: (id: string) => ({ id }),
    validate: (v, channel) => ({ id: idField(channel, fields(channel, v, ['id']).id) }),
  }),
  /** The window's selection of queued messages at once; answers how many will be retried now. */
  'queue:retry-many': request<number>()({
    method: 'retryMessages',
    payload: (ids: string[]) => ({ ids }),
    validate: (v, channel) => ({ ids: idList(channel, fields(channel, v, ['ids']).ids) }),
  }),
  /** The window's selection of queued messages at once; answers how many were deleted. */
  'queue:delete-many': request<number>()({
    method: 'deleteMessages',
    payload: (ids: string[]) => ({ ids }),
    validate: (v, channel) => ({ ids: idList(channel, fields(channel, v, ['ids']).ids) }),
  }),
  'queue:flush': plain<number>()('flushQueue'),
  'activity:list': plain<ActivityEntry[]>()('listActivity'),
  'config:get': plain<ConfigView>()('getConfig'),
  'config:validate': request<ConfigProblem[]>()({
    method: 'validateConfig',
    payload: (config: Record<string, unknown>) => ({ config }),
    validate: (v, channel) => ({ config: configField(channel, fields(channel, v, ['config']).config) }),
  }),
  'config:apply': request<ApplyResult>()({
    method: 'applyConfig',
    payload: (config: Record<string, unknown>) => ({ config }),
    validate: (v, channel) => ({ config: configField(channel, fields(channel, v, ['config']).config) }),
  }),
  /** Stores the secret for the mailbox or app named in `config` (a draft is fine); never read back. */
  'secret:store': request<SecretResult>()({
    method: 'storeSecret',
    payload: (kind: SecretKind, secret: string, config: Record<string, unknown>) => ({
      kind,
      secret,
      config,
    }),
    validate: (v, channel) => {
      const f = fields(channel, v, ['kind', 'secret', 'config']);
      if (f.kind !== 'password' && f.kind !== 'client-secret') {
        throw new PayloadError(channel, "kind must be 'password' or 'client-secret'");
      }
      const secret = text(channel, 'secret', f.secret, MAX_SECRET_CHARS);
      if (secret.length === 0) throw new PayloadError(channel, 'secret must not be empty');
      return { kind: f.kind as SecretKind, secret, config: configField(channel, f.config) };
    },
  }),
  /** Tests `config` (a draft) or, with null, the config in use. */
  'upstream:check': request<CheckView>()({
    method: 'testConnection',
    payload: (config: Record<string, unknown> | null) => ({ config }),
    validate: (v, channel) => {
      const f = fields(channel, v, ['config']);
      return { config: f.config === null ? null : configField(channel, f.config) };
    },
  }),
  /**
   * Sign in with Microsoft for the app in `config` (a draft is fine). The Electron app opens the system
   * browser; `serve --admin`, whose browser may be on another computer, uses a device code. The prompt
   * comes as `push:signin`; this answers when the sign-in is over.
   */
  'signin:start': request<SignInResultView>()({
    method: 'signIn',
    payload: (method: SignInMethod, config: Record<string, unknown>) => ({ method, config }),
    validate: (v, channel) => {
      const f = fields(channel, v, ['method', 'config']);
      if (f.method !== 'browser' && f.method !== 'device-code') {
        throw new PayloadError(channel, "method must be 'browser' or 'device-code'");
      }
      return { method: f.method as SignInMethod, config: configField(channel, f.config) };
    },
  }),
  'mail:send-test': request<TestEmailView>()({
    method: 'sendTestEmail',
    payload: (to: string | null) => ({ to }),
    validate: (v, channel) => {
      const f = fields(channel, v, ['to']);
      if (f.to === null) return { to: null };
      if (typeof f.to !== 'string' || !MAIL_ADDRESS.test(f.to)) {
        throw new PayloadError(channel, 'to must be a mail address such as john@contoso.com');
      }
      return { to: f.to as string | null };
    },
  }),
  'alerts:test': plain<TestAlertView>()('sendTestAlert'),
  'device:allow': request<ApplyResult>()({
    method: 'allowDevice',
    payload: (ip: string) => ({ ip }),
    validate: (v, channel) => {
      const ip = fields(channel, v, ['ip']).ip;
      if (typeof ip !== 'string' || !(IPV4.test(ip) || (ip.includes(':') && IPV6.test(ip)))) {
        throw new PayloadError(channel, 'ip must be an IPv4 or IPv6 address');
      }
      return { ip };
    },
  }),
  'network:suggest': plain<NetworkSuggestion>()('suggestNetwork'),
  /** The scrypt hash for a LAN device user's password, as `relaydesk lan-user add` writes it. */
  'lan-user:hash': request<string>()({
    method: 'hashLanPassword',
    payload: (password: string) => ({ password }),
    validate: (v, channel) => {
      const password = text(channel, 'password', fields(channel, v, ['password']).password, 1024);
      if (password.length === 0) throw new PayloadError(channel, 'password must not be empty');
      return { password };
    },
  }),
  'log:renderer-error': request<null>()({
    method: 'reportError',
    payload: (message: string, stack: string | null) => ({ message, stack }),
    validate: (v, channel) => {
      const f = fields(channel, v, ['message', 'stack']);
      return {
        message: text(channel, 'message', f.message, 2000),
        stack: f.stack === null ? null : text(channel, 'stack', f.stack, 8000),
      };
    },
  }),
};

type RequestTable = typeof REQUESTS;
export type Channel = keyof RequestTable;
export type PayloadOf<C extends Channel> = ReturnType<RequestTable[C]['validate']>;
export type ResultOf<C extends Channel> =
  RequestTable[C] extends RequestContract<string, never, unknown, infer R> ? R : never;
/** What each request sends and gets back. */
export type Requests = { [C in Channel]: { payload: PayloadOf<C>; result: ResultOf<C> } };

export const CHANNELS = Object.keys(REQUESTS) as readonly Channel[];

/** One push from main to the window: the window's subscribe method and the service event it forwards. */
export interface PushContract<M extends string, E extends string, V> {
  method: M;
  event: E;
  /** Never set: carries the pushed value's type. */
  readonly value?: V;
}

function push<V>() {
  return <const M extends string, const E extends string>(method: M, event: E): PushContract<M, E, V> => ({
    method,
    event,
  });
}

/** What main pushes to the window. Adding one: an entry here, and the service emitting its event. */
export const PUSHES = {
  'push:status': push<AppStatus>()('onStatus', 'status'),
  'push:activity': push<ActivityEntry>()('onActivity', 'activity'),
  /** A test email sent from the tray: the window shows its result too. */
  'push:test-email': push<TestEmailView>()('onTestEmail', 'test-email'),
  /** A sign-in started: what the user must do now. */
  'push:signin': push<SignInPromptView>()('onSignInPrompt', 'signin'),
};

type PushTable = typeof PUSHES;
export type PushChannel = keyof PushTable;
export type PushEvents = {
  [C in PushChannel]: PushTable[C] extends PushContract<string, string, infer V> ? V : never;
};
/** The service's events that are pushed to the window, by event name, as an EventEmitter map. */
export type PushedEvents = { [C in PushChannel as PushTable[C]['event']]: [PushEvents[C]] };
export const PUSH_CHANNELS = Object.keys(PUSHES) as readonly PushChannel[];

type RequestMethods = {
  [C in Channel as RequestTable[C]['method']]: (
    ...args: Parameters<RequestTable[C]['payload']>
  ) => Promise<ResultOf<C>>;
};
type PushMethods = {
  [C in PushChannel as PushTable[C]['method']]: (listener: (value: PushEvents[C]) => void) => () => void;
};

/**
 * The object the window talks to: `window.relaydesk` in Electron, an HTTP client in a browser. One
 * method per request (`retryMessage(id)`), one subscription per push returning its unsubscribe.
 */
export type RelayDeskApi = RequestMethods & PushMethods;

/**
 * Builds the window's API over a transport: the preload's ipcRenderer or the browser's HTTP client.
 * Only the contract's channels are reachable through it.
 */
export function createApi(
  send: <C extends Channel>(channel: C, payload: PayloadOf<C>) => Promise<ResultOf<C>>,
  subscribe: <C extends PushChannel>(channel: C, listener: (value: PushEvents[C]) => void) => () => void,
): RelayDeskApi {
  const api: Record<string, (...args: never[]) => unknown> = {};
  for (const channel of CHANNELS) {
    const toPayload = REQUESTS[channel].payload as (...args: unknown[]) => PayloadOf<typeof channel>;
    api[REQUESTS[channel].method] = (...args: unknown[]) => send(channel, toPayload(...args));
  }
  for (const channel of PUSH_CHANNELS) {
    api[PUSHES[channel].method] = (listener: (value: PushEvents[typeof channel]) => void) =>
      subscribe(channel, listener);
  }
  return api as unknown as RelayDeskApi;
}

/** Where the admin web server answers requests (`POST api/rpc/<channel>`) and pushes (Server-Sent Events). */
export const RPC_PATH = 'api/rpc/';
export const EVENTS_PATH = 'api/events';

/** A payload that does not match its channel's contract. The message names the field, never its value. */
export class PayloadError extends Error {
  constructor(channel: string, problem: string) {
    super(`${channel}: ${problem}`);
    this.name = 'PayloadError';
  }
}

export function isChannel(value: unknown): value is Channel {
  return typeof value === 'string' && Object.hasOwn(REQUESTS, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

type Fields = Record<string, unknown>;

function fields(channel: string, value: unknown, allowed: readonly string[]): Fields {
  if (!isPlainObject(value)) throw new PayloadError(channel, 'payload must be an object');
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new PayloadError(channel, `unexpected field "${key.slice(0, 40)}"`);
  }
  return value;
}

function configField(channel: string, value: unknown): Record<string, unknown> {
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

function idField(channel: string, value: unknown): string {
  if (typeof value !== 'string' || !MESSAGE_ID.test(value)) {
    throw new PayloadError(channel, 'id must be a queue id');
  }
  return value;
}

/** A bulk action's ids: one request stays small and quick, the window sends a long selection in parts. */
const MAX_IDS = 1000;

function idList(channel: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length > MAX_IDS) {
    throw new PayloadError(channel, `ids must be a list of at most ${MAX_IDS} queue ids`);
  }
  return value.map((id) => idField(channel, id));
}

function nothing(value: unknown, channel: string): null {
  if (value !== null && value !== undefined) throw new PayloadError(channel, 'takes no payload');
  return null;
}

function text(channel: string, name: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length > max) {
    throw new PayloadError(channel, `${name} must be a string of at most ${max} characters`);
  }
  return value;
}

/** Checks `payload` against `channel`'s contract; throws PayloadError for an unknown channel or a bad payload. */
export function validatePayload<C extends Channel>(channel: C, payload: unknown): PayloadOf<C>;
export function validatePayload(channel: string, payload: unknown): unknown {
  if (!isChannel(channel)) throw new PayloadError(String(channel).slice(0, 60), 'no such channel');
  return REQUESTS[channel].validate(payload, channel);
}
