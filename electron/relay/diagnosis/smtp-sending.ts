/** SMTP replies about sending: Send As, throttling, blocks, quotas, size, recipients. */
import { openSetting } from './actions.ts';
import type { RuleSource } from './types.ts';
import { replyLine } from './examples.ts';

/** High Volume Email (smtp-hve.office365.com) reaches the tenant's own recipients only. */
export const HVE_RULES: readonly RuleSource[] = [
  {
    id: 'hve-external-recipient',
    match: [{ kind: 'reply', enhanced: ['5.5.105'] }],
    class: 'recipient',
    action: 'fail-recipient',
    category: 'recipient',
    title: 'High Volume Email cannot reach this recipient',
    explanation:
      "High Volume Email delivers only to recipients inside the tenant's own domains; this address is " +
      'outside. The other recipients of the message are unaffected.',
    fix:
      'To reach outside addresses, use the Microsoft 365 preset (smtp.office365.com) with a licensed ' +
      'mailbox for those messages.',
    actions: [openSetting('upstream.preset', 'Change the upstream')],
    example: replyLine(
      'rcpt',
      '550 5.5.105 HVE accounts can only send to internal recipients. External recipient: partner@fabrikam.com',
    ),
  },
];

export const SMTP_SENDING_RULES: readonly RuleSource[] = [
  {
    id: 'send-as-denied',
    match: [
      { kind: 'reply', enhanced: ['5.7.60', '5.2.252'] },
      { kind: 'reply', text: /SendAsDenied/i },
    ],
    class: 'message',
    action: 'fail-message',
    category: 'send-as',
    title: 'Not allowed to send as this sender',
    explanation:
      "The message's sender address is not the mailbox RelayDesk signs in as, and that mailbox has no " +
      '"Send As" right on it. Every message from this sender fails the same way until it is fixed; ' +
      'messages from other senders still go out.',
    fix:
      'Choose one: give the mailbox Send As on the address (PowerShell below; it can take up to an ' +
      'hour to apply); or add <address> as an alias of <mailbox>; or let RelayDesk replace the sender ' +
      'with the mailbox.',
    cli: 'To let RelayDesk replace it: `"sender": {"mode": "rewrite"}` in the config.',
    actions: [openSetting('sender.mode', 'Let RelayDesk replace the sender')],
    commands: {
      exchangeOnline: 'Add-RecipientPermission -Identity <address> -AccessRights SendAs -Trustee <mailbox>',
    },
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
    class: 'relay',
    action: 'retry',
    category: 'throttling',
    title: 'Too many connections for this mailbox',
    explanation:
      'Microsoft 365 allows 3 connections at a time per mailbox, and this one was over the limit. ' +
      'RelayDesk retries the message shortly.',
    fix:
      'Set `upstream.maxConnections` to 3 or lower, and check that no other program (another relay, a ' +
      'scanner sending directly) signs in as <mailbox> at the same time.',
    actions: [openSetting('upstream.maxConnections', 'Lower the connections at a time')],
    example: replyLine(
      'mail',
      '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=AM6PR02MB1234.eurprd02.prod.outlook.com]',
    ),
  },
  {
    id: 'throttled',
    match: [{ kind: 'reply', enhanced: [['4.7.500', '4.7.699']] }],
    class: 'relay',
    action: 'retry',
    category: 'throttling',
    title: 'Microsoft 365 is slowing this sender down',
    explanation:
      'Microsoft 365 is throttling: it is busy, or this mailbox or IP address sent a lot recently. The ' +
      'message stays queued and RelayDesk retries it later.',
    fix:
      'Nothing, if it passes. If it keeps happening, lower `upstream.messagesPerMinute` (a mailbox ' +
      'takes 30 a minute) and check that the devices are not sending more than expected.',
    actions: [openSetting('upstream.messagesPerMinute', 'Lower the messages per minute')],
    example: replyLine(
      'mail',
      '451 4.7.500 Server busy. Please try again later from [203.0.113.17]. (S77719) [VI1EUR04FT012.eop-eur04.prod.protection.outlook.com]',
    ),
  },
  {
    id: 'ip-not-accepted',
    match: [{ kind: 'reply', enhanced: ['5.7.708'] }],
    class: 'relay',
    action: 'hold',
    category: 'account-blocked',
    title: "Microsoft 365 does not accept mail from this PC's IP address",
    explanation:
      'Microsoft refuses traffic from this public IP address because of its reputation. It happens ' +
      'most often to new and trial tenants, and to addresses that sent spam before.',
    fix:
      'Open a support request with Microsoft (Microsoft 365 admin center → Support) quoting the full ' +
      'reply. A paid (non-trial) tenant and a fixed public IP address help.',
    example: replyLine(
      'mail',
      '550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(3110) [AM5EUR02FT013.eop-EUR02.prod.protection.outlook.com]',
    ),
  },
  {
    id: 'tenant-blocked',
    match: [{ kind: 'reply', enhanced: ['5.7.705'] }],
    class: 'relay',
    action: 'hold',
    category: 'account-blocked',
    title: 'The tenant is blocked for sending',
    explanation:
      'Microsoft blocked the whole tenant from sending because too much spam or bulk mail came from it.',
    fix:
      'Look for compromised accounts in the tenant (unexpected inbox rules, mass sending), secure ' +
      'them, then open a support request with Microsoft to lift the block.',
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
    class: 'relay',
    action: 'hold',
    category: 'account-blocked',
    title: 'The mailbox is blocked from sending',
    explanation:
      'Microsoft blocked the mailbox RelayDesk signs in as from sending mail, because it sent spam or ' +
      'looked compromised. Nothing from it will go out until the block is lifted.',
    fix:
      'Treat the account as compromised: reset its password, sign it out everywhere, and check its ' +
      'inbox rules and Sent Items. Then release it: Microsoft Defender portal → Email & collaboration ' +
      '→ Review → Restricted entities, or the PowerShell below. A banned sender (5.7.511) can only be ' +
      'released by Microsoft support.',
    commands: { exchangeOnline: 'Remove-BlockedSenderAddress -SenderAddress <mailbox>' },
    example: replyLine(
      'mail',
      '550 5.1.8 Access denied, bad outbound sender. AS(42004) [DB8EUR05FT003.eop-eur05.prod.protection.outlook.com]',
    ),
  },
  {
    id: 'daily-recipient-limit',
    match: [{ kind: 'reply', text: /SubmissionQuotaExceeded/i }],
    class: 'relay',
    action: 'hold',
    category: 'quota',
    title: 'Daily sending limit reached',
    explanation:
      'The mailbox has sent to 10,000 recipients within 24 hours, the most Microsoft 365 allows. Every ' +
      'message would be refused until the count drops, so RelayDesk holds the queue instead of failing ' +
      'them.',
    fix:
      "Wait: the count covers the last 24 hours. If the office's devices cannot have sent that much, " +
      'the account is probably compromised: reset its password and check its Sent Items. For more ' +
      'volume, spread the devices over more mailboxes.',
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
    class: 'relay',
    action: 'hold',
    category: 'quota',
    title: 'The sending mailbox is full',
    explanation:
      'Microsoft 365 keeps a copy of every message sent through SMTP AUTH in Sent Items, and the ' +
      'mailbox RelayDesk signs in as has run out of space. It cannot send until space is freed.',
    fix:
      "Empty <mailbox>'s Sent Items and Deleted Items, or set a retention policy that deletes old sent " +
      'items, or give the mailbox a larger quota or an archive.',
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
    class: 'message',
    action: 'fail-message',
    category: 'size',
    title: 'Message too large',
    explanation:
      'The message is larger than the mailbox may send (35 MB by default). Attachments count about a ' +
      'third larger than their file size once encoded for mail, so a 30 MB scan is about 40 MB.',
    fix:
      'Scan at a lower resolution, in black and white, or in fewer pages per message. Or raise the ' +
      "mailbox's limit (at most 150 MB) with the PowerShell below and raise `upstream.maxMessageBytes` " +
      'to match, so devices are told the new limit.',
    actions: [openSetting('upstream.maxMessageBytes', 'Change the largest message')],
    commands: { exchangeOnline: 'Set-Mailbox -Identity <mailbox> -MaxSendSize 150MB' },
    example: replyLine(
      'message',
      '552 5.3.4 Message size exceeds fixed maximum message size; STOREDRV.Submission.Exception:MessageTooLargeException.MapiExceptionMaxSubmissionExceeded',
    ),
  },
  {
    id: 'bare-lf',
    match: [{ kind: 'reply', enhanced: ['5.6.11'] }],
    class: 'message',
    action: 'fail-message',
    category: 'unknown',
    title: 'Message has bare line feeds',
    explanation:
      'The message has lines that end in a bare line feed instead of CR LF. Exchange Online no longer ' +
      'repairs them, and the receiving side refuses them. RelayDesk converts bare line feeds to CR LF ' +
      'before relaying, so a message that meets this most likely did not go through RelayDesk: a ' +
      'device that sends to Microsoft 365 directly.',
    fix:
      'Point the device at RelayDesk instead of at Microsoft 365, and send the message again. If a ' +
      'message relayed by RelayDesk gets this reply, report it with the log.',
    example: replyLine(
      'message',
      '550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds, which cannot be sent via DATA and receiving system does not support BDAT',
    ),
  },
  {
    id: 'direct-send-disabled',
    match: [{ kind: 'reply', enhanced: ['5.7.68'] }],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Direct Send is turned off for the tenant',
    explanation:
      'The tenant refuses Direct Send, mail delivered to its MX host without signing in, which is how ' +
      'RelayDesk sends with the Direct Send preset.',
    fix:
      'Allow Direct Send again with the PowerShell below, or (recommended) switch the upstream to the ' +
      'Microsoft 365 preset, which signs in with a mailbox.',
    actions: [openSetting('upstream.preset', 'Switch to the Microsoft 365 preset')],
    commands: { exchangeOnline: 'Set-OrganizationConfig -RejectDirectSend $false' },
    example: replyLine(
      'mail',
      '550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources',
    ),
  },
  {
    id: 'direct-send-external-recipient',
    match: [{ kind: 'reply', enhanced: ['5.7.54'] }],
    class: 'recipient',
    action: 'fail-recipient',
    category: 'recipient',
    title: 'Direct Send cannot reach this recipient',
    explanation:
      "The recipient is outside the tenant's own domains. Direct Send delivers only to the tenant's " +
      'mailboxes; the other recipients of the message are unaffected.',
    fix:
      'To reach outside addresses, switch the upstream to the Microsoft 365 preset (SMTP AUTH with a ' +
      'mailbox) or OAuth 2.0.',
    actions: [openSetting('upstream.preset', 'Change the upstream')],
    example: replyLine(
      'rcpt',
      '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain [AM4PEPF00027A5F.eurprd04.prod.outlook.com]',
    ),
  },
  {
    id: 'recipient-unknown',
    match: [{ kind: 'reply', enhanced: ['5.1.1', '5.1.10'], stages: ['rcpt'] }],
    class: 'recipient',
    action: 'fail-recipient',
    category: 'recipient',
    title: 'No such recipient',
    explanation: 'The recipient address does not exist. The other recipients of the message are unaffected.',
    fix: 'Correct the address in the device or application that sent the message.',
    example: replyLine(
      'rcpt',
      '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.com not found by SMTP address lookup',
    ),
  },
  {
    id: 'recipient-rejected',
    match: [{ kind: 'reply', enhanced: ['5.4.1'], stages: ['rcpt'] }],
    class: 'recipient',
    action: 'fail-recipient',
    category: 'recipient',
    title: 'Recipient address rejected',
    explanation:
      'The receiving organisation refused this recipient: usually the address does not exist in that ' +
      'domain, or the domain is not one it accepts mail for. The other recipients are unaffected.',
    fix: 'Correct the address in the device or application that sent the message.',
    example: replyLine(
      'rcpt',
      '550 5.4.1 Recipient address rejected: Access denied. [AM2PEPF0001C710.eurprd05.prod.outlook.com]',
    ),
  },
  {
    id: 'too-many-recipients',
    match: [{ kind: 'reply', enhanced: ['4.5.3'] }],
    class: 'message',
    action: 'retry',
    category: 'throttling',
    title: 'Too many recipients in one go',
    explanation:
      'The server takes only so many recipients per message (500 for a Microsoft 365 mailbox). ' +
      'RelayDesk keeps the rest queued and sends them later.',
    fix: 'Nothing. If it happens often, have the device send to a distribution group instead.',
    example: replyLine('rcpt', '452 4.5.3 Too many recipients'),
  },
];
