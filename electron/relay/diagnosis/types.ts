/**
 * The shape of the diagnosis table's rows and of the diagnosis the relay reports. The rows are data
 * (the topic files beside this one); `match.ts` reads them, `diagnose()` in `../diagnosis.ts` fills
 * them in for one failure, and `bin/troubleshooting-page.ts` writes them out as docs/troubleshooting.md.
 */
import type { SmtpStage, TokenGrant, UpstreamFailure } from '../upstream-failure.ts';

export type DiagnosisCategory =
  | 'credentials'
  | 'policy'
  | 'send-as'
  | 'throttling'
  | 'size'
  | 'network'
  | 'tls'
  | 'account-blocked'
  | 'recipient'
  | 'quota'
  | 'configuration'
  | 'unknown';

/**
 * retry: transient, keep the message and retry with backoff; hold: the relay's configuration problem:
 * hold the WHOLE queue, fail nothing; fail-message: final for this message; fail-recipient: final for
 * this recipient only.
 */
export type QueueAction = 'retry' | 'hold' | 'fail-message' | 'fail-recipient';

/**
 * What a failure concerns: one message (its content, size, sender or addresses), one recipient, or the
 * relay itself (its credentials, the tenant's policy, TLS, the upstream being unreachable). Only a
 * relay failure may hold the queue: a problem of one message must never stop the others.
 */
export type DiagnosisClass = 'message' | 'recipient' | 'relay';

/** An enhanced status code (`5.7.139`), or an inclusive range within one class.subject. */
export type EnhancedCodePattern = string | readonly [from: string, to: string];

/** An HTTP answer (the token endpoint's, Graph's): one of these statuses, and of this class (4xx, 5xx). */
export interface HttpStatusMatch {
  status?: readonly number[];
  statusClass?: 4 | 5;
}

/** One way a failure can match a rule: every field given must hold. */
export type DiagnosisMatch =
  | {
      kind: 'reply';
      /** Exact reply codes (`535`). */
      codes?: readonly number[];
      /** The first digit: 4 for every 4xx, 5 for every 5xx. */
      replyClass?: 4 | 5;
      enhanced?: readonly EnhancedCodePattern[];
      stages?: readonly SmtpStage[];
      /** Tested against the reply text. */
      text?: RegExp;
    }
  | {
      kind: 'network' | 'tls';
      /** Node/OpenSSL error codes; a RegExp matches a family of codes. */
      codes?: readonly (string | RegExp)[];
      stages?: readonly SmtpStage[];
    }
  | (HttpStatusMatch & {
      kind: 'token';
      aadsts?: readonly number[];
      /** OAuth 2.0 `error` values (`invalid_grant`, `expired_token`). */
      errors?: readonly string[];
      /** The grants it applies to; a failure without a grant is client credentials. */
      grants?: readonly TokenGrant[];
    })
  | (HttpStatusMatch & {
      kind: 'graph';
      /** Graph `error.code` values, compared without regard to case. */
      codes?: readonly string[];
      /** Tested against the Graph error message. */
      text?: RegExp;
    })
  | { kind: 'config'; codes?: readonly string[] };

/** Something the window can do about a failure: a button. */
export type FixAction =
  /** Opens Settings with the control of this config path in focus (`app.openSetting(path)`). */
  | { setting: string; label: string }
  /** A step of the window itself: run the connection test again, or sign in with Microsoft. */
  | { window: 'test-connection' | 'sign-in'; label: string };

export type Platform = 'windows' | 'linux' | 'macos';

/** Commands that help, by where they run. */
export interface RuleCommands {
  /** Exchange Online PowerShell, run by an Exchange administrator from any computer. */
  exchangeOnline?: string;
  /** On the computer RelayDesk runs on, one for each platform. */
  windows?: string;
  linux?: string;
  macos?: string;
}

/** A command as shown for one failure: where to type it and what, one command per line. */
export interface ShownCommand {
  shell: 'Exchange Online PowerShell' | 'PowerShell' | 'Terminal';
  lines: string;
}

/**
 * The words of a row. Text may hold the placeholders `<mailbox>`, `<appId>`, `<oauthTenant>`,
 * `<address>`, `<host>` and `<port>`, filled from what the relay knows.
 */
export interface RuleText {
  explanation: string;
  /** What to do, in words that fit the window and the command line alike: no `relaydesk` command. */
  fix: string;
  /** The RelayDesk side of the fix on the command line; the command line shows it after `fix`. */
  cli?: string;
  /** The first step, said before `fix`: on the command line with its command, in the window in words. */
  lead?: { cli: string; window: string };
  /** The RelayDesk side of the fix in the window: its buttons. */
  actions?: readonly FixAction[];
  commands?: RuleCommands;
}

/** A row as written in the topic files. */
export interface RuleSource extends RuleText {
  id: string;
  /** The rule applies when any of these matches. */
  match: readonly DiagnosisMatch[];
  class: DiagnosisClass;
  action: QueueAction;
  category: DiagnosisCategory;
  title: string;
  /** Words for one sign-in method that replace the common ones, which speak of both. */
  byAuth?: { password?: Partial<RuleText>; oauth2?: Partial<RuleText> };
  /** The upstream refused the password itself: the diagnosis says where that password came from. */
  refusedPassword?: true;
  /** A real failure that this row matches: used by tests and docs. */
  example: UpstreamFailure;
}

/** A row of the table as others read it: `powershell` is the Exchange or Windows line, as before commands per platform. */
export type DiagnosisRule = RuleSource & { readonly powershell: string | null };

/** What the caller knows about the relay's setup; fills the placeholders and picks the words. */
export interface DiagnosisContext {
  /** The mailbox RelayDesk signs in as (`upstream.user`, or `upstream.mailbox` for Graph). */
  mailbox?: string;
  /** The app's Application (client) ID. */
  appId?: string;
  /** `upstream.oauth2.tenant`, for the admin-consent link. */
  tenant?: string;
  /** The sender address of the failed message; otherwise taken from a SendAsDenied reply when it names one. */
  sender?: string;
  host?: string;
  port?: number;
  /** `upstream.auth` (Graph always signs in with OAuth 2.0). */
  auth?: 'none' | 'password' | 'oauth2';
  /** Where the password came from: the environment variable overrides the keychain. */
  passwordSource?: 'keychain' | 'environment';
  /** The platform RelayDesk runs on, whose commands are shown; this process's by default. */
  platform?: Platform;
}

export interface Diagnosis {
  id: string;
  category: DiagnosisCategory;
  action: QueueAction;
  class: DiagnosisClass;
  title: string;
  explanation: string;
  /** The fix as the command line and the logs give it, with `relaydesk` commands. */
  fix: string;
  /** Exchange Online (or Windows) PowerShell to run, one command per line; null when none helps. */
  powershell: string | null;
  /** From the upstream's Retry-After when it sent one and the action is `retry`. */
  retryAfterSeconds?: number | null;
  /** The fix as the window gives it: no command line, the buttons of `actions` do RelayDesk's part. */
  advice: string;
  actions: FixAction[];
  /** The commands for the platform RelayDesk runs on, and Exchange Online PowerShell. */
  commands: ShownCommand[];
  /**
   * Who gave the answer the failure carries: an SMTP server, Microsoft's sign-in service or Graph;
   * null when nobody answered (a refused connection, a timeout, a TLS or configuration problem).
   */
  answeredBy: 'server' | 'sign-in' | 'graph' | null;
}
