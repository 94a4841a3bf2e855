/** Microsoft 365 (and other SMTP servers) refusing the sign-in, or TLS before it. */
import type { RuleSource } from './types.ts';
import {
  CHECK_AGAIN,
  CHECK_AGAIN_CLI,
  ENTER_PASSWORD,
  PASSWORD_SET_CLI,
  STORE_PASSWORD_AGAIN_CLI,
  SWITCH_TO_OAUTH,
  TEST_AGAIN,
  openSetting,
} from './actions.ts';
import { replyLine } from './examples.ts';

/** What an app signing in with OAuth 2.0 needs in Exchange Online before its token is accepted for a mailbox. */
/** SMTP AUTH on for one mailbox: it overrides the tenant's switch, so it serves both rows. */
const SET_CAS_MAILBOX = 'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false';

const SERVICE_PRINCIPAL_STEPS =
  'the app has the Office 365 Exchange Online application permission SMTP.SendAsApp with admin ' +
  'consent granted, then register its service principal in Exchange Online and give it the mailbox ' +
  '(the PowerShell below; take the object ID from Enterprise applications, not App registrations).';
const SERVICE_PRINCIPAL =
  'New-ServicePrincipal -AppId <appId> -ObjectId <objectId of the Enterprise Application>\n' +
  'Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess';

