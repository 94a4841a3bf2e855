/**
 * The diagnosis table: every row of the topic files, read top to bottom, first match wins, so a
 * specific row (`smtp-auth-disabled-tenant`) must come before a general one (`smtp-auth-policy`), and
 * every retry-or-fail decision lives here and nowhere else. docs/troubleshooting.md is generated from it
 * (`npm run docs:troubleshooting`).
 */
import { APP_TOKEN_RULES } from './app-token.ts';
import { CONFIG_RULES } from './configuration.ts';
import { GRAPH_RULES } from './graph.ts';
import { NETWORK_RULES } from './network.ts';
import { SIGNED_IN_USER_RULES } from './signed-in-user.ts';
import { SMTP_GENERIC_RULES, UNEXPECTED_RULE } from './smtp-any-server.ts';
import { HVE_RULES, SMTP_SENDING_RULES } from './smtp-sending.ts';
import { SMTP_SIGN_IN_RULES } from './smtp-sign-in.ts';
import { TLS_RULES } from './tls.ts';
import type { DiagnosisRule, RuleCommands, RuleSource } from './types.ts';

export { UNEXPECTED_RULE };

export const MATCHED_RULES: readonly RuleSource[] = [
  ...HVE_RULES,
  ...SMTP_SIGN_IN_RULES,
  ...SMTP_SENDING_RULES,
  ...SMTP_GENERIC_RULES,
  ...NETWORK_RULES,
  ...TLS_RULES,
  // Before APP_TOKEN_RULES, whose rows with the same AADSTS numbers speak of an app's own client secret.
  ...SIGNED_IN_USER_RULES,
  ...APP_TOKEN_RULES,
  ...CONFIG_RULES,
  ...GRAPH_RULES,
];

/** The one PowerShell line the command line shows: Exchange Online's, else the Windows one. */
export function powershellOf(commands: RuleCommands | undefined): string | null {
  return commands?.exchangeOnline ?? commands?.windows ?? null;
}

export const DIAGNOSIS_RULES: readonly DiagnosisRule[] = [...MATCHED_RULES, UNEXPECTED_RULE].map((rule) => ({
  ...rule,
  powershell: powershellOf(rule.commands),
}));
