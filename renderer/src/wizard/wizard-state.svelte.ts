/**
 * The setup wizard's draft: the config being built, step by step, and what the relay said about it.
 * Secrets typed here go to the keychain as soon as the step is done and are cleared from the page.
 */
import type { ConfigProblem, UpstreamPreset } from '../../../electron/config/types.ts';
import type { CheckView, ConfigView, RelayDeskApi, SignedInView } from '../../../electron/shared/ipc.ts';
import { cloneDraft, getPath, setPath, type Draft } from '../lib/config-path.ts';

export const STEPS = ['Provider', 'Sign-in', 'Test connection', 'Devices', 'Finish'] as const;

/** microsoft: the mailbox's user signs in (delegated OAuth 2.0); oauth2: an app with a client secret. */
export type SignIn = 'microsoft' | 'password' | 'oauth2';

/** Entries this broad let far more than an office's devices send: warn before they are saved. */
export function isBroadRange(entry: string): boolean {
  const prefix = /\/(\d+)$/.exec(entry.trim());
  if (!prefix) return false;
  return entry.includes(':') ? Number(prefix[1]) < 48 : Number(prefix[1]) < 16;
}

export class WizardState {
  step = $state(0);
  draft = $state<Draft>({});
  signIn = $state<SignIn>('password');
  /** Who signed in with Microsoft in this wizard (or before it). */
  signedIn = $state<SignedInView | null>(null);
  secret = $state('');
  /** The mailbox or app a secret was stored for: changing either asks for the secret again. */
  storedFor = $state<string | null>(null);
  secretError = $state<string | null>(null);
  problems = $state<ConfigProblem[]>([]);
  /** Problems show once the admin typed in the step or tried to go on, not on an untouched form. */
  revealed = $state(false);
  check = $state<CheckView | null>(null);
  checking = $state(false);
  applying = $state(false);
  applied = $state(false);
  applyProblems = $state<ConfigProblem[]>([]);

  readonly api: RelayDeskApi;
  readonly view: ConfigView;

  constructor(api: RelayDeskApi, view: ConfigView) {
    this.api = api;
    this.view = view;
    this.draft = cloneDraft(view.config) as unknown as Draft;
    const { upstream } = view.config;
    this.signIn =
      upstream.auth === 'oauth2'
        ? upstream.oauth2?.grant === 'delegated'
          ? 'microsoft'
          : 'oauth2'
        : !view.exists
          ? // A first run on the Microsoft 365 path offers Sign in with Microsoft first.
            'microsoft'
          : 'password';
    if (view.secrets.password !== null || view.secrets.clientSecret !== null)
      this.storedFor = this.accountKey;
    // Most offices moving off an on-premises Exchange server go to Microsoft 365: a first run starts there.
    if (!view.exists && this.preset === 'custom' && !upstream.host) this.choosePreset('microsoft365');
  }

  get accountKey(): string {
    return this.signIn === 'oauth2'
      ? `${String(this.get('upstream.oauth2.tenant'))}:${String(this.get('upstream.oauth2.clientId'))}`
      : `${String(this.get('upstream.user'))}@${String(this.get('upstream.host'))}`.toLowerCase();
  }

  get secretStored(): boolean {
    return this.storedFor === this.accountKey;
  }

  get preset(): UpstreamPreset {
    return (getPath(this.draft, 'upstream.preset') as UpstreamPreset | undefined) ?? 'custom';
  }

  get(path: string): unknown {
    return getPath(this.draft, path);
  }

  set(path: string, value: unknown): void {
    setPath(this.draft, path, value);
  }

  choosePreset(preset: UpstreamPreset): void {
    const fields = this.view.presets.find((p) => p.id === preset)?.fields ?? {};
    const upstream = { ...(this.get('upstream') as Draft), ...fields, preset };
    if (preset === 'custom' || preset === 'microsoft365-direct-send') upstream.host = fields.host ?? '';
    this.set('upstream', upstream);
    this.chooseSignIn(preset === 'microsoft365-direct-send' ? 'password' : this.signIn);
    this.check = null;
  }

