/**
 * Diagnosis of upstream failures: what an upstream said, what it means in plain words, how an admin
 * fixes it (on the command line and in the window), and what the queue does meanwhile. The rows are
 * data in ./diagnosis/ (one file per topic, read in the order of ./diagnosis/table.ts); this module
 * picks the row for a failure and fills in what the relay knows.
 */
import { findRule } from './diagnosis/match.ts';
import { MATCHED_RULES, UNEXPECTED_RULE } from './diagnosis/table.ts';
import type {
  Diagnosis,
  DiagnosisContext,
  Platform,
  RuleCommands,
  RuleText,
  ShownCommand,
} from './diagnosis/types.ts';
import type { UpstreamFailure } from './upstream-failure.ts';
import { PASSWORD_ENV } from '../secrets/keychain.ts';

export type {
  Diagnosis,
  DiagnosisCategory,
  DiagnosisClass,
  DiagnosisContext,
  DiagnosisMatch,
  DiagnosisRule,
  EnhancedCodePattern,
  FixAction,
  QueueAction,
  ShownCommand,
} from './diagnosis/types.ts';
export { DIAGNOSIS_RULES } from './diagnosis/table.ts';
export { diagnosisContextFor } from './diagnosis/context.ts';

/** PowerShell takes an address or GUID as it is; anything else is quoted so that it stays one argument. */
function powershellArgument(value: string): string {
  return /^[A-Za-z0-9@._+-]+$/.test(value) ? value : `'${value.replace(/'/g, "''")}'`;
}

/** Exchange names the refused sender: `SendAsDenied; john@contoso.com not allowed to send as HelpDesk@contoso.com;`. */
function refusedSender(failure: UpstreamFailure): string | undefined {
  if (failure.kind !== 'reply') return undefined;
  return /not allowed to send as ([^\s;]+@[^\s;]+)/i.exec(failure.reply.text)?.[1];
}

const PLACEHOLDER = /<(mailbox|appId|oauthTenant|address|host|port)>/g;

/** What the window says where it does not know a value: it never shows a `<placeholder>`. */
const IN_WORDS: Record<string, string> = {
  mailbox: 'the mailbox RelayDesk signs in as',
  appId: "the app's Application (client) ID",
  oauthTenant: 'your tenant',
  address: "the message's sender address",
  host: 'the server',
  port: 'its port',
};

type Values = Record<string, string | undefined>;

/** For commands and the command line: a value it knows, else the placeholder for the admin to replace. */
function fillIn(template: string, values: Values): string {
  return template.replace(PLACEHOLDER, (placeholder, name: string) => {
    const value = values[name];
    return value ? powershellArgument(value) : placeholder;
  });
}

/** For the window's sentences: a value it knows, else plain words. */
function inWords(template: string, values: Values): string {
  return template.replace(PLACEHOLDER, (_placeholder, name: string) => values[name] || IN_WORDS[name]!);
}

function platformOf(nodePlatform: NodeJS.Platform): Platform {
  return nodePlatform === 'win32' ? 'windows' : nodePlatform === 'darwin' ? 'macos' : 'linux';
}

function shownCommands(
  commands: RuleCommands | undefined,
  platform: Platform,
  values: Values,
): ShownCommand[] {
  const shown: ShownCommand[] = [];
  if (commands?.exchangeOnline) {
    shown.push({ shell: 'Exchange Online PowerShell', lines: fillIn(commands.exchangeOnline, values) });
  }
  const local = commands?.[platform];
  if (local)
    shown.push({ shell: platform === 'windows' ? 'PowerShell' : 'Terminal', lines: fillIn(local, values) });
  return shown;
}

function sentences(...parts: (string | undefined)[]): string {
  return parts.filter((part) => part).join(' ');
}

/** Where a refused password came from: an admin who fixes the keychain while the environment overrides it fixes nothing. */
function passwordSource(context: DiagnosisContext): { explanation: string; fix?: string } | null {
  if (context.auth !== 'password' || !context.passwordSource) return null;
  if (context.passwordSource === 'keychain') {
    return { explanation: "The password RelayDesk used is the one stored in this computer's keychain." };
  }
  return {
    explanation:
      `The password RelayDesk used comes from the environment variable ${PASSWORD_ENV}, which ` +
      'overrides the keychain.',
    fix:
      `Correct ${PASSWORD_ENV} where the relay is started (the service's environment or its ` +
      'environment file) and restart the relay: a password stored in the keychain is not used while it is set.',
  };
}

/** Whether this diagnosis holds the whole queue: a relay problem that waits for the admin. */
export function holdsRelay(diagnosis: Pick<Diagnosis, 'action' | 'class'>): boolean {
  return diagnosis.action === 'hold' && diagnosis.class === 'relay';
}

/** The table's row for this failure: the first that matches, else the generic row for an unexpected reply. */
export function diagnose(failure: UpstreamFailure, context: DiagnosisContext = {}): Diagnosis {
  const rule = findRule(MATCHED_RULES, UNEXPECTED_RULE, failure);
  const forAuth =
    context.auth === 'password' || context.auth === 'oauth2' ? rule.byAuth?.[context.auth] : undefined;
  const text: RuleText = { ...rule, ...forAuth };
  const source = rule.refusedPassword ? passwordSource(context) : null;
  const values: Values = {
    mailbox: context.mailbox,
    appId: context.appId,
    oauthTenant: context.tenant,
    address: context.sender ?? refusedSender(failure),
    host: context.host,
    port: context.port === undefined ? undefined : String(context.port),
  };
  const actions = (text.actions ?? []).filter((action) => {
    if (!('setting' in action) || action.setting !== 'upstream.password') return true;
    // No password field to send the admin to when the upstream signs in otherwise, and none that
    // helps when the password comes from the environment, which overrides what Settings stores.
    return (context.auth === undefined || context.auth === 'password') && !source?.fix;
  });
  const powershell = text.commands?.exchangeOnline ?? text.commands?.windows ?? null;
  return {
    id: rule.id,
    category: rule.category,
    action: rule.action,
    class: rule.class,
    title: rule.title,
    explanation: sentences(inWords(text.explanation, values), source?.explanation),
    fix: fillIn(sentences(text.lead?.cli, text.fix, text.cli, source?.fix), values),
    powershell: powershell === null ? null : fillIn(powershell, values),
    retryAfterSeconds: failure.kind === 'graph' && rule.action === 'retry' ? failure.retryAfterSeconds : null,
    advice: inWords(sentences(text.lead?.window, text.fix, source?.fix), values),
    actions,
    commands: shownCommands(text.commands, context.platform ?? platformOf(process.platform), values),
    answeredBy:
      failure.kind === 'reply'
        ? 'server'
        : failure.kind === 'token'
          ? 'sign-in'
          : failure.kind === 'graph'
            ? 'graph'
            : null,
  };
}
