/**
 * Writes docs/troubleshooting.md from the diagnosis table (`npm run docs:troubleshooting`): every row
 * with its codes, meaning, fix, window actions, command-line steps and commands per platform, between
 * the hand-written docs/src/troubleshooting-intro.md and -outro.md. A test compares the page with
 * `renderTroubleshootingPage()`, so a row changed without the page fails `npm test`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DIAGNOSIS_RULES, type DiagnosisMatch, type DiagnosisRule } from '../electron/relay/diagnosis.ts';
import { SIGNED_IN_USER_RULES } from '../electron/relay/diagnosis/signed-in-user.ts';
import type { DiagnosisCategory, RuleCommands, RuleText } from '../electron/relay/diagnosis/types.ts';
import { describeFailure, type UpstreamFailure } from '../electron/relay/upstream-failure.ts';

const ROOT = new URL('../', import.meta.url);
export const PAGE_PATH = fileURLToPath(new URL('docs/troubleshooting.md', ROOT));

interface Section {
  heading: string;
  intro?: string;
  rules: DiagnosisRule[];
}

const signedInIds = new Set(SIGNED_IN_USER_RULES.map((rule) => rule.id));

const CATEGORY_HEADINGS: [DiagnosisCategory, string][] = [
  ['credentials', 'Sign-in and credentials'],
  ['policy', 'Tenant policy'],
  ['configuration', "RelayDesk's configuration and the app registration"],
  ['send-as', 'Send As'],
  ['account-blocked', 'Blocked accounts and addresses'],
  ['quota', 'Quotas'],
  ['throttling', 'Throttling'],
  ['size', 'Message size'],
  ['recipient', 'Recipients'],
  ['tls', 'TLS and certificates'],
  ['network', 'Network'],
  ['unknown', 'Everything else'],
];

const SIGNED_IN_INTRO =
  'With `upstream.oauth2.grant: "delegated"` RelayDesk sends as the user who signed in with\n' +
  '`relaydesk signin` or "Sign in with Microsoft" in the window ([microsoft365.md](microsoft365.md)). It\n' +
  'renews that sign-in every day, also when no mail flows; when Microsoft refuses to renew it, RelayDesk\n' +
  'holds the queue (nothing fails) and the fix is "Sign in again". After signing in the held mail goes out.';

function sections(): Section[] {
  const byCategory = CATEGORY_HEADINGS.map(([category, heading]) => ({
    heading,
    rules: DIAGNOSIS_RULES.filter((rule) => rule.category === category && !signedInIds.has(rule.id)),
  }));
  const signedIn: Section = {
    heading: 'Signing in as a user (delegated OAuth 2.0)',
    intro: SIGNED_IN_INTRO,
    rules: DIAGNOSIS_RULES.filter((rule) => signedInIds.has(rule.id)),
  };
  // After the app registration's rows, as a sign-in of its own.
  return [...byCategory.slice(0, 3), signedIn, ...byCategory.slice(3)];
}

const STAGE_NAMES: Record<string, string> = { message: 'MESSAGE' };

function codeList(codes: readonly (string | number | RegExp)[], prefix = ''): string {
  return codes
    .map((code) =>
      code instanceof RegExp
        ? `a code matching \`${code.source.replace(/\|/g, '\\|')}\``
        : `\`${prefix}${code}\``,
    )
    .join(', ');
}

function plainList(items: readonly (string | number)[], prefix = ''): string {
  return items.map((item) => `${prefix}${item}`).join(', ');
}

function textClause(text: RegExp | undefined, what: string): string {
  return text ? ` with ${what} matching \`${text.source}\`` : '';
}

/** One way a row matches, in words: "SMTP reply 5.7.139 with text matching `disabled for the tenant`". */
function describeMatch(match: DiagnosisMatch): string {
  switch (match.kind) {
    case 'reply': {
      const codes: string[] = [];
      if (match.codes) codes.push(match.codes.join(' or '));
      if (match.replyClass) codes.push(`${match.replyClass}xx`);
      if (match.enhanced) {
        codes.push(
          match.enhanced
            .map((code) => (typeof code === 'string' ? code : `${code[0]}–${code[1]}`))
            .join(', '),
        );
      }
      const stages = match.stages
        ? ` at ${match.stages.map((stage) => STAGE_NAMES[stage] ?? stage.toUpperCase()).join('/')}`
        : '';
      return `SMTP reply${codes.length ? ` ${codes.join(' ')}` : ''}${stages}${textClause(match.text, 'text')}`;
    }
    case 'network':
    case 'tls': {
      const what = match.kind === 'tls' ? 'TLS error' : 'network error';
      return match.codes ? `${what} ${codeList(match.codes)}` : `${what} with any other code`;
    }
    case 'token': {
      const parts: string[] = [];
      if (match.aadsts) parts.push(plainList(match.aadsts, 'AADSTS'));
      if (match.status) parts.push(`HTTP ${match.status.join(' or ')}`);
      if (match.statusClass) parts.push(`HTTP ${match.statusClass}xx`);
      if (match.errors) parts.push(codeList(match.errors));
      const who = !match.grants
        ? ''
        : match.grants.length === 1 && match.grants[0] === 'device_code'
          ? ' (device code sign-in)'
          : ' (signed-in user)';
      return `token endpoint ${parts.length ? parts.join(' ') : 'any other refusal'}${who}`;
    }
    case 'graph': {
      const parts: string[] = [];
      if (match.codes) parts.push(codeList(match.codes));
      if (match.status) parts.push(`HTTP ${match.status.join(' or ')}`);
      if (match.statusClass) parts.push(`HTTP ${match.statusClass}xx`);
      return `Graph ${parts.length ? parts.join(' ') : 'any other refusal'}${textClause(match.text, 'message')}`;
    }
    case 'config':
      return match.codes ? `RelayDesk ${codeList(match.codes)}` : 'RelayDesk configuration any other problem';
  }
}

