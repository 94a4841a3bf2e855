/**
 * The diagnosis table: what an upstream said, what it means in plain words, how an admin fixes it,
 * and what the queue does meanwhile. One table, read top to bottom, first match wins, so every
 * retry-or-fail decision lives here and nowhere else. docs/troubleshooting.md describes every row.
 */
import type { SmtpReply, SmtpStage, TokenGrant, UpstreamFailure } from './upstream-failure.ts';

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

export interface Diagnosis {
  id: string;
  category: DiagnosisCategory;
  action: QueueAction;
  class: DiagnosisClass;
  title: string;
  explanation: string;
  fix: string;
  /** Exchange Online (or Windows) PowerShell to run, one command per line; null when none helps. */
  powershell: string | null;
  /** From the upstream's Retry-After when it sent one and the action is `retry`. */
  retryAfterSeconds?: number | null;
}

/** An enhanced status code (`5.7.139`), or an inclusive range within one class.subject. */
export type EnhancedCodePattern = string | readonly [from: string, to: string];

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
  | {
      kind: 'token';
      aadsts?: readonly number[];
      status?: readonly number[];
      statusClass?: 4 | 5;
      /** OAuth 2.0 `error` values (`invalid_grant`, `expired_token`). */
      errors?: readonly string[];
      /** The grants it applies to; a failure without a grant is client credentials. */
      grants?: readonly TokenGrant[];
    }
  | {
      kind: 'graph';
      /** Graph `error.code` values, compared without regard to case. */
      codes?: readonly string[];
      status?: readonly number[];
      statusClass?: 4 | 5;
      /** Tested against the Graph error message. */
      text?: RegExp;
    }
  | { kind: 'config'; codes?: readonly string[] };

export interface DiagnosisRule {
  id: string;
  /** The rule applies when any of these matches. */
  match: readonly DiagnosisMatch[];
  category: DiagnosisCategory;
  action: QueueAction;
  class: DiagnosisClass;
  title: string;
  explanation: string;
  /** May hold the placeholders `<mailbox>`, `<appId>`, `<oauthTenant>`, `<address>`, `<host>` and `<port>`. */
  fix: string;
  powershell: string | null;
  /** A real failure that this row matches: used by tests and docs. */
  example: UpstreamFailure;
}

/** What the caller knows about the relay's setup; fills the placeholders in `fix` and `powershell`. */
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
}

/** Builds an example reply failure from the reply line as the server sent it. */
function replyLine(stage: SmtpStage, raw: string): UpstreamFailure {
  const parsed = /^(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3}) )?(.*)$/.exec(raw);
  if (!parsed) throw new Error(`not an SMTP reply line: ${raw}`);
  const reply: SmtpReply = {
    code: Number(parsed[1]),
    enhanced: parsed[2] ?? null,
    text: parsed[3] ?? '',
    raw,
  };
  return { kind: 'reply', stage, reply };
}

const NPX_PASSWORD_SET = '`npx relaydesk password set`';
const SET_CAS_MAILBOX = 'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false';
const TEST_CONNECTION = 'Test-NetConnection <host> -Port <port>';
const OAUTH_DOC = 'docs/microsoft365.md';

