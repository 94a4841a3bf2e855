/**
 * What the window shows of a diagnosis (issue 15, "Advice speaks command line"): the fix as buttons
 * and words, never a `relaydesk` command; words that fit the sign-in method; where a refused password
 * came from; the commands of the platform the relay runs on; no placeholder left; and "the server
 * said" only when a server said something.
 */
import { describe, expect, it } from 'vitest';
import {
  DIAGNOSIS_RULES,
  diagnose,
  diagnosisContextFor,
  type Diagnosis,
  type DiagnosisContext,
} from '../../electron/relay/diagnosis.ts';
import { defaultConfig } from '../../electron/config/defaults.ts';
import { replyLine } from '../../electron/relay/diagnosis/examples.ts';
import type { UpstreamFailure } from '../../electron/relay/upstream-failure.ts';
import { ALL_SECTIONS } from '../../renderer/src/lib/settings-fields.ts';

const REFUSED_PASSWORD = replyLine('auth', '535 5.7.3 Authentication unsuccessful');
const REFUSED_CONNECTION: UpstreamFailure = {
  kind: 'network',
  stage: 'connect',
  code: 'ECONNREFUSED',
  message: 'connect ECONNREFUSED 127.0.0.1:587',
};
const MICROSOFT_365: DiagnosisContext = {
  mailbox: 'john@contoso.com',
  host: 'smtp.office365.com',
  port: 587,
  auth: 'password',
  passwordSource: 'keychain',
  platform: 'linux',
};

/** Everything of a diagnosis the window puts in front of the admin. */
function shownText(diagnosis: Diagnosis): string {
  return [
    diagnosis.title,
    diagnosis.explanation,
    diagnosis.advice,
    ...diagnosis.actions.map((action) => action.label),
  ].join('\n');
}

describe('a refused password in the window', () => {
  const diagnosis = diagnose(REFUSED_PASSWORD, MICROSOFT_365);

  it('offers a button to the password field and one to test again, and no command line', () => {
    expect(diagnosis.actions).toEqual([
      { setting: 'upstream.password', label: 'Enter the password again' },
      { window: 'test-connection', label: 'Test the connection again' },
    ]);
    expect(shownText(diagnosis)).not.toMatch(/npx|relaydesk (password|check|signin)/);
  });

  it('speaks of the password only: no OAuth, no service principal, no PowerShell', () => {
    expect(shownText(diagnosis)).not.toMatch(/OAuth|service principal|token/i);
    expect(diagnosis.commands).toEqual([]);
    expect(diagnosis.explanation).toContain('john@contoso.com');
  });

  it('says the password came from the keychain', () => {
    expect(diagnosis.explanation).toContain("stored in this computer's keychain");
  });

  it('says when it came from RELAYDESK_UPSTREAM_PASSWORD, and sends nobody to a field that is not used', () => {
    const fromEnvironment = diagnose(REFUSED_PASSWORD, { ...MICROSOFT_365, passwordSource: 'environment' });
    expect(fromEnvironment.explanation).toContain('environment variable RELAYDESK_UPSTREAM_PASSWORD');
    expect(fromEnvironment.advice).toContain('Correct RELAYDESK_UPSTREAM_PASSWORD');
    expect(fromEnvironment.actions).toEqual([
      { window: 'test-connection', label: 'Test the connection again' },
    ]);
    expect(fromEnvironment.fix).toContain('Correct RELAYDESK_UPSTREAM_PASSWORD');
  });

  it('was answered by the server', () => {
    expect(diagnosis.answeredBy).toBe('server');
  });

  it('keeps the command line its commands', () => {
    expect(diagnosis.fix).toContain('`npx relaydesk password set`');
    expect(diagnosis.fix).toContain('`npx relaydesk check`');
  });
});