function describeMatches(rule: DiagnosisRule): string[] {
  return rule.match.length ? rule.match.map(describeMatch) : ['any other reply'];
}

const QUEUE_EFFECT: Record<DiagnosisRule['action'], [short: string, long: string]> = {
  retry: ['retries', 'RelayDesk retries this message later (transient).'],
  hold: ['holds the queue', 'RelayDesk holds the whole queue and fails nothing until this is fixed.'],
  'fail-message': ['fails the message', 'RelayDesk fails this message for good; other messages carry on.'],
  'fail-recipient': [
    'fails the recipient',
    'RelayDesk fails this recipient for good; the other recipients of the message carry on.',
  ],
};

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchor(rule: DiagnosisRule): string {
  return `${rule.id} ${rule.title}`
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');
}

function seenAs(failure: UpstreamFailure): string {
  const line = failure.kind === 'reply' ? `${failure.stage}: ${failure.reply.raw}` : describeFailure(failure);
  return `Seen as: \`${line}\``;
}

/** A placeholder outside code reads as HTML to a Markdown renderer: put it in code. */
function prose(text: string): string {
  return text.replace(/(?<!`)<(mailbox|appId|oauthTenant|address|host|port)>(?!`)/g, '`<$1>`');
}

const LOCAL_PLATFORMS: [keyof RuleCommands, string][] = [
  ['windows', 'Windows (PowerShell)'],
  ['linux', 'Linux (terminal)'],
  ['macos', 'macOS (Terminal)'],
];

function commandBlocks(commands: RuleCommands | undefined): string[] {
  const blocks: string[] = [];
  if (commands?.exchangeOnline) {
    blocks.push(`In Exchange Online PowerShell:\n\n\`\`\`powershell\n${commands.exchangeOnline}\n\`\`\``);
  }
  const local = LOCAL_PLATFORMS.filter(([platform]) => commands?.[platform]);
  if (local.length) {
    blocks.push(
      [
        'On the computer RelayDesk runs on:',
        '',
        '| platform | command |',
        '|---|---|',
        ...local.map(([platform, name]) => `| ${name} | \`${commands![platform]}\` |`),
      ].join('\n'),
    );
  }
  return blocks;
}

function textBlocks(text: Partial<RuleText>): string[] {
  const blocks: string[] = [];
  if (text.explanation) blocks.push(`What it means: ${prose(text.explanation)}`);
  if (text.fix) blocks.push(`Fix: ${prose([text.lead?.window, text.fix].filter(Boolean).join(' '))}`);
  if (text.actions?.length) {
    blocks.push(`In the window: ${text.actions.map((action) => `**${action.label}**`).join(', ')}.`);
  }
  const cli = [text.lead?.cli, text.cli].filter(Boolean).join(' ');
  if (cli) blocks.push(`On the command line: ${prose(cli)}`);
  blocks.push(...commandBlocks(text.commands));
  return blocks;
}