const REPLY_RULES: readonly DiagnosisRule[] = [
  {
    id: 'tls-version-rejected',
    match: [{ kind: 'reply', enhanced: ['4.7.66'] }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'Microsoft 365 refused an old TLS version',
    explanation:
      'Microsoft 365 accepts TLS 1.2 or later only and closed the connection because TLS 1.0 or 1.1 was ' +
      'offered. RelayDesk itself always uses TLS 1.2 or later towards the upstream, so something between ' +
      'this PC and Microsoft re-encrypts the connection with an old version: usually a firewall or ' +
      'antivirus that inspects TLS.',
    fix:
      'Exempt <host> from TLS inspection in the firewall or antivirus, or update it so that it speaks ' +
      'TLS 1.2. Then run `npx relaydesk check`.',
    powershell: null,
    example: replyLine(
      'starttls',
      '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls.',
    ),
  },
  {
    id: 'not-authenticated',
    match: [{ kind: 'reply', enhanced: ['5.7.57'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Not signed in when sending',
    explanation:
      'Microsoft 365 refused the message because the connection had not signed in. Either the upstream ' +
      'is set to send without signing in (`"auth": "none"`), which smtp.office365.com does not allow, or ' +
      'STARTTLS or the sign-in failed earlier in the same connection.',
    fix:
      'Set `upstream.auth` to `password` or `oauth2` and store the secret with ' +
      NPX_PASSWORD_SET +
      '; `npx relaydesk check` shows the step that fails. To send without signing in, use Direct Send ' +
      "instead (the `microsoft365-direct-send` preset and the tenant's MX host, " +
      '`<tenant>.mail.protection.outlook.com`): it reaches recipients in your own tenant only.',
    powershell: null,
    example: replyLine(
      'mail',
      '530 5.7.57 Client not authenticated to send mail. [AM0PR02CA0001.eurprd02.prod.outlook.com 2026-01-12T09:14:03.120Z 08DE31A2B0C4D5E6]',
    ),
  },
  {
    id: 'starttls-required',
    match: [{ kind: 'reply', codes: [530], text: /STARTTLS/i }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'The server requires STARTTLS first',
    explanation:
      'The server accepts commands only after the connection is encrypted with STARTTLS, and RelayDesk ' +
      'is set to talk to it unencrypted.',
    fix: 'Set `upstream.security` to `starttls` (port 587 or 25), then run `npx relaydesk check`.',
    powershell: null,
    example: replyLine(
      'mail',
      '530 5.7.0 Must issue a STARTTLS command first. d9443c01a7336-21f3c2e5b1asm1234567b3 - gsmtp',
    ),
  },
  {
    id: 'smtp-auth-credentials-incorrect',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /credentials were incorrect/i }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Wrong user name or password',
    explanation:
      'Microsoft 365 did not accept the user name and password: the password is wrong or was changed, or ' +
      'the account must use multi-factor authentication, which an SMTP sign-in with a password cannot do.',
    fix:
      "Check that `upstream.user` is the mailbox's full address and enter the password again with " +
      NPX_PASSWORD_SET +
      '. If the account requires MFA, switch the upstream to OAuth 2.0 (' +
      OAUTH_DOC +
      ').',
    powershell: null,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. [PH0PR07CA0004.namprd07.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-auth-security-defaults',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /security defaults/i }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Security defaults block password sign-in',
    explanation:
      "Security defaults are turned on in the tenant's Microsoft Entra ID. They block signing in to SMTP " +
      'with a password (basic authentication) for every account, and no mailbox setting overrides them. ' +
      'The password itself may well be right.',
    fix:
      'Either switch the upstream to OAuth 2.0 (' +
      OAUTH_DOC +
      '), which security defaults allow, or turn security defaults off (Microsoft Entra admin center → ' +
      'Identity → Overview → Properties → Manage security defaults) and protect the tenant with ' +
      'Conditional Access policies instead.',
    powershell: null,
    example: replyLine(
      'auth',
      "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [BN9PR03CA0123.namprd03.prod.outlook.com]",
    ),
  },
  {
    id: 'smtp-auth-conditional-access',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /did not meet the criteria/i }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'A Conditional Access policy blocked the sign-in',
    explanation:
      'A Conditional Access policy in Microsoft Entra ID (for example "require MFA" or "block legacy ' +
      'authentication", or a location rule) refused this sign-in. The password may well be right.',
    fix:
      "Open Microsoft Entra admin center → Sign-in logs and find <mailbox>'s failed sign-in: it names the " +
      'policy. Exclude this mailbox from that policy, or switch the upstream to OAuth 2.0 (' +
      OAUTH_DOC +
      ').',
    powershell: null,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [MN2PR07CA0004.namprd07.prod.outlook.com]',
    ),
  },
  // For the tenant-wide switch the table offers the per-mailbox line: it overrides the tenant's
  // setting and opens SMTP AUTH for this one mailbox instead of all of them.
  {
    id: 'smtp-auth-disabled-tenant',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /disabled for the tenant/i }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'SMTP AUTH is turned off for the whole tenant',
    explanation:
      'The tenant has SMTP AUTH switched off for every mailbox, so Microsoft 365 refuses the sign-in ' +
      'whatever the password. This is a setting, not a wrong password.',
    fix:
      'Turn SMTP AUTH on for just the mailbox RelayDesk uses (the mailbox setting overrides the ' +
      "tenant's) in Exchange Online PowerShell: `" +
      SET_CAS_MAILBOX +
      '`. To turn it on for the whole tenant instead: `Set-TransportConfig ' +
      '-SmtpClientAuthenticationDisabled $false`. The change can take some minutes to apply; then run ' +
      '`npx relaydesk check`.',
    powershell: SET_CAS_MAILBOX,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0501CA0054.namprd05.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-auth-disabled-mailbox',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /disabled for the mailbox/i }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'SMTP AUTH is turned off for this mailbox',
    explanation:
      'The mailbox RelayDesk signs in as has SMTP AUTH switched off, so Microsoft 365 refuses the sign-in ' +
      'whatever the password. This is a setting, not a wrong password.',
    fix:
      'Turn SMTP AUTH on for the mailbox in Exchange Online PowerShell (or Microsoft 365 admin center → ' +
      'Users → <mailbox> → Mail → Manage email apps → Authenticated SMTP). The change can take some ' +
      'minutes to apply; then run `npx relaydesk check`.',
    powershell: SET_CAS_MAILBOX,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [DM6PR02CA0101.namprd02.prod.outlook.com]',
    ),
  },
  {
    id: 'smtp-basic-auth-disabled',
    match: [{ kind: 'reply', enhanced: ['5.7.139'], text: /basic authentication is disabled/i }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Password sign-in (basic authentication) is turned off',
    explanation:
      'Signing in to SMTP with a password is switched off for this mailbox: by an authentication policy, ' +
      "or by Microsoft's retirement of basic authentication for SMTP AUTH (off by default from the end " +
      'of December 2026, removed for good later).',
    fix:
      'Switch the upstream to OAuth 2.0 (' +
      OAUTH_DOC +
      '): that is the lasting fix. Until then, check that SMTP AUTH is on for the mailbox and that no ' +
      'authentication policy blocks it (`Get-AuthenticationPolicy`, setting `AllowBasicAuthSmtp`).',
    powershell: SET_CAS_MAILBOX,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [BM1P287CA0015.INDP287.PROD.OUTLOOK.COM]',
    ),
  },
  {
    id: 'smtp-auth-policy',
    match: [{ kind: 'reply', enhanced: ['5.7.139'] }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'A tenant policy refused the sign-in',
    explanation:
      'Microsoft 365 refused the sign-in because of a setting or policy of the tenant or the mailbox, not ' +
      'because of the message.',
    fix:
      'Check that SMTP AUTH is on for the mailbox, then look up the failed sign-in of <mailbox> in ' +
      'Microsoft Entra admin center → Sign-in logs, which names the policy. Or switch the upstream to ' +
      'OAuth 2.0 (' +
      OAUTH_DOC +
      ').',
    powershell: SET_CAS_MAILBOX,
    example: replyLine(
      'auth',
      '535 5.7.139 Authentication unsuccessful, the organization configuration does not allow this authentication request. [LO2P265CA0001.GBRP265.PROD.OUTLOOK.COM]',
    ),
  },
  {
    id: 'auth-failed',
    match: [{ kind: 'reply', enhanced: ['5.7.3'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign-in refused',
    explanation:
      'Microsoft 365 did not accept the sign-in. With a password: the password is wrong or was changed, ' +
      'the account requires MFA, or a Conditional Access policy blocks it. With OAuth 2.0: Exchange ' +
      "does not accept the app's token for this mailbox, usually because the app's service principal is " +
      "missing in Exchange Online (or was created with the App Registration's object ID instead of the " +
      "Enterprise Application's), the app has no permission on the mailbox, or `upstream.user` is not " +
      'that mailbox.',
    fix:
      'With a password: enter it again with ' +
      NPX_PASSWORD_SET +
      '. With OAuth 2.0: check that the app has the Office 365 Exchange Online application permission ' +
      'SMTP.SendAsApp with admin consent granted, then register its service principal in Exchange Online ' +
      'and give it the mailbox (the PowerShell below; take the object ID from Enterprise applications, ' +
      'not App registrations). Then run `npx relaydesk check`.',
    powershell:
      'New-ServicePrincipal -AppId <appId> -ObjectId <objectId of the Enterprise Application>\n' +
      'Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess',
    example: replyLine(
      'auth',
      '535 5.7.3 Authentication unsuccessful [SGXP274CA0016.SGPP274.PROD.OUTLOOK.COM 2025-03-20T11:25:21.972Z 08DD66EDEFB0DFDF]',
    ),
  },
  {
    id: 'basic-auth-retired',
    match: [{ kind: 'reply', enhanced: ['5.7.30'] }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Password sign-in is no longer supported',
    explanation:
      'Microsoft has removed basic authentication (user name and password) for SMTP client submission ' +
      'for this tenant. No password will work any more.',
    fix: 'Switch the upstream to OAuth 2.0; ' + OAUTH_DOC + ' walks through the app registration.',
    powershell: null,
    example: replyLine('auth', '550 5.7.30 Basic authentication is not supported for Client Submission.'),
  },
  // Not 'hold': only this sender is refused, and holding the whole queue for one device's sender
  // would block every other device.
  {
    id: 'send-as-denied',
    match: [
      { kind: 'reply', enhanced: ['5.7.60', '5.2.252'] },
      { kind: 'reply', text: /SendAsDenied/i },
    ],
    category: 'send-as',
    action: 'fail-message',
    class: 'message',
    title: 'Not allowed to send as this sender',
    explanation:
      "The message's sender address is not the mailbox RelayDesk signs in as, and that mailbox has no " +
      '"Send As" right on it. Every message from this sender fails the same way until it is fixed; ' +
      'messages from other senders still go out.',
    fix:
      'Choose one: give the mailbox Send As on the address (PowerShell below; it can take up to an hour ' +
      'to apply); or add <address> as an alias of <mailbox>; or let RelayDesk replace the sender with the ' +
      'mailbox: `"sender": {"mode": "rewrite"}` in the config.',
    powershell: 'Add-RecipientPermission -Identity <address> -AccessRights SendAs -Trustee <mailbox>',
    example: replyLine(
      'data',
      '554 5.2.252 SendAsDenied; john@contoso.com not allowed to send as HelpDesk@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.',
    ),
  },
  {
    id: 'sender-thread-limit',
    match: [
      { kind: 'reply', codes: [432], enhanced: ['4.3.2'] },
      { kind: 'reply', text: /sender thread limit/i },
    ],
    category: 'throttling',
    action: 'retry',
    class: 'relay',
    title: 'Too many connections for this mailbox',
    explanation:
      'Microsoft 365 allows 3 connections at a time per mailbox, and this one was over the limit. ' +
      'RelayDesk retries the message shortly.',
    fix:
      'Set `upstream.maxConnections` to 3 or lower, and check that no other program (another relay, a ' +
      'scanner sending directly) signs in as <mailbox> at the same time.',
    powershell: null,
    example: replyLine(
      'mail',
      '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=AM6PR02MB1234.eurprd02.prod.outlook.com]',
    ),
  },
  {
    id: 'throttled',
    match: [{ kind: 'reply', enhanced: [['4.7.500', '4.7.699']] }],
    category: 'throttling',
    action: 'retry',
    class: 'relay',
    title: 'Microsoft 365 is slowing this sender down',
    explanation:
      'Microsoft 365 is throttling: it is busy, or this mailbox or IP address sent a lot recently. The ' +
      'message stays queued and RelayDesk retries it later.',
    fix:
      'Nothing, if it passes. If it keeps happening, lower `upstream.messagesPerMinute` (a mailbox takes ' +
      '30 a minute) and check that the devices are not sending more than expected.',
    powershell: null,
    example: replyLine(
      'mail',
      '451 4.7.500 Server busy. Please try again later from [203.0.113.17]. (S77719) [VI1EUR04FT012.eop-eur04.prod.protection.outlook.com]',
    ),
  },
  {
    id: 'ip-not-accepted',
    match: [{ kind: 'reply', enhanced: ['5.7.708'] }],
    category: 'account-blocked',
    action: 'hold',
    class: 'relay',
    title: "Microsoft 365 does not accept mail from this PC's IP address",
    explanation:
      'Microsoft refuses traffic from this public IP address because of its reputation. It happens most ' +
      'often to new and trial tenants, and to addresses that sent spam before.',
    fix:
      'Open a support request with Microsoft (Microsoft 365 admin center → Support) quoting the full ' +
      'reply. A paid (non-trial) tenant and a fixed public IP address help.',
    powershell: null,
    example: replyLine(
      'mail',
      '550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(3110) [AM5EUR02FT013.eop-EUR02.prod.protection.outlook.com]',
    ),
  },
  {
    id: 'tenant-blocked',
    match: [{ kind: 'reply', enhanced: ['5.7.705'] }],
    category: 'account-blocked',
    action: 'hold',
    class: 'relay',
    title: 'The tenant is blocked for sending',
    explanation:
      'Microsoft blocked the whole tenant from sending because too much spam or bulk mail came from it.',
    fix:
      'Look for compromised accounts in the tenant (unexpected inbox rules, mass sending), secure them, ' +
      'then open a support request with Microsoft to lift the block.',
    powershell: null,
    example: replyLine(
      'mail',
      '550 5.7.705 Access denied, tenant has exceeded threshold. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653',
    ),
  },
  {
    id: 'account-restricted',
    match: [
      { kind: 'reply', enhanced: ['5.7.501', '5.7.502', '5.7.503', '5.7.511', '5.1.8'] },
      { kind: 'reply', text: /bad outbound sender/i },
    ],
    category: 'account-blocked',
    action: 'hold',
    class: 'relay',
    title: 'The mailbox is blocked from sending',
    explanation:
      'Microsoft blocked the mailbox RelayDesk signs in as from sending mail, because it sent spam or ' +
      'looked compromised. Nothing from it will go out until the block is lifted.',
    fix:
      'Treat the account as compromised: reset its password, sign it out everywhere, and check its inbox ' +
      'rules and Sent Items. Then release it: Microsoft Defender portal → Email & collaboration → Review ' +
      '→ Restricted entities, or the PowerShell below. A banned sender (5.7.511) can only be released by ' +
      'Microsoft support.',
    powershell: 'Remove-BlockedSenderAddress -SenderAddress <mailbox>',
    example: replyLine(
      'mail',
      '550 5.1.8 Access denied, bad outbound sender. AS(42004) [DB8EUR05FT003.eop-eur05.prod.protection.outlook.com]',
    ),
  },
  {
    id: 'daily-recipient-limit',
    match: [{ kind: 'reply', text: /SubmissionQuotaExceeded/i }],
    category: 'quota',
    action: 'hold',
    class: 'relay',
    title: 'Daily sending limit reached',
    explanation:
      'The mailbox has sent to 10,000 recipients within 24 hours, the most Microsoft 365 allows. Every ' +
      'message would be refused until the count drops, so RelayDesk holds the queue instead of failing ' +
      'them.',
    fix:
      "Wait: the count covers the last 24 hours. If the office's devices cannot have sent that much, the " +
      'account is probably compromised: reset its password and check its Sent Items. For more volume, ' +
      'spread the devices over more mailboxes.',
    powershell: null,
    example: replyLine(
      'data',
      '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.',
    ),
  },
  {
    id: 'mailbox-full',
    match: [
      { kind: 'reply', text: /\bQuotaExceededException/i },
      { kind: 'reply', enhanced: ['5.2.2'], stages: ['mail', 'data', 'message'] },
    ],
    category: 'quota',
    action: 'hold',
    class: 'relay',
    title: 'The sending mailbox is full',
    explanation:
      'Microsoft 365 keeps a copy of every message sent through SMTP AUTH in Sent Items, and the mailbox ' +
      'RelayDesk signs in as has run out of space. It cannot send until space is freed.',
    fix:
      "Empty <mailbox>'s Sent Items and Deleted Items, or set a retention policy that deletes old sent " +
      'items, or give the mailbox a larger quota or an archive.',
    powershell: null,
    example: replyLine(
      'data',
      '554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionQuotaExceeded; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.',
    ),
  },
  {
    id: 'message-too-large',
    match: [
      { kind: 'reply', text: /MaxSubmissionExceeded/i },
      { kind: 'reply', enhanced: ['5.3.4', '5.2.3'] },
      { kind: 'reply', codes: [552], stages: ['mail', 'data', 'message'] },
    ],
    category: 'size',
    action: 'fail-message',
    class: 'message',
    title: 'Message too large',
    explanation:
      'The message is larger than the mailbox may send (35 MB by default). Attachments count about a ' +
      'third larger than their file size once encoded for mail, so a 30 MB scan is about 40 MB.',
    fix:
      'Scan at a lower resolution, in black and white, or in fewer pages per message. Or raise the ' +
      "mailbox's limit (at most 150 MB) with the PowerShell below and raise `upstream.maxMessageBytes` " +
      'to match, so devices are told the new limit.',
    powershell: 'Set-Mailbox -Identity <mailbox> -MaxSendSize 150MB',
    example: replyLine(
      'message',
      '552 5.3.4 Message size exceeds fixed maximum message size; STOREDRV.Submission.Exception:MessageTooLargeException.MapiExceptionMaxSubmissionExceeded',
    ),
  },
  {
    id: 'bare-lf',
    match: [{ kind: 'reply', enhanced: ['5.6.11'] }],
    category: 'unknown',
    action: 'fail-message',
    class: 'message',
    title: 'Message has bare line feeds',
    explanation:
      'The message has lines that end in a bare line feed instead of CR LF. Exchange Online no longer ' +
      'repairs them, and the receiving side refuses them. RelayDesk converts bare line feeds to CR LF ' +
      'before relaying, so a message that meets this most likely did not go through RelayDesk: a device ' +
      'that sends to Microsoft 365 directly.',
    fix:
      'Point the device at RelayDesk instead of at Microsoft 365, and send the message again. If a message ' +
      'relayed by RelayDesk gets this reply, report it with the log.',
    powershell: null,
    example: replyLine(
      'message',
      '550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds, which cannot be sent via DATA and receiving system does not support BDAT',
    ),
  },
  {
    id: 'direct-send-disabled',
    match: [{ kind: 'reply', enhanced: ['5.7.68'] }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Direct Send is turned off for the tenant',
    explanation:
      'The tenant refuses Direct Send, mail delivered to its MX host without signing in, which is how ' +
      'RelayDesk sends with the Direct Send preset.',
    fix:
      'Allow Direct Send again with the PowerShell below, or (recommended) switch the upstream to the ' +
      'Microsoft 365 preset, which signs in with a mailbox.',
    powershell: 'Set-OrganizationConfig -RejectDirectSend $false',
    example: replyLine(
      'mail',
      '550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources',
    ),
  },
  {
    id: 'direct-send-external-recipient',
    match: [{ kind: 'reply', enhanced: ['5.7.54'] }],
    category: 'recipient',
    action: 'fail-recipient',
    class: 'recipient',
    title: 'Direct Send cannot reach this recipient',
    explanation:
      "The recipient is outside the tenant's own domains. Direct Send delivers only to the tenant's " +
      'mailboxes; the other recipients of the message are unaffected.',
    fix:
      'To reach outside addresses, switch the upstream to the Microsoft 365 preset (SMTP AUTH with a ' +
      'mailbox) or OAuth 2.0.',
    powershell: null,
    example: replyLine(
      'rcpt',
      '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain [AM4PEPF00027A5F.eurprd04.prod.outlook.com]',
    ),
  },
  {
    id: 'recipient-unknown',
    match: [{ kind: 'reply', enhanced: ['5.1.1', '5.1.10'], stages: ['rcpt'] }],
    category: 'recipient',
    action: 'fail-recipient',
    class: 'recipient',
    title: 'No such recipient',
    explanation: 'The recipient address does not exist. The other recipients of the message are unaffected.',
    fix: 'Correct the address in the device or application that sent the message.',
    powershell: null,
    example: replyLine(
      'rcpt',
      '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.com not found by SMTP address lookup',
    ),
  },
  {
    id: 'recipient-rejected',
    match: [{ kind: 'reply', enhanced: ['5.4.1'], stages: ['rcpt'] }],
    category: 'recipient',
    action: 'fail-recipient',
    class: 'recipient',
    title: 'Recipient address rejected',
    explanation:
      'The receiving organisation refused this recipient: usually the address does not exist in that ' +
      'domain, or the domain is not one it accepts mail for. The other recipients are unaffected.',
    fix: 'Correct the address in the device or application that sent the message.',
    powershell: null,
    example: replyLine(
      'rcpt',
      '550 5.4.1 Recipient address rejected: Access denied. [AM2PEPF0001C710.eurprd05.prod.outlook.com]',
    ),
  },
  {
    id: 'too-many-recipients',
    match: [{ kind: 'reply', enhanced: ['4.5.3'] }],
    category: 'throttling',
    action: 'retry',
    class: 'message',
    title: 'Too many recipients in one go',
    explanation:
      'The server takes only so many recipients per message (500 for a Microsoft 365 mailbox). RelayDesk ' +
      'keeps the rest queued and sends them later.',
    fix: 'Nothing. If it happens often, have the device send to a distribution group instead.',
    powershell: null,
    example: replyLine('rcpt', '452 4.5.3 Too many recipients'),
  },
  {
    id: 'app-password-required',
    match: [{ kind: 'reply', codes: [534], enhanced: ['5.7.9'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'An app password is required',
    explanation:
      'The account has 2-step verification, so the server takes an app password instead of the normal ' +
      'password.',
    fix:
      'Create an app password for the account (for Google: Google account → Security → 2-Step ' +
      'Verification → App passwords) and store it with ' +
      NPX_PASSWORD_SET +
      '.',
    powershell: null,
    example: replyLine(
      'auth',
      '534 5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/?p=InvalidSecondFactor',
    ),
  },
  {
    id: 'auth-rejected',
    match: [{ kind: 'reply', codes: [534, 535] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'User name or password not accepted',
    explanation: 'The server refused the sign-in: the user name or password is wrong or no longer valid.',
    fix:
      'Check `upstream.user` and enter the password again with ' +
      NPX_PASSWORD_SET +
      ', then run `npx relaydesk check`.',
    powershell: null,
    example: replyLine(
      'auth',
      '535 5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials',
    ),
  },
  {
    id: 'reply-421',
    match: [{ kind: 'reply', codes: [421] }],
    category: 'unknown',
    action: 'retry',
    class: 'relay',
    title: 'The server closed the connection for now',
    explanation:
      'The server is busy, restarting or has too many connections, and asked RelayDesk to come back ' +
      'later. The message stays queued.',
    fix: 'Nothing, if it passes. If it keeps happening, lower `upstream.maxConnections`.',
    powershell: null,
    example: replyLine('greeting', '421 4.3.2 Service not available, closing transmission channel'),
  },
  {
    id: 'reply-4xx',
    match: [{ kind: 'reply', replyClass: 4 }],
    category: 'unknown',
    action: 'retry',
    class: 'message',
    title: 'Temporary failure',
    explanation:
      'The server reported a temporary problem. The message stays queued and RelayDesk retries it.',
    fix: 'Nothing, if it passes. If it keeps happening, look up the reply text shown in the queue.',
    powershell: null,
    example: replyLine('data', '451 4.3.0 Temporary server error. Please try again later'),
  },
  {
    id: 'reply-5xx-recipient',
    match: [{ kind: 'reply', replyClass: 5, stages: ['rcpt'] }],
    category: 'recipient',
    action: 'fail-recipient',
    class: 'recipient',
    title: 'Recipient refused',
    explanation:
      'The server refused this recipient for good. The other recipients of the message are unaffected.',
    fix: 'Check the address, and the reply text for the reason.',
    powershell: null,
    example: replyLine('rcpt', '553 5.1.3 The recipient address is not a valid RFC 5321 address'),
  },
  {
    id: 'reply-5xx-auth',
    match: [{ kind: 'reply', replyClass: 5, stages: ['auth'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign-in failed',
    explanation: 'The server refused the sign-in, so no message can be sent until this is fixed.',
    fix:
      'Check `upstream.user`, `upstream.auth` and the stored password (' +
      NPX_PASSWORD_SET +
      '), then run `npx relaydesk check`.',
    powershell: null,
    example: replyLine('auth', '504 5.7.4 Unrecognized authentication type'),
  },
  {
    id: 'reply-5xx-session',
    match: [{ kind: 'reply', replyClass: 5, stages: ['connect', 'greeting', 'ehlo', 'starttls'] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'The server refused the connection',
    explanation:
      "The server refused RelayDesk before any message was sent: this PC's IP address may be blocked, " +
      'or `upstream.host` is not a server that accepts mail from RelayDesk.',
    fix: 'Check `upstream.host`, `upstream.port` and `upstream.security`, and the reply text for the reason.',
    powershell: null,
    example: replyLine('greeting', '554 5.7.1 Service unavailable; Client host [203.0.113.17] blocked'),
  },
  {
    id: 'reply-5xx-message',
    match: [{ kind: 'reply', replyClass: 5 }],
    category: 'unknown',
    action: 'fail-message',
    class: 'message',
    title: 'Message refused',
    explanation: 'The server refused this message for good. Other messages are unaffected.',
    fix: 'Look up the reply text shown in the queue; it usually names the reason.',
    powershell: null,
    example: replyLine('data', '550 5.7.1 Message rejected as spam by Content Filtering'),
  },
];

const NETWORK_RULES: readonly DiagnosisRule[] = [
  {
    id: 'dns-failed',
    match: [{ kind: 'network', codes: ['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL'] }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'Server name not found',
    explanation:
      "This PC could not look up the upstream's name: the name is misspelled, or the PC's DNS server " +
      'is not answering (no internet connection, VPN, DNS filter).',
    fix: 'Check `upstream.host` for typing errors, then check that this PC resolves it:',
    powershell: 'Resolve-DnsName <host>',
    example: {
      kind: 'network',
      stage: 'connect',
      code: 'ENOTFOUND',
      message: 'getaddrinfo ENOTFOUND smtp.office356.com',
    },
  },
  {
    id: 'connection-refused',
    match: [{ kind: 'network', codes: ['ECONNREFUSED'] }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'Connection refused',
    explanation:
      'Nothing accepts connections at that address and port, or a firewall turns them away. Many internet ' +
      'providers block outgoing port 25.',
    fix:
      'Check `upstream.host` and `upstream.port` (Microsoft 365: smtp.office365.com, port 587), and test ' +
      'the port from this PC; if it fails, ask whoever runs the firewall or the internet line to allow it.',
    powershell: TEST_CONNECTION,
    example: {
      kind: 'network',
      stage: 'connect',
      code: 'ECONNREFUSED',
      message: 'connect ECONNREFUSED 52.96.40.242:25',
    },
  },
  {
    id: 'connection-timeout',
    match: [{ kind: 'network', codes: [/TIMEDOUT|TIMEOUT/i] }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'No answer from the server',
    explanation:
      'The server did not answer in time. Usually a firewall silently drops the connection (many internet ' +
      'providers drop outgoing port 25), sometimes the internet connection is down or very slow.',
    fix:
      'Test the port from this PC; if it fails, ask whoever runs the firewall or the internet line to ' +
      'allow it. If it only happens under load, raise `upstream.timeoutSeconds`.',
    powershell: TEST_CONNECTION,
    example: {
      kind: 'network',
      stage: 'connect',
      code: 'ETIMEDOUT',
      message: 'connect ETIMEDOUT 52.96.40.242:587',
    },
  },
  {
    id: 'connection-reset',
    match: [{ kind: 'network', codes: ['ECONNRESET', 'EPIPE', 'ECONNABORTED'] }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'Connection dropped',
    explanation:
      'The connection was cut in the middle of the conversation: by the server, a firewall, or an ' +
      'unstable internet line. The message stays queued and RelayDesk retries it.',
    fix:
      'Nothing, if it passes. If it keeps happening, check the firewall or antivirus for mail scanning ' +
      'that interrupts connections.',
    powershell: null,
    example: { kind: 'network', stage: 'data', code: 'ECONNRESET', message: 'read ECONNRESET' },
  },
  {
    id: 'host-unreachable',
    match: [{ kind: 'network', codes: ['EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN'] }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'No network route to the server',
    explanation:
      'This PC has no way to reach the server: the network cable, Wi-Fi or VPN is down, or the PC has no ' +
      'default gateway.',
    fix: "Check this PC's network connection, then test the port:",
    powershell: TEST_CONNECTION,
    example: {
      kind: 'network',
      stage: 'connect',
      code: 'ENETUNREACH',
      message: 'connect ENETUNREACH 52.96.40.242:587',
    },
  },
  {
    id: 'network-other',
    match: [{ kind: 'network' }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'Network error',
    explanation: 'The connection to the server failed. The message stays queued and RelayDesk retries it.',
    fix: 'Nothing, if it passes. If it keeps happening, test the port from this PC:',
    powershell: TEST_CONNECTION,
    example: { kind: 'network', stage: 'connect', code: 'EADDRNOTAVAIL', message: 'connect EADDRNOTAVAIL' },
  },
];

const TLS_RULES: readonly DiagnosisRule[] = [
  {
    id: 'tls-untrusted-certificate',
    match: [
      {
        kind: 'tls',
        codes: [
          'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
          'SELF_SIGNED_CERT_IN_CHAIN',
          'DEPTH_ZERO_SELF_SIGNED_CERT',
          'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
          'UNABLE_TO_GET_ISSUER_CERT',
          'CERT_UNTRUSTED',
          'CERT_SIGNATURE_FAILURE',
        ],
      },
    ],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: "The server's certificate is not trusted",
    explanation:
      "The server's certificate is not signed by an authority this PC trusts. Often a firewall or " +
      'antivirus intercepts TLS and presents its own certificate; with a private mail server, the server ' +
      'uses a certificate from a private authority. RelayDesk never turns certificate checks off.',
    fix:
      'If a firewall or antivirus inspects TLS, exempt <host> from inspection. For a private server, save ' +
      "the authority's certificate as a PEM file and set `upstream.caFile` to its path.",
    powershell: null,
    example: {
      kind: 'tls',
      stage: 'starttls',
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
      message: 'self-signed certificate in certificate chain',
    },
  },
  {
    id: 'tls-certificate-expired',
    match: [{ kind: 'tls', codes: ['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'] }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: "The server's certificate is out of date",
    explanation: "The server's certificate has expired or is not valid yet, or this PC's clock is wrong.",
    fix:
      "First check this PC's date, time and time zone. If they are right, the server's certificate must " +
      'be renewed by whoever runs the server.',
    powershell: null,
    example: { kind: 'tls', stage: 'starttls', code: 'CERT_HAS_EXPIRED', message: 'certificate has expired' },
  },
  {
    id: 'tls-wrong-host',
    match: [{ kind: 'tls', codes: ['ERR_TLS_CERT_ALTNAME_INVALID'] }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'The certificate is for another server name',
    explanation:
      "The server's certificate does not name the host RelayDesk connects to: `upstream.host` is an IP " +
      'address or an alias, or a firewall intercepts TLS.',
    fix: 'Set `upstream.host` to the name on the certificate (for Microsoft 365, smtp.office365.com).',
    powershell: null,
    example: {
      kind: 'tls',
      stage: 'starttls',
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      message:
        "Hostname/IP does not match certificate's altnames: IP: 52.96.40.242 is not in the cert's list: ",
    },
  },
  {
    id: 'tls-not-spoken',
    match: [{ kind: 'tls', codes: ['ERR_SSL_WRONG_VERSION_NUMBER'] }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'The server did not answer in TLS',
    explanation:
      'RelayDesk started TLS but the server answered in plain text. Most often `upstream.security` is ' +
      '`tls` (encrypted from the first byte, port 465) on a port that expects STARTTLS (587 or 25); ' +
      'Microsoft 365 has no port 465. Less often the server speaks only an old TLS version.',
    fix: 'For port 587 or 25, set `upstream.security` to `starttls`; `tls` belongs with port 465.',
    powershell: null,
    example: {
      kind: 'tls',
      stage: 'connect',
      code: 'ERR_SSL_WRONG_VERSION_NUMBER',
      message: 'SSL routines:ssl3_get_record:wrong version number',
    },
  },
  {
    id: 'tls-old-version',
    match: [
      {
        kind: 'tls',
        codes: [
          'ERR_SSL_UNSUPPORTED_PROTOCOL',
          'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
          /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/,
        ],
      },
    ],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'The server speaks only an old TLS version',
    explanation:
      'The server offers only TLS 1.0 or 1.1. RelayDesk always uses TLS 1.2 or later towards the upstream, ' +
      'because the old versions are broken.',
    fix:
      'Have the server updated or configured for TLS 1.2, or deliver through Microsoft 365 instead. (Old ' +
      'devices on the LAN side may still use TLS 1.0: see `lanTls.allowLegacyTls`.)',
    powershell: null,
    example: {
      kind: 'tls',
      stage: 'starttls',
      code: 'ERR_SSL_UNSUPPORTED_PROTOCOL',
      message: 'SSL routines:tls_process_server_hello:unsupported protocol',
    },
  },
  {
    id: 'starttls-not-offered',
    match: [{ kind: 'tls', codes: ['STARTTLS_NOT_OFFERED'] }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'The server does not offer STARTTLS',
    explanation:
      'RelayDesk will not send a password or a message unencrypted, and the server did not offer to ' +
      "encrypt. Either it is the wrong server or port, or a firewall's SMTP inspection removes STARTTLS " +
      "from the server's answer (Cisco ASA's ESMTP inspection is a known example).",
    fix:
      'Check `upstream.host` and `upstream.port`. If they are right, turn off SMTP inspection for this ' +
      'connection in the firewall.',
    powershell: null,
    example: {
      kind: 'tls',
      stage: 'ehlo',
      code: 'STARTTLS_NOT_OFFERED',
      message: 'the server did not advertise STARTTLS',
    },
  },
  {
    id: 'tls-other',
    match: [{ kind: 'tls' }],
    category: 'tls',
    action: 'hold',
    class: 'relay',
    title: 'TLS failed',
    explanation: 'The encrypted connection to the server could not be set up.',
    fix:
      'Check `upstream.host`, `upstream.port` and `upstream.security`, and whether a firewall or ' +
      'antivirus inspects TLS; `npx relaydesk check` shows the details.',
    powershell: null,
    example: {
      kind: 'tls',
      stage: 'starttls',
      code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
      message: 'SSL routines:ssl3_read_bytes:sslv3 alert handshake failure',
    },
  },
];

const NEW_CLIENT_SECRET =
  'In Microsoft Entra admin center → App registrations → the app → Certificates & secrets, create a ' +
  'new client secret and copy its Value (shown only once, not the Secret ID); store it with ' +
  NPX_PASSWORD_SET +
  ' or in the RELAYDESK_CLIENT_SECRET environment variable.';

function tokenFailure(status: number, error: string, aadsts: number, description: string): UpstreamFailure {
  return {
    kind: 'token',
    status,
    error,
    aadsts: [aadsts],
    description: `AADSTS${aadsts}: ${description} Trace ID: 0f3c7a52-8e21-4b7e-9a3d-1c2b4e5f6a70 Correlation ID: 6d1e2f3a-4b5c-4d6e-8f70-1a2b3c4d5e6f Timestamp: 2026-01-12 09:14:03Z`,
  };
}

const TOKEN_RULES: readonly DiagnosisRule[] = [
  {
    id: 'token-secret-invalid',
    // 700027 is the certificate (client assertion) form of the same mismatch.
    match: [{ kind: 'token', aadsts: [7000215, 700027] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'The client secret is wrong',
    explanation:
      "Microsoft Entra ID did not accept the app's client secret: usually the Secret ID was copied " +
      "instead of the secret's Value, or the secret belongs to another app.",
    fix: NEW_CLIENT_SECRET,
    powershell: null,
    example: tokenFailure(
      401,
      'invalid_client',
      7000215,
      "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b'.",
    ),
  },
  {
    id: 'token-secret-expired',
    match: [{ kind: 'token', aadsts: [7000222] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'The client secret has expired',
    explanation: "The app's client secret has passed its expiry date, so Microsoft Entra ID refuses it.",
    fix: NEW_CLIENT_SECRET + ' Note the new expiry date.',
    powershell: null,
    example: tokenFailure(
      401,
      'invalid_client',
      7000222,
      "The provided client secret keys for app '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' are expired.",
    ),
  },
  {
    id: 'token-app-not-found',
    match: [{ kind: 'token', aadsts: [700016] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'No such app in this tenant',
    explanation:
      'Microsoft Entra ID knows no app with this client ID in this tenant: the client ID or the tenant is ' +
      'wrong, or the app was deleted.',
    fix:
      "Copy the Application (client) ID and the Directory (tenant) ID from the app's Overview page in " +
      'Microsoft Entra admin center into `upstream.oauth2.clientId` and `upstream.oauth2.tenant`.',
    powershell: null,
    example: tokenFailure(
      400,
      'unauthorized_client',
      700016,
      "Application with identifier '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
    ),
  },
  {
    id: 'token-tenant-not-found',
    match: [{ kind: 'token', aadsts: [90002, 900023] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'Tenant not found',
    explanation:
      'Microsoft Entra ID does not know the tenant in `upstream.oauth2.tenant`, or the token URL points to ' +
      'another Microsoft cloud than the tenant lives in.',
    fix:
      'Set `upstream.oauth2.tenant` to the Directory (tenant) ID or a verified domain such as ' +
      "contoso.onmicrosoft.com. For government clouds, set `upstream.oauth2.tokenUrl` to that cloud's " +
      'sign-in host (for example login.microsoftonline.us).',
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_request',
      90002,
      "Tenant 'contoso.onmicrosoft.cm' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
    ),
  },
  {
    id: 'token-consent-missing',
    // 1003031 is the answer when admin consent is asked for an app with no permissions listed.
    match: [{ kind: 'token', aadsts: [65001, 650057, 1003031] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: "The app lacks a permission or an admin's consent",
    explanation:
      'The app does not have the permission RelayDesk needs, or an administrator has not granted consent ' +
      'for it in this tenant.',
    fix:
      'In Microsoft Entra admin center → App registrations → the app → API permissions, add the ' +
      'application permission Office 365 Exchange Online → SMTP.SendAsApp (SMTP upstream) or Microsoft ' +
      'Graph → Mail.Send (Graph upstream), then press "Grant admin consent".',
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_grant',
      65001,
      "The user or administrator has not consented to use the application with ID '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' named 'RelayDesk'.",
    ),
  },
  {
    id: 'token-conditional-access',
    match: [{ kind: 'token', aadsts: [53003] }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'A Conditional Access policy blocked the app',
    explanation:
      'A Conditional Access policy for workload identities (for example one that allows only certain ' +
      "locations) refused the app's sign-in.",
    fix:
      'Find the failed sign-in in Microsoft Entra admin center → Sign-in logs → Service principal ' +
      "sign-ins: it names the policy. Allow this office's public IP address or exclude the app from it.",
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_grant',
      53003,
      'Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.',
    ),
  },
  {
    id: 'token-app-disabled',
    match: [{ kind: 'token', aadsts: [7000112] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'The app is disabled',
    explanation: "The app's Enterprise Application is disabled in the tenant, so it cannot sign in.",
    fix:
      'In Microsoft Entra admin center → Enterprise applications → the app → Properties, set "Enabled for ' +
      'users to sign-in?" to Yes.',
    powershell: null,
    example: tokenFailure(
      401,
      'unauthorized_client',
      7000112,
      "Application '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b'(RelayDesk) is disabled.",
    ),
  },
  {
    id: 'token-resource-not-found',
    match: [{ kind: 'token', aadsts: [500011] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'Exchange Online or Graph not found in the tenant',
    explanation:
      'The tenant has no Exchange Online (or Microsoft Graph) to issue a token for: the tenant has no ' +
      'Exchange Online subscription, or the token URL points to another Microsoft cloud.',
    fix:
      'Check that `upstream.oauth2.tenant` is the tenant that holds the mailbox, and that ' +
      '`upstream.oauth2.tokenUrl` is the sign-in host of its cloud.',
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_resource',
      500011,
      'The resource principal named https://outlook.office365.com was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.',
    ),
  },
  {
    id: 'token-invalid-scope',
    match: [{ kind: 'token', aadsts: [70011] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'Invalid token scope',
    explanation:
      'Microsoft Entra ID refused the permission scope RelayDesk asked for. RelayDesk asks for ' +
      '`https://outlook.office365.com/.default` (SMTP) or `https://graph.microsoft.com/.default` (Graph), ' +
      'which only the v2.0 token endpoint understands.',
    fix: 'Set `upstream.oauth2.tokenUrl` to a v2.0 endpoint (ending in `/oauth2/v2.0/token`), or remove it to use the default.',
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_scope',
      70011,
      "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.",
    ),
  },
  {
    id: 'token-user-not-found',
    match: [{ kind: 'token', aadsts: [50034] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'Account not found in the tenant',
    explanation: 'The account named in the sign-in does not exist in this tenant.',
    fix: 'Check `upstream.user` and `upstream.oauth2.tenant`: the mailbox must belong to that tenant.',
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_grant',
      50034,
      'The user account john@contoso.com does not exist in the contoso.onmicrosoft.com directory.',
    ),
  },
  {
    id: 'token-throttled',
    match: [{ kind: 'token', status: [429] }],
    category: 'throttling',
    action: 'retry',
    class: 'relay',
    title: 'Microsoft sign-in is slowing RelayDesk down',
    explanation: 'The sign-in service received too many token requests. RelayDesk retries later.',
    fix: 'Nothing, if it passes.',
    powershell: null,
    example: {
      kind: 'token',
      status: 429,
      error: 'temporarily_unavailable',
      aadsts: [],
      description: 'Too many requests',
    },
  },
  {
    id: 'token-service-unavailable',
    match: [{ kind: 'token', statusClass: 5 }],
    category: 'network',
    action: 'retry',
    class: 'relay',
    title: 'Microsoft sign-in is unavailable',
    explanation: "Microsoft's sign-in service had a problem of its own. RelayDesk retries later.",
    fix: 'Nothing, if it passes. If it lasts, check the Microsoft 365 service health page.',
    powershell: null,
    example: tokenFailure(
      503,
      'temporarily_unavailable',
      90033,
      'A transient error has occurred. Please try again.',
    ),
  },
  {
    id: 'token-rejected',
    match: [{ kind: 'token' }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'Microsoft sign-in refused the app',
    explanation: 'Microsoft Entra ID refused to issue a token for the app.',
    fix:
      'Look up the AADSTS number shown with the error at https://login.microsoftonline.com/error, and check ' +
      '`upstream.oauth2` (tenant and client ID) and the stored client secret.',
    powershell: null,
    example: tokenFailure(
      400,
      'invalid_request',
      900144,
      "The request body must contain the following parameter: 'grant_type'.",
    ),
  },
];

/**
 * Delegated sign-in (`upstream.oauth2.grant: "delegated"`, `relaydesk signin`): a refresh that fails
 * holds the queue (class relay: nothing is wrong with the messages) with "Sign in again" as the action.
 * Before TOKEN_RULES, whose rows with the same AADSTS numbers speak of an app's own client secret.
 */
const SIGN_IN_AGAIN =
  'Sign in again: run `npx relaydesk signin` (or "Sign in with Microsoft" in the window) as the ' +
  "mailbox's user. The held mail goes out as soon as the sign-in works.";
const SIGNED_IN_GRANTS: readonly TokenGrant[] = ['refresh_token', 'authorization_code', 'device_code'];

function signinFailure(
  grant: TokenGrant,
  status: number,
  error: string,
  aadsts: number,
  description: string,
): UpstreamFailure {
  const failure = tokenFailure(status, error, aadsts, description);
  return failure.kind === 'token' ? { ...failure, grant } : failure;
}

const SIGNIN_RULES: readonly DiagnosisRule[] = [
  {
    id: 'signin-needed',
    match: [{ kind: 'config', codes: ['NOT_SIGNED_IN'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign in: nobody is signed in',
    explanation:
      'The upstream signs in as a user (delegated OAuth 2.0), and nobody has signed in on this computer ' +
      'yet, or the sign-in was removed with `relaydesk signout`.',
    fix: SIGN_IN_AGAIN,
    powershell: null,
    example: { kind: 'config', code: 'NOT_SIGNED_IN', message: 'Nobody is signed in for app 3f2a1b4c' },
  },
  {
    id: 'signin-frequency',
    match: [{ kind: 'token', aadsts: [70043], grants: SIGNED_IN_GRANTS }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign in again: Conditional Access asks for a new sign-in',
    explanation:
      "A Conditional Access policy's sign-in frequency (for example every 30 days) has passed, so Microsoft " +
      'no longer renews the sign-in without the user.',
    fix:
      SIGN_IN_AGAIN +
      " To sign in less often, an administrator can exclude this app or the mailbox from the policy's " +
      'sign-in frequency in Microsoft Entra admin center → Conditional Access.',
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      70043,
      'The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on 2026-11-02T08:01:44.1234567Z and the maximum allowed lifetime for this request is 2592000.',
    ),
  },
  {
    id: 'signin-inactive',
    match: [{ kind: 'token', aadsts: [700082, 70008], grants: SIGNED_IN_GRANTS }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign in again: the sign-in expired unused',
    explanation:
      'A sign-in that is not used for 90 days ends. RelayDesk renews it every day while it runs, so this ' +
      'means the relay was stopped (or could not reach Microsoft) for a long time.',
    fix: SIGN_IN_AGAIN,
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      700082,
      'The refresh token has expired due to inactivity. The token was issued on 2026-08-01T08:00:00.0000000Z and was inactive for 90.00:00:00.',
    ),
  },
  {
    id: 'signin-revoked',
    match: [{ kind: 'token', aadsts: [50173, 50133, 50089], grants: SIGNED_IN_GRANTS }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign in again: the password changed or the sign-in was revoked',
    explanation:
      "The user's password was changed or reset, or an administrator revoked the user's sessions, which " +
      'ends every sign-in made before.',
    fix: SIGN_IN_AGAIN + ' Sign in with the new password.',
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      50173,
      "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '2026-10-01T09:00:00.0000000Z' and the TokensValidFrom date (before which tokens are not valid) for this user is '2026-11-20T10:12:00.0000000Z'.",
    ),
  },
  {
    id: 'signin-mfa-required',
    match: [{ kind: 'token', aadsts: [50076], grants: SIGNED_IN_GRANTS }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Sign in again: multi-factor authentication is now required',
    explanation:
      'A policy now asks this user for multi-factor authentication (a new rule, or a sign-in from a new ' +
      'location), which only an interactive sign-in can give.',
    fix: SIGN_IN_AGAIN + ' Complete the second factor in the browser.',
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      50076,
      "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'.",
    ),
  },
  {
    id: 'signin-mfa-enrolment',
    match: [{ kind: 'token', aadsts: [50079], grants: SIGNED_IN_GRANTS }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Sign in again: the user must set up multi-factor authentication',
    explanation:
      'The tenant now requires multi-factor authentication and this user has not registered a method ' +
      '(Authenticator app, phone) yet.',
    fix:
      'Have the user register a method at https://aka.ms/mfasetup, then sign in again: run ' +
      '`npx relaydesk signin`. The held mail goes out as soon as the sign-in works.',
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      50079,
      "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'.",
    ),
  },
  {
    id: 'signin-consent-needed',
    match: [{ kind: 'token', aadsts: [65001, 650057], grants: SIGNED_IN_GRANTS }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'An administrator must consent to the app',
    explanation:
      'The app asks for the delegated permission SMTP.Send (or Mail.Send for Graph), and nobody has ' +
      'consented to it for this user. Since July 2025 most tenants let only administrators consent.',
    fix:
      'A Global or Cloud Application Administrator opens ' +
      'https://login.microsoftonline.com/<oauthTenant>/adminconsent?client_id=<appId> and accepts (or presses ' +
      '"Grant admin consent" under App registrations → the app → API permissions). Then sign in again: ' +
      'run `npx relaydesk signin`.',
    powershell: null,
    example: signinFailure(
      'authorization_code',
      400,
      'invalid_grant',
      65001,
      "The user or administrator has not consented to use the application with ID '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' named 'RelayDesk'. Send an interactive authorization request for this user and resource.",
    ),
  },
  {
    id: 'signin-app-not-found',
    match: [{ kind: 'token', aadsts: [700016], grants: SIGNED_IN_GRANTS }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'No such app in this tenant',
    explanation:
      'Microsoft Entra ID knows no app with this client ID in the tenant signed in to: the client ID or the ' +
      'tenant is wrong, or the app was deleted.',
    fix:
      "Copy the Application (client) ID and the Directory (tenant) ID from the app's Overview page in " +
      'Microsoft Entra admin center into `upstream.oauth2.clientId` and `upstream.oauth2.tenant` ' +
      '(docs/microsoft365.md), then sign in again: run `npx relaydesk signin`.',
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'unauthorized_client',
      700016,
      "Application with identifier '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
    ),
  },
  {
    id: 'signin-public-client-off',
    match: [{ kind: 'token', aadsts: [7000218], grants: SIGNED_IN_GRANTS }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'The app registration does not allow public client flows',
    explanation:
      'RelayDesk signs in as a public client (no client secret), which the app registration must allow; ' +
      'without it Microsoft asks for a client secret.',
    fix:
      'In Microsoft Entra admin center → App registrations → the app → Authentication, set "Allow public ' +
      'client flows" to Yes and save (docs/microsoft365.md). Then sign in again: run `npx relaydesk signin`.',
    powershell: null,
    example: signinFailure(
      'device_code',
      401,
      'invalid_client',
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
  },
  {
    id: 'signin-device-code-blocked',
    match: [{ kind: 'token', aadsts: [53003], grants: ['device_code'] }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'Sign-in with a code is blocked in this tenant',
    explanation:
      'A Conditional Access policy blocks the device code flow. Microsoft has switched such a policy on in ' +
      'many tenants that had not used the device code lately.',
    fix:
      'Sign in with the browser instead: run `npx relaydesk signin` without --device-code on a computer ' +
      'with a browser (with `serve --admin`, open the window on this computer). Or an administrator ' +
      'excludes this user from the policy under Conditional Access → Authentication flows.',
    powershell: null,
    example: signinFailure(
      'device_code',
      400,
      'invalid_grant',
      53003,
      'Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.',
    ),
  },
  {
    id: 'signin-conditional-access',
    match: [{ kind: 'token', aadsts: [53003, 53000, 53001], grants: SIGNED_IN_GRANTS }],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'A Conditional Access policy blocked the sign-in',
    explanation:
      "A Conditional Access policy refused this user's sign-in for RelayDesk (for example a location, a " +
      'compliant device or an app rule).',
    fix:
      'Find the failed sign-in in Microsoft Entra admin center → Sign-in logs: it names the policy. Allow ' +
      "this office's network or exclude the app, then sign in again: run `npx relaydesk signin`.",
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      53000,
      'Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant.',
    ),
  },
  {
    id: 'signin-code-expired',
    match: [{ kind: 'token', errors: ['expired_token'], grants: ['device_code'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'The sign-in code expired',
    explanation: 'Nobody entered the code and signed in before it expired (15 minutes).',
    fix: 'Run `npx relaydesk signin --device-code` again and enter the new code promptly.',
    powershell: null,
    example: signinFailure(
      'device_code',
      400,
      'expired_token',
      70020,
      "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
    ),
  },
  {
    id: 'signin-declined',
    match: [{ kind: 'token', errors: ['authorization_declined', 'access_denied'], grants: SIGNED_IN_GRANTS }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'The sign-in was cancelled',
    explanation: 'The user cancelled the sign-in or declined the permissions RelayDesk asked for.',
    fix: SIGN_IN_AGAIN + ' Accept the permissions "Send mail as you" and "Maintain access".',
    powershell: null,
    example: signinFailure(
      'authorization_code',
      400,
      'access_denied',
      65004,
      'User declined to consent to access the app.',
    ),
  },
  {
    id: 'signin-interrupted',
    match: [{ kind: 'config', codes: ['SIGNIN_STATE_MISMATCH', 'SIGNIN_TIMEOUT'] }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'The browser sign-in did not finish',
    explanation:
      'Nobody finished signing in in the browser in time, or the browser came back with an answer that ' +
      'belongs to another sign-in (an old tab), which RelayDesk does not use.',
    fix: 'Run `npx relaydesk signin` again and finish the sign-in in the tab it opens.',
    powershell: null,
    example: {
      kind: 'config',
      code: 'SIGNIN_TIMEOUT',
      message: 'Nobody finished signing in within 300 seconds.',
    },
  },
  {
    id: 'signin-refused',
    match: [{ kind: 'token', statusClass: 4, grants: SIGNED_IN_GRANTS }],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Sign in again: Microsoft refused the sign-in',
    explanation:
      'Microsoft Entra ID no longer accepts the sign-in RelayDesk keeps (the AADSTS number shown says ' +
      'why; look it up at https://login.microsoftonline.com/error).',
    fix: SIGN_IN_AGAIN,
    powershell: null,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      70000,
      'Provided grant is invalid or malformed.',
    ),
  },
];

/** High Volume Email (smtp-hve.office365.com) reaches the tenant's own recipients only. */
const HVE_RULES: readonly DiagnosisRule[] = [
  {
    id: 'hve-external-recipient',
    match: [{ kind: 'reply', enhanced: ['5.5.105'] }],
    category: 'recipient',
    action: 'fail-recipient',
    class: 'recipient',
    title: 'High Volume Email cannot reach this recipient',
    explanation:
      "High Volume Email delivers only to recipients inside the tenant's own domains; this address is " +
      'outside. The other recipients of the message are unaffected.',
    fix:
      'To reach outside addresses, use the Microsoft 365 preset (smtp.office365.com) with a licensed ' +
      'mailbox for those messages.',
    powershell: null,
    example: replyLine(
      'rcpt',
      '550 5.5.105 HVE accounts can only send to internal recipients. External recipient: partner@fabrikam.com',
    ),
  },
];

const CONFIG_RULES: readonly DiagnosisRule[] = [
  {
    id: 'secret-missing',
    match: [{ kind: 'config', codes: ['NO_SECRET'] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'No password or client secret stored',
    explanation:
      'The upstream needs a password (or, with OAuth 2.0, a client secret) and RelayDesk has none stored ' +
      'for it.',
    fix:
      'Store it with ' +
      NPX_PASSWORD_SET +
      ', or give it to the RelayDesk service in the RELAYDESK_UPSTREAM_PASSWORD (password) or ' +
      'RELAYDESK_CLIENT_SECRET (OAuth 2.0) environment variable.',
    powershell: null,
    example: { kind: 'config', code: 'NO_SECRET', message: 'no password stored for john@contoso.com' },
  },
  {
    id: 'keychain-unavailable',
    match: [{ kind: 'config', codes: ['KEYCHAIN_UNAVAILABLE'] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: "The system's keychain cannot be opened",
    explanation:
      "RelayDesk keeps the password in the operating system's keychain, which could not be opened. This " +
      'is common when RelayDesk runs as a service or on a server without a signed-in desktop session.',
    fix:
      'Run ' +
      NPX_PASSWORD_SET +
      ' as the account RelayDesk runs under, or give the secret to the service in the ' +
      'RELAYDESK_UPSTREAM_PASSWORD or RELAYDESK_CLIENT_SECRET environment variable.',
    powershell: null,
    example: {
      kind: 'config',
      code: 'KEYCHAIN_UNAVAILABLE',
      message: 'the Secret Service is not available on this system',
    },
  },
  {
    id: 'smtputf8-not-offered',
    match: [{ kind: 'config', codes: ['SMTPUTF8_NOT_OFFERED'] }],
    category: 'recipient',
    action: 'fail-message',
    class: 'message',
    title: 'The upstream cannot take addresses with non-ASCII characters',
    explanation:
      "This message's sender or recipient address has characters outside ASCII (such as `josé@`), which " +
      'needs the SMTPUTF8 extension (RFC 6531), and the upstream does not offer it. Sending the address ' +
      'anyway would garble it, so RelayDesk returns this message; other messages are not affected.',
    fix:
      'Use an ASCII address for this sender or recipient, or relay through an upstream that offers ' +
      'SMTPUTF8 (Microsoft 365 does).',
    powershell: null,
    example: {
      kind: 'config',
      code: 'SMTPUTF8_NOT_OFFERED',
      message: "smtp.example.test does not offer SMTPUTF8, which this message's addresses need",
    },
  },
  {
    id: 'upstream-size-exceeded',
    match: [{ kind: 'config', codes: ['UPSTREAM_SIZE_EXCEEDED'] }],
    category: 'size',
    action: 'fail-message',
    class: 'message',
    title: 'The message is larger than the upstream accepts',
    explanation:
      'The upstream announces the largest message it takes (SIZE in its EHLO reply), and this message ' +
      'is larger. RelayDesk refuses such messages at the device once it knows the limit; this one ' +
      'arrived before that.',
    fix:
      'Send smaller files (scan at a lower resolution, or split the document), or set ' +
      '`upstream.maxMessageBytes` to the limit `npx relaydesk check` shows.',
    powershell: null,
    example: {
      kind: 'config',
      code: 'UPSTREAM_SIZE_EXCEEDED',
      message: 'the message (40000000 bytes) is larger than smtp.example.test accepts (SIZE 36700160)',
    },
  },
  {
    id: 'config-other',
    match: [{ kind: 'config' }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: "A problem in RelayDesk's configuration",
    explanation: 'RelayDesk found a problem in its own configuration before contacting the upstream.',
    fix: 'Read the message shown with the error, correct the configuration, then run `npx relaydesk check`.',
    powershell: null,
    example: { kind: 'config', code: 'NO_USER', message: 'upstream.user is not set' },
  },
];

function graphFailure(
  status: number,
  code: string,
  message: string,
  retryAfterSeconds: number | null = null,
): UpstreamFailure {
  return { kind: 'graph', status, code, message, retryAfterSeconds };
}

const GRAPH_RULES: readonly DiagnosisRule[] = [
  // Not 'hold', as for SMTP's SendAsDenied: other senders still pass.
  {
    id: 'graph-send-as-denied',
    match: [{ kind: 'graph', codes: ['ErrorSendAsDenied'] }],
    category: 'send-as',
    action: 'fail-message',
    class: 'message',
    title: 'Not allowed to send as this sender',
    explanation:
      "The message's sender address is not the mailbox RelayDesk sends from, and that mailbox has no " +
      '"Send As" right on it. Messages from other senders still go out.',
    fix:
      'Give the mailbox Send As on the address (PowerShell below), or add <address> as an alias of ' +
      '<mailbox>, or set `upstream.sendAs` to `mailbox` so Graph sends as the mailbox itself.',
    powershell: 'Add-RecipientPermission -Identity <address> -AccessRights SendAs -Trustee <mailbox>',
    example: graphFailure(
      403,
      'ErrorSendAsDenied',
      'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.',
    ),
  },
  {
    id: 'graph-token-invalid',
    match: [
      { kind: 'graph', codes: ['InvalidAuthenticationToken'] },
      { kind: 'graph', status: [401] },
    ],
    category: 'credentials',
    action: 'hold',
    class: 'relay',
    title: 'Graph did not accept the token',
    explanation:
      "Microsoft Graph refused the app's access token: it was issued for another service or tenant, or " +
      'has expired.',
    fix:
      'Check that `upstream.oauth2.tenant` is the tenant that holds the mailbox and that ' +
      '`upstream.oauth2.tokenUrl` matches the cloud of `upstream.graphUrl`, then run `npx relaydesk check`.',
    powershell: null,
    example: graphFailure(
      401,
      'InvalidAuthenticationToken',
      'Access token validation failure. Invalid audience.',
    ),
  },
  {
    id: 'graph-mailbox-not-enabled',
    match: [{ kind: 'graph', codes: ['MailboxNotEnabledForRESTAPI', 'ErrorMailboxNotEnabledForRESTAPI'] }],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'The mailbox cannot be used through Graph',
    explanation:
      'The mailbox is on an on-premises Exchange server, is inactive, or has no Exchange Online licence, ' +
      'so Microsoft Graph cannot send from it.',
    fix:
      'Set `upstream.mailbox` to a licensed Exchange Online mailbox, or use the SMTP upstream for a mailbox ' +
      'that is on-premises.',
    powershell: null,
    example: graphFailure(
      404,
      'MailboxNotEnabledForRESTAPI',
      'The mailbox is either inactive, soft-deleted, or is hosted on-premise.',
    ),
  },
  {
    id: 'graph-mailbox-not-found',
    match: [
      { kind: 'graph', codes: ['ErrorInvalidUser', 'ResourceNotFound'] },
      { kind: 'graph', status: [404] },
    ],
    category: 'configuration',
    action: 'hold',
    class: 'relay',
    title: 'No such mailbox',
    explanation: 'Microsoft Graph found no mailbox with the address in `upstream.mailbox`.',
    fix: 'Correct `upstream.mailbox`: it must be the primary address (or user ID) of a mailbox in the tenant.',
    powershell: null,
    example: graphFailure(404, 'ErrorInvalidUser', "The requested user 'scanner@contoso.com' is invalid."),
  },
  {
    id: 'graph-access-denied',
    match: [
      { kind: 'graph', codes: ['ErrorAccessDenied', 'Authorization_RequestDenied'] },
      { kind: 'graph', status: [403], text: /access is denied/i },
    ],
    category: 'policy',
    action: 'hold',
    class: 'relay',
    title: 'The app may not send from this mailbox',
    explanation:
      'Microsoft Graph refused: the app lacks the Mail.Send application permission or its admin consent, ' +
      'or an Application Access Policy or an RBAC for Applications scope leaves this mailbox out. Messages ' +
      'over about 4 MB, and `saveToSentItems: false`, also need Mail.ReadWrite (they go through a draft).',
    fix:
      'Check API permissions (Microsoft Graph → Application → Mail.Send, and Mail.ReadWrite for large ' +
      'messages, admin consent granted). ' +
      '`Test-ApplicationAccessPolicy -Identity <mailbox> -AppId <appId>` tells whether an access policy ' +
      'blocks it. With RBAC for Applications, give the app the role over a scope that includes the mailbox ' +
      '(PowerShell below).',
    powershell:
      'New-ManagementRoleAssignment -App <appId> -Role "Application Mail.Send" -CustomResourceScope <scope>',
    example: graphFailure(
      403,
      'ErrorAccessDenied',
      'Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.',
    ),
  },
  {
    id: 'graph-message-too-large',
    match: [
      { kind: 'graph', codes: ['ErrorMessageSizeExceeded'] },
      { kind: 'graph', status: [413] },
    ],
    category: 'size',
    action: 'fail-message',
    class: 'message',
    title: 'Message too large for Graph',
    explanation:
      'Microsoft Graph refused the message as too large for the mailbox. RelayDesk already sends messages ' +
      "over about 4 MB as a draft with upload sessions, so this is the mailbox's own size limit (35 MB by default).",
    fix: "Scan at a lower resolution or fewer pages per message, or raise the mailbox's MaxSendSize (up to 150 MB).",
    powershell: 'Set-Mailbox -Identity <mailbox> -MaxSendSize 150MB',
    example: graphFailure(413, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.'),
  },
  {
    id: 'graph-throttled',
    match: [
      { kind: 'graph', status: [429, 503] },
      { kind: 'graph', codes: ['ApplicationThrottled'] },
    ],
    category: 'throttling',
    action: 'retry',
    class: 'relay',
    title: 'Microsoft Graph is slowing RelayDesk down',
    explanation:
      'Microsoft Graph is busy or throttling this app or mailbox. RelayDesk waits as long as Graph asks, ' +
      'then retries.',
    fix: 'Nothing, if it passes. If it keeps happening, lower `upstream.messagesPerMinute`.',
    powershell: null,
    example: graphFailure(
      429,
      'ApplicationThrottled',
      'Application is over its MailboxConcurrency limit.',
      30,
    ),
  },
  {
    id: 'graph-unavailable',
    match: [{ kind: 'graph', statusClass: 5 }],
    category: 'unknown',
    action: 'retry',
    class: 'relay',
    title: 'Microsoft Graph had an error',
    explanation: 'Microsoft Graph had a problem of its own. RelayDesk retries the message later.',
    fix: 'Nothing, if it passes. If it lasts, check the Microsoft 365 service health page.',
    powershell: null,
    example: graphFailure(
      500,
      'ErrorInternalServerError',
      'An internal server error occurred. The operation failed.',
    ),
  },
  {
    id: 'graph-rejected',
    match: [{ kind: 'graph' }],
    category: 'unknown',
    action: 'fail-message',
    class: 'message',
    title: 'Microsoft Graph refused the message',
    explanation: 'Microsoft Graph refused this message for good. Other messages are unaffected.',
    fix: 'Read the message shown with the error; it usually names the reason.',
    powershell: null,
    example: graphFailure(
      400,
      'ErrorInvalidRecipients',
      "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
    ),
  },
];

/** Chosen when no row matches: only an SMTP reply outside 4xx and 5xx gets here. */
const UNEXPECTED_RULE: DiagnosisRule = {
  id: 'unexpected',
  match: [],
  category: 'unknown',
  action: 'retry',
  class: 'message',
  title: 'Unexpected answer from the server',
  explanation:
    'The server answered something RelayDesk did not expect at that point of the conversation. The message ' +
    'stays queued and RelayDesk retries it.',
  fix: 'Nothing, if it passes. If it keeps happening, check `upstream.host` and `upstream.port` and report it with the log.',
  powershell: null,
  example: replyLine('data', '250 2.0.0 OK'),
};

const MATCHED_RULES: readonly DiagnosisRule[] = [
  ...HVE_RULES,
  ...REPLY_RULES,
  ...NETWORK_RULES,
  ...TLS_RULES,
  ...SIGNIN_RULES,
  ...TOKEN_RULES,
  ...CONFIG_RULES,
  ...GRAPH_RULES,
];

export const DIAGNOSIS_RULES: readonly DiagnosisRule[] = [...MATCHED_RULES, UNEXPECTED_RULE];

function parseEnhanced(code: string): [number, number, number] | null {
  const parts = /^(\d)\.(\d{1,3})\.(\d{1,3})$/.exec(code);
  return parts ? [Number(parts[1]), Number(parts[2]), Number(parts[3])] : null;
}

function enhancedMatches(pattern: EnhancedCodePattern, enhanced: string): boolean {
  if (typeof pattern === 'string') return pattern === enhanced;
  const actual = parseEnhanced(enhanced);
  const from = parseEnhanced(pattern[0]);
  const to = parseEnhanced(pattern[1]);
  if (!actual || !from || !to) return false;
  return actual[0] === from[0] && actual[1] === from[1] && actual[2] >= from[2] && actual[2] <= to[2];
}

function codeMatches(pattern: string | RegExp, code: string): boolean {
  return typeof pattern === 'string' ? pattern === code : pattern.test(code);
}

function httpMatches(status: number, exact?: readonly number[], statusClass?: 4 | 5): boolean {
  return (!exact || exact.includes(status)) && (!statusClass || Math.floor(status / 100) === statusClass);
}

function matches(match: DiagnosisMatch, failure: UpstreamFailure): boolean {
  switch (match.kind) {
    case 'reply': {
      if (failure.kind !== 'reply') return false;
      const { reply } = failure;
      const enhanced = reply.enhanced;
      return (
        (!match.codes || match.codes.includes(reply.code)) &&
        (!match.replyClass || Math.floor(reply.code / 100) === match.replyClass) &&
        (!match.enhanced ||
          (enhanced !== null && match.enhanced.some((pattern) => enhancedMatches(pattern, enhanced)))) &&
        (!match.stages || match.stages.includes(failure.stage)) &&
        (!match.text || match.text.test(reply.text))
      );
    }
    case 'network':
    case 'tls':
      if (failure.kind !== match.kind) return false;
      return (
        (!match.codes || match.codes.some((pattern) => codeMatches(pattern, failure.code))) &&
        (!match.stages || match.stages.includes(failure.stage))
      );
    case 'token':
      if (failure.kind !== 'token') return false;
      return (
        (!match.aadsts || match.aadsts.some((number) => failure.aadsts.includes(number))) &&
        httpMatches(failure.status, match.status, match.statusClass) &&
        (!match.errors || match.errors.includes(failure.error)) &&
        (!match.grants || match.grants.includes(failure.grant ?? 'client_credentials'))
      );
    case 'graph':
      if (failure.kind !== 'graph') return false;
      return (
        (!match.codes || match.codes.some((code) => code.toLowerCase() === failure.code.toLowerCase())) &&
        httpMatches(failure.status, match.status, match.statusClass) &&
        (!match.text || match.text.test(failure.message))
      );
    case 'config':
      return failure.kind === 'config' && (!match.codes || match.codes.includes(failure.code));
  }
}

/** PowerShell takes an address or GUID as it is; anything else is quoted so that it stays one argument. */
function powershellArgument(value: string): string {
  return /^[A-Za-z0-9@._+-]+$/.test(value) ? value : `'${value.replace(/'/g, "''")}'`;
}

/** Exchange names the refused sender: `SendAsDenied; john@contoso.com not allowed to send as HelpDesk@contoso.com;`. */
function refusedSender(failure: UpstreamFailure): string | undefined {
  if (failure.kind !== 'reply') return undefined;
  return /not allowed to send as ([^\s;]+@[^\s;]+)/i.exec(failure.reply.text)?.[1];
}

function fillIn(template: string, values: Record<string, string | undefined>): string {
  return template.replace(/<(mailbox|appId|oauthTenant|address|host|port)>/g, (placeholder, name: string) => {
    const value = values[name];
    return value ? powershellArgument(value) : placeholder;
  });
}

/** Whether this diagnosis holds the whole queue: a relay problem that waits for the admin. */
export function holdsRelay(diagnosis: Pick<Diagnosis, 'action' | 'class'>): boolean {
  return diagnosis.action === 'hold' && diagnosis.class === 'relay';
}

/** The table's row for this failure: the first that matches, else the generic row for an unexpected reply. */
export function diagnose(failure: UpstreamFailure, context: DiagnosisContext = {}): Diagnosis {
  const rule =
    MATCHED_RULES.find((candidate) => candidate.match.some((match) => matches(match, failure))) ??
    UNEXPECTED_RULE;
  const values = {
    mailbox: context.mailbox,
    appId: context.appId,
    oauthTenant: context.tenant,
    address: context.sender ?? refusedSender(failure),
    host: context.host,
    port: context.port === undefined ? undefined : String(context.port),
  };
  return {
    id: rule.id,
    category: rule.category,
    action: rule.action,
    class: rule.class,
    title: rule.title,
    explanation: rule.explanation,
    fix: fillIn(rule.fix, values),
    powershell: rule.powershell === null ? null : fillIn(rule.powershell, values),
    retryAfterSeconds: failure.kind === 'graph' && rule.action === 'retry' ? failure.retryAfterSeconds : null,
  };
}