describe('the same reply with OAuth 2.0', () => {
  const diagnosis = diagnose(REFUSED_PASSWORD, {
    ...MICROSOFT_365,
    auth: 'oauth2',
    appId: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b',
  });

  it('speaks of the app and its service principal, with the PowerShell filled in, and of no password', () => {
    expect(diagnosis.advice).toContain('service principal');
    expect(shownText(diagnosis)).not.toMatch(/password/i);
    expect(
      diagnosis.actions.some((action) => 'setting' in action && action.setting === 'upstream.password'),
    ).toBe(false);
    expect(diagnosis.commands).toEqual([
      {
        shell: 'Exchange Online PowerShell',
        lines:
          'New-ServicePrincipal -AppId 3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b -ObjectId <objectId of the Enterprise Application>\n' +
          'Add-MailboxPermission -Identity john@contoso.com -User <service principal id> -AccessRights FullAccess',
      },
    ]);
  });
});

describe('a refused connection', () => {
  it('shows the network test of the platform the relay runs on, with host and port filled in', () => {
    expect(diagnose(REFUSED_CONNECTION, MICROSOFT_365).commands).toEqual([
      { shell: 'Terminal', lines: 'nc -vz -w 10 smtp.office365.com 587' },
    ]);
    expect(diagnose(REFUSED_CONNECTION, { ...MICROSOFT_365, platform: 'windows' }).commands).toEqual([
      { shell: 'PowerShell', lines: 'Test-NetConnection smtp.office365.com -Port 587' },
    ]);
    expect(diagnose(REFUSED_CONNECTION, { ...MICROSOFT_365, platform: 'macos' }).commands[0]?.shell).toBe(
      'Terminal',
    );
  });

  it('was answered by nobody: the window does not say "the server said"', () => {
    expect(diagnose(REFUSED_CONNECTION, MICROSOFT_365).answeredBy).toBeNull();
    expect(
      diagnose({ kind: 'network', stage: 'connect', code: 'ETIMEDOUT', message: 'timeout' }).answeredBy,
    ).toBeNull();
    expect(
      diagnose({ kind: 'tls', stage: 'starttls', code: 'CERT_HAS_EXPIRED', message: 'x' }).answeredBy,
    ).toBeNull();
  });
});

describe('every row in the window', () => {
  // Every control the Settings page can focus: fields, and its own controls (secrets, devices...).
  const settingPaths = new Set(ALL_SECTIONS.flatMap((section) => section.items.map((item) => item.path)));
  const contexts: [string, DiagnosisContext][] = [
    ['the configured relay', { ...MICROSOFT_365, appId: 'app-1', tenant: 'contoso.com' }],
    ['nothing known', { platform: 'linux' }],
  ];

  it.each(
    DIAGNOSIS_RULES.flatMap((rule) =>
      contexts.map(([what, context]) => [rule.id, what, rule, context] as const),
    ),
  )('%s with %s: no command line, no placeholder', (_id, _what, rule, context) => {
    const diagnosis = diagnose(rule.example, context);
    const text = shownText(diagnosis);
    expect(text).not.toMatch(/npx|`relaydesk |relaydesk (password|check|signin)/);
    expect(text).not.toMatch(/<[A-Za-z][^>]*>/);
    expect(text).not.toMatch(/\{[^}]*\}/);
    for (const action of diagnosis.actions) {
      if ('setting' in action) expect(settingPaths, action.setting).toContain(action.setting);
    }
  });

  it('takes mailbox, host, port, sign-in method and password source from the config', () => {
    const config = defaultConfig();
    config.upstream.user = 'john@contoso.com';
    expect(diagnosisContextFor(config.upstream, {})).toMatchObject({
      mailbox: 'john@contoso.com',
      host: config.upstream.host,
      port: config.upstream.port,
      auth: config.upstream.auth,
      passwordSource: 'keychain',
    });
    expect(diagnosisContextFor(config.upstream, { RELAYDESK_UPSTREAM_PASSWORD: 'x' }).passwordSource).toBe(
      'environment',
    );
  });
});