function renderRule(rule: DiagnosisRule): string {
  const blocks = [
    `### \`${rule.id}\`: ${rule.title}`,
    seenAs(rule.example),
    `Matches: ${describeMatches(rule).join('; or ')}.`,
    ...textBlocks(rule),
  ];
  const variants: [keyof NonNullable<DiagnosisRule['byAuth']>, string][] = [
    ['password', 'When the upstream signs in with a password (`upstream.auth: "password"`)'],
    ['oauth2', 'When it signs in with OAuth 2.0'],
  ];
  for (const [auth, label] of variants) {
    const words = rule.byAuth?.[auth];
    if (words) blocks.push(`${label}, RelayDesk says instead:`, ...textBlocks(words));
  }
  if (rule.refusedPassword) {
    blocks.push(
      'RelayDesk also says where the password came from: the keychain, or the environment variable ' +
        '`RELAYDESK_UPSTREAM_PASSWORD`, which overrides the keychain (then the fix is to correct the ' +
        'variable and restart the relay).',
    );
  }
  blocks.push(QUEUE_EFFECT[rule.action][1]);
  return blocks.join('\n\n');
}

function renderIndex(): string {
  const rows = DIAGNOSIS_RULES.map(
    (rule) =>
      `| [\`${rule.id}\`](#${anchor(rule)}) | ${describeMatches(rule).join('; ')} | ${QUEUE_EFFECT[rule.action][0]} |`,
  );
  return ['## Index', '', '| row | matches | RelayDesk |', '|---|---|---|', ...rows].join('\n');
}

/** The codes an admin may search for, each with the rows that react to it, sorted. */
function renderCodes(): string {
  const rowsByCode = new Map<string, Set<string>>();
  const add = (code: string, rule: DiagnosisRule) => {
    if (!rowsByCode.has(code)) rowsByCode.set(code, new Set());
    rowsByCode.get(code)!.add(`[\`${rule.id}\`](#${anchor(rule)})`);
  };
  for (const rule of DIAGNOSIS_RULES) {
    for (const match of rule.match) {
      if (match.kind === 'reply') {
        for (const code of match.enhanced ?? []) {
          add(typeof code === 'string' ? code : `${code[0]}–${code[1]}`, rule);
        }
        for (const code of match.codes ?? []) add(String(code), rule);
      } else if (match.kind === 'token') {
        for (const number of match.aadsts ?? []) add(`AADSTS${number}`, rule);
      } else {
        for (const code of match.codes ?? []) if (typeof code === 'string') add(code, rule);
      }
    }
  }
  const codes = [...rowsByCode.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return [
    '## By error code',
    '',
    'The codes the rows know by name; a code not listed falls to the general rows (`reply-4xx`,',
    '`reply-5xx-message`, `network-other`, ...) in the index below.',
    '',
    '| code | row |',
    '|---|---|',
    ...codes.map((code) => `| \`${code}\` | ${[...rowsByCode.get(code)!].join(', ')} |`),
  ].join('\n');
}

export function renderTroubleshootingPage(): string {
  const read = (name: string) => readFileSync(new URL(`docs/src/${name}`, ROOT), 'utf8').trimEnd();
  const parts = [
    '<!-- Generated by `npm run docs:troubleshooting` from electron/relay/diagnosis/ and docs/src/troubleshooting-*.md: edit those, not this page. -->',
    read('troubleshooting-intro.md'),
    renderCodes(),
    renderIndex(),
    ...sections()
      .filter((section) => section.rules.length > 0)
      .map((section) =>
        [
          `## ${section.heading}`,
          ...(section.intro ? [section.intro] : []),
          ...section.rules.map(renderRule),
        ].join('\n\n'),
      ),
    read('troubleshooting-outro.md'),
  ];
  return `${parts.join('\n\n')}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(PAGE_PATH, renderTroubleshootingPage());
  console.log(`Wrote ${PAGE_PATH}`);
}