export const SMTP_SIGN_IN_RULES: readonly RuleSource[] = [
  {
    id: 'tls-version-rejected',
    match: [{ kind: 'reply', enhanced: ['4.7.66'] }],
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'Microsoft 365 refused an old TLS version',
    explanation:
      'Microsoft 365 accepts TLS 1.2 or later only and closed the connection because TLS 1.0 or 1.1 ' +
      'was offered. RelayDesk itself always uses TLS 1.2 or later towards the upstream, so something ' +
      'between this PC and Microsoft re-encrypts the connection with an old version: usually a ' +
      'firewall or antivirus that inspects TLS.',
    fix:
      'Exempt <host> from TLS inspection in the firewall or antivirus, or update it so that it speaks ' +
      'TLS 1.2.',
    ...CHECK_AGAIN,
    example: replyLine(
      'starttls',
      '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls.',
    ),
  },
  {
    id: 'not-authenticated',
    match: [{ kind: 'reply', enhanced: ['5.7.57'] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Not signed in when sending',
    explanation:
      'Microsoft 365 refused the message because the connection had not signed in. Either the upstream ' +
      'is set to send without signing in (`"auth": "none"`), which smtp.office365.com does not allow, ' +
      'or STARTTLS or the sign-in failed earlier in the same connection.',
    fix:
      'Set `upstream.auth` to `password` or `oauth2` and store the secret. To send without signing in, ' +
      "use Direct Send instead (the `microsoft365-direct-send` preset and your tenant's MX host, which " +
      'ends in `.mail.protection.outlook.com`): it reaches recipients in your own tenant only.',
    cli: `Store the secret with ${PASSWORD_SET_CLI}; \`npx relaydesk check\` shows the step that fails.`,
    actions: [openSetting('upstream.auth', 'Choose how RelayDesk signs in'), TEST_AGAIN],
    example: replyLine(
      'mail',
      '530 5.7.57 Client not authenticated to send mail. [AM0PR02CA0001.eurprd02.prod.outlook.com 2026-01-12T09:14:03.120Z 08DE31A2B0C4D5E6]',
    ),
  },
  {
    id: 'starttls-required',
    match: [{ kind: 'reply', codes: [530], text: /STARTTLS/i }],
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'The server requires STARTTLS first',
    explanation:
      'The server accepts commands only after the connection is encrypted with STARTTLS, and RelayDesk ' +
      'is set to talk to it unencrypted.',
    fix: 'Set `upstream.security` to `starttls` (port 587 or 25).',
    cli: CHECK_AGAIN_CLI,
    actions: [openSetting('upstream.security', 'Change the connection security'), TEST_AGAIN],
    example: replyLine(
      'mail',
      '530 5.7.0 Must issue a STARTTLS command first. d9443c01a7336-21f3c2e5b1asm1234567b3 - gsmtp',
    ),
  },
  {
    id: 'smtp-auth-credentials-incorrect',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /credentials were incorrect/i }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Wrong user name or password',
    explanation:
      'Microsoft 365 did not accept the user name and password: the password is wrong or was changed, ' +
      'or the account must use multi-factor authentication, which an SMTP sign-in with a password ' +
      'cannot do.',
    fix:
      "Check that `upstream.user` is the mailbox's full address and enter the password again. If the " +
      'account requires MFA, switch the upstream to OAuth 2.0 (docs/microsoft365.md).',
    cli: STORE_PASSWORD_AGAIN_CLI,
    actions: [openSetting('upstream.user', 'Check the mailbox address'), ENTER_PASSWORD, TEST_AGAIN],
    refusedPassword: true,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. [PH0PR07CA0004.namprd07.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-auth-security-defaults',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /security defaults/i }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Security defaults block password sign-in',
    explanation:
      "Security defaults are turned on in the tenant's Microsoft Entra ID. They block signing in to " +
      'SMTP with a password (basic authentication) for every account, and no mailbox setting overrides ' +
      'them. The password itself may well be right.',
    fix:
      'Either switch the upstream to OAuth 2.0 (docs/microsoft365.md), which security defaults allow, ' +
      'or turn security defaults off (Microsoft Entra admin center → Identity → Overview → Properties ' +
      '→ Manage security defaults) and protect the tenant with Conditional Access policies instead.',
    actions: [SWITCH_TO_OAUTH],
    example: replyLine(
      'auth',
      "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [BN9PR03CA0123.namprd03.prod.outlook.com]",
    ),
  },
  {
    id: 'smtp-auth-conditional-access',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /did not meet the criteria/i }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'A Conditional Access policy blocked the sign-in',
    explanation:
      'A Conditional Access policy in Microsoft Entra ID (for example "require MFA" or "block legacy ' +
      'authentication", or a location rule) refused this sign-in. The password may well be right.',
    fix:
      "Open Microsoft Entra admin center → Sign-in logs and find <mailbox>'s failed sign-in: it names " +
      'the policy. Exclude this mailbox from that policy, or switch the upstream to OAuth 2.0 ' +
      '(docs/microsoft365.md).',
    actions: [SWITCH_TO_OAUTH, TEST_AGAIN],
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [MN2PR07CA0004.namprd07.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-auth-disabled-tenant',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /disabled for the tenant/i }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'SMTP AUTH is turned off for the whole tenant',
    explanation:
      'The tenant has SMTP AUTH switched off for every mailbox, so Microsoft 365 refuses the sign-in ' +
      'whatever the password. This is a setting, not a wrong password.',
    fix:
      'Turn SMTP AUTH on for just the mailbox RelayDesk uses (the mailbox setting overrides the ' +
      `tenant's) in Exchange Online PowerShell: \`${SET_CAS_MAILBOX}\`. To turn it on for the whole ` +
      'tenant instead: ' +
      '`Set-TransportConfig -SmtpClientAuthenticationDisabled $false`. The change can take some ' +
      'minutes to apply.',
    ...CHECK_AGAIN,
    commands: { exchangeOnline: SET_CAS_MAILBOX },
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0501CA0054.namprd05.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-auth-disabled-mailbox',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /disabled for the mailbox/i }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'SMTP AUTH is turned off for this mailbox',
    explanation:
      'The mailbox RelayDesk signs in as has SMTP AUTH switched off, so Microsoft 365 refuses the ' +
      'sign-in whatever the password. This is a setting, not a wrong password.',
    fix:
      'Turn SMTP AUTH on for the mailbox in Exchange Online PowerShell (or Microsoft 365 admin center ' +
      '→ Users → <mailbox> → Mail → Manage email apps → Authenticated SMTP). The change can take some ' +
      'minutes to apply.',
    ...CHECK_AGAIN,
    commands: { exchangeOnline: SET_CAS_MAILBOX },
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [DM6PR02CA0101.namprd02.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-basic-auth-disabled',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /basic authentication is disabled/i }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Password sign-in (basic authentication) is turned off',
    explanation:
      'Signing in to SMTP with a password is switched off for this mailbox: by an authentication ' +
      "policy, or by Microsoft's retirement of basic authentication for SMTP AUTH (off by default from " +
      'the end of December 2026, removed for good later).',
    fix:
      'Switch the upstream to OAuth 2.0 (docs/microsoft365.md): that is the lasting fix. Until then, ' +
      'check that SMTP AUTH is on for the mailbox and that no authentication policy blocks it ' +
      '(`Get-AuthenticationPolicy`, setting `AllowBasicAuthSmtp`).',
    actions: [SWITCH_TO_OAUTH],
    commands: { exchangeOnline: SET_CAS_MAILBOX },
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [BM1P287CA0015.INDP287.PROD.OUTLOOK.COM]',
    ),
  },
  {
    id: 'smtp-auth-policy',
    match: [{ kind: 'reply', enhanced: ['5.7.139'] }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'A tenant policy refused the sign-in',
    explanation:
      'Microsoft 365 refused the sign-in because of a setting or policy of the tenant or the mailbox, ' +
      'not because of the message.',
    fix:
      'Check that SMTP AUTH is on for the mailbox, then look up the failed sign-in of <mailbox> in ' +
      'Microsoft Entra admin center → Sign-in logs, which names the policy. Or switch the upstream to ' +
      'OAuth 2.0 (docs/microsoft365.md).',
    actions: [SWITCH_TO_OAUTH, TEST_AGAIN],
    commands: { exchangeOnline: SET_CAS_MAILBOX },
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, the organization configuration does not allow this authentication request. [LO2P265CA0001.GBRP265.PROD.OUTLOOK.COM]',
    ),
  },
  {
    id: 'auth-failed',
    match: [{ kind: 'reply', enhanced: ['5.7.3'] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign-in refused',
    explanation:
      'Microsoft 365 did not accept the sign-in. With a password: the password is wrong or was ' +
      'changed, the account requires MFA, or a Conditional Access policy blocks it. With OAuth 2.0: ' +
      "Exchange does not accept the app's token for this mailbox, usually because the app's service " +
      "principal is missing in Exchange Online (or was created with the App Registration's object ID " +
      "instead of the Enterprise Application's), the app has no permission on the mailbox, or " +
      '`upstream.user` is not that mailbox.',
    fix: `With a password: enter it again. With OAuth 2.0: check that ${SERVICE_PRINCIPAL_STEPS}`,
    cli: STORE_PASSWORD_AGAIN_CLI,
    actions: [ENTER_PASSWORD, TEST_AGAIN],
    commands: { exchangeOnline: SERVICE_PRINCIPAL },
    byAuth: {
      password: {
        explanation:
          'Microsoft 365 did not accept the password of <mailbox>: it is wrong or was changed, the ' +
          'account requires multi-factor authentication, or a Conditional Access policy blocks it.',
        fix:
          'Enter the password again. If it is right, find the failed sign-in of <mailbox> in Microsoft ' +
          'Entra admin center → Sign-in logs: it says whether multi-factor authentication or a ' +
          'Conditional Access policy refused it.',
        commands: {},
      },
      oauth2: {
        explanation:
          "Exchange does not accept the app's token for <mailbox>, usually because the app's service " +
          "principal is missing in Exchange Online (or was created with the App Registration's object ID " +
          "instead of the Enterprise Application's), the app has no permission on the mailbox, or " +
          '`upstream.user` is not that mailbox.',
        fix: `Check that ${SERVICE_PRINCIPAL_STEPS}`,
        cli: CHECK_AGAIN_CLI,
        actions: [TEST_AGAIN],
      },
    },
    refusedPassword: true,
    example: replyLine(
      'auth',
      '535 5.7.3 Authentication unsuccessful [SGXP274CA0016.SGPP274.PROD.OUTLOOK.COM 2025-03-20T11:25:21.972Z 08DD66EDEFB0DFDF]',
    ),
  },
  {
    id: 'basic-auth-retired',
    match: [{ kind: 'reply', enhanced: ['5.7.30'] }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Password sign-in is no longer supported',
    explanation:
      'Microsoft has removed basic authentication (user name and password) for SMTP client submission ' +
      'for this tenant. No password will work any more.',
    fix: 'Switch the upstream to OAuth 2.0; docs/microsoft365.md walks through the app registration.',
    actions: [SWITCH_TO_OAUTH],
    example: replyLine('auth', '550 5.7.30 Basic authentication is not supported for Client Submission.'),
  },
];