  chooseSignIn(signIn: SignIn): void {
    this.signIn = signIn;
    if (this.preset === 'microsoft365-direct-send') {
      this.set('upstream.auth', 'none');
      this.set('upstream.oauth2', null);
      return;
    }
    if (signIn === 'microsoft' && this.preset === 'microsoft365') {
      this.set('upstream.auth', 'oauth2');
      const current = (this.get('upstream.oauth2') as Draft | null) ?? {};
      // Any work account of any tenant can sign in; a single-tenant app still names its own.
      this.set('upstream.oauth2', {
        tenant: current.tenant || 'organizations',
        clientId: current.clientId ?? '',
        grant: 'delegated',
      });
    } else if (signIn === 'oauth2') {
      this.set('upstream.auth', 'oauth2');
      const current = this.get('upstream.oauth2') as Draft | null;
      this.set('upstream.oauth2', {
        tenant: current?.tenant === 'organizations' ? '' : (current?.tenant ?? ''),
        clientId: current?.clientId ?? '',
      });
    } else {
      if (this.get('upstream.auth') === 'oauth2') this.set('upstream.auth', 'password');
      this.set('upstream.oauth2', null);
    }
  }

  /** The mailbox mail goes out as when the sender is rewritten: the one that signs in. */
  get sendingMailbox(): string | null {
    const user = this.get('upstream.user');
    if (typeof user === 'string' && user.trim() !== '') return user.trim();
    return this.signsInWithMicrosoft ? (this.signedIn?.username ?? null) : null;
  }

  /**
   * Whether the sender question applies: a mailbox signs in, so the provider checks that the sender
   * is one it may send as. Direct Send has no mailbox to send as.
   */
  get asksSender(): boolean {
    return this.get('upstream.auth') !== 'none';
  }

  /**
   * `rewrite` sends as `upstream.user`; after Sign in with Microsoft nobody typed it, so it becomes
   * the account that signed in.
   */
  chooseSender(mode: 'keep' | 'rewrite'): void {
    this.set('sender.mode', mode);
    if (mode === 'rewrite' && !this.get('upstream.user') && this.signedIn) {
      this.set('upstream.user', this.signedIn.username);
    }
  }

  get needsSecret(): boolean {
    return this.get('upstream.auth') !== 'none' && !this.signsInWithMicrosoft;
  }

  get signsInWithMicrosoft(): boolean {
    return this.preset === 'microsoft365' && this.signIn === 'microsoft';
  }

  get secretKind(): 'password' | 'client-secret' {
    return this.signIn === 'oauth2' ? 'client-secret' : 'password';
  }

  /** Problems of the fields this step shows. */
  problemsFor(prefixes: string[]): ConfigProblem[] {
    if (!this.revealed) return [];
    return this.problems.filter((p) =>
      prefixes.some((prefix) => p.path === prefix || p.path.startsWith(prefix)),
    );
  }

  /** Validation answers can overtake each other: an answer older than the one shown is dropped. */
  #asked = 0;
  #shown = 0;

  async validate(): Promise<void> {
    const asked = ++this.#asked;
    const found = await this.api.validateConfig($state.snapshot(this.draft));
    if (asked < this.#shown) return;
    this.#shown = asked;
    this.problems = found;
  }

  /** Stores the typed secret for the mailbox or app of the draft, then forgets it. */
  async storeSecret(): Promise<boolean> {
    this.secretError = null;
    if (this.signsInWithMicrosoft) {
      if (this.signedIn) return true;
      this.secretError = 'Sign in with Microsoft first: press the button and finish the sign-in.';
      return false;
    }
    if (!this.needsSecret) return true;
    if (this.secret === '') {
      if (this.secretStored) return true;
      this.secretError =
        this.secretKind === 'password' ? 'Enter the mailbox password.' : "Enter the app's client secret.";
      return false;
    }
    const result = await this.api.storeSecret(this.secretKind, this.secret, $state.snapshot(this.draft));
    if (!result.ok) {
      this.secretError = result.error;
      return false;
    }
    this.secret = '';
    this.storedFor = this.accountKey;
    // A new secret makes the last connection test stale.
    this.check = null;
    return true;
  }

  async testConnection(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    this.check = null;
    try {
      this.check = await this.api.testConnection($state.snapshot(this.draft));
    } finally {
      this.checking = false;
    }
  }

  async apply(): Promise<boolean> {
    if (this.applying) return false;
    this.applying = true;
    try {
      const result = await this.api.applyConfig($state.snapshot(this.draft));
      this.applyProblems = result.problems;
      this.applied = result.ok;
      return result.ok;
    } finally {
      this.applying = false;
    }
  }
}
