/** Microsoft Graph (sendMail) refusing a message or the app. */
import { CHECK_AGAIN_CLI, TEST_AGAIN, openSetting } from './actions.ts';
import type { RuleSource } from './types.ts';
import { graphFailure } from './examples.ts';

export const GRAPH_RULES: readonly RuleSource[] = [
  {
    id: 'graph-send-as-denied',
    match: [{ kind: 'graph', codes: ['ErrorSendAsDenied'] }],
    class: 'message',
    action: 'fail-message',
    category: 'send-as',
    title: 'Not allowed to send as this sender',
    explanation:
      "The message's sender address is not the mailbox RelayDesk sends from, and that mailbox has no " +
      '"Send As" right on it. Messages from other senders still go out.',
    fix:
      'Give the mailbox Send As on the address (PowerShell below), or add <address> as an alias of ' +
      '<mailbox>, or set `upstream.sendAs` to `mailbox` so Graph sends as the mailbox itself.',
    actions: [openSetting('upstream.sendAs', 'Send as the mailbox')],
    commands: {
      exchangeOnline: 'Add-RecipientPermission -Identity <address> -AccessRights SendAs -Trustee <mailbox>',
    },
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
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Graph did not accept the token',
    explanation:
      "Microsoft Graph refused the app's access token: it was issued for another service or tenant, or " +
      'has expired.',
    fix:
      'Check that `upstream.oauth2.tenant` is the tenant that holds the mailbox and that ' +
      '`upstream.oauth2.tokenUrl` matches the cloud of `upstream.graphUrl`.',
    cli: CHECK_AGAIN_CLI,
    actions: [openSetting('upstream.oauth2.tenant', 'Check the tenant'), TEST_AGAIN],
    example: graphFailure(
      401,
      'InvalidAuthenticationToken',
      'Access token validation failure. Invalid audience.',
    ),
  },
  {
    id: 'graph-mailbox-not-enabled',
    match: [{ kind: 'graph', codes: ['MailboxNotEnabledForRESTAPI', 'ErrorMailboxNotEnabledForRESTAPI'] }],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'The mailbox cannot be used through Graph',
    explanation:
      'The mailbox is on an on-premises Exchange server, is inactive, or has no Exchange Online ' +
      'licence, so Microsoft Graph cannot send from it.',
    fix:
      'Set `upstream.mailbox` to a licensed Exchange Online mailbox, or use the SMTP upstream for a ' +
      'mailbox that is on-premises.',
    actions: [openSetting('upstream.mailbox', 'Change the mailbox'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'No such mailbox',
    explanation: 'Microsoft Graph found no mailbox with the address in `upstream.mailbox`.',
    fix:
      'Correct `upstream.mailbox`: it must be the primary address (or user ID) of a mailbox in the ' +
      'tenant.',
    actions: [openSetting('upstream.mailbox', 'Change the mailbox'), TEST_AGAIN],
    example: graphFailure(404, 'ErrorInvalidUser', "The requested user 'scanner@contoso.com' is invalid."),
  },
  {
    id: 'graph-access-denied',
    match: [
      { kind: 'graph', codes: ['ErrorAccessDenied', 'Authorization_RequestDenied'] },
      { kind: 'graph', status: [403], text: /access is denied/i },
    ],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'The app may not send from this mailbox',
    explanation:
      'Microsoft Graph refused: the app lacks the Mail.Send application permission or its admin ' +
      'consent, or an Application Access Policy or an RBAC for Applications scope leaves this mailbox ' +
      'out. Messages over about 4 MB, and `saveToSentItems: false`, also need Mail.ReadWrite (they go ' +
      'through a draft).',
    fix:
      'Check API permissions (Microsoft Graph → Application → Mail.Send, and Mail.ReadWrite for large ' +
      'messages, admin consent granted). `Test-ApplicationAccessPolicy -Identity <mailbox> -AppId ' +
      '<appId>` tells whether an access policy blocks it. With RBAC for Applications, give the app the ' +
      'role over a scope that includes the mailbox (PowerShell below).',
    commands: {
      exchangeOnline:
        'New-ManagementRoleAssignment -App <appId> -Role "Application Mail.Send" -CustomResourceScope <scope>',
    },
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
    class: 'message',
    action: 'fail-message',
    category: 'size',
    title: 'Message too large for Graph',
    explanation:
      'Microsoft Graph refused the message as too large for the mailbox. RelayDesk already sends ' +
      "messages over about 4 MB as a draft with upload sessions, so this is the mailbox's own size " +
      'limit (35 MB by default).',
    fix:
      "Scan at a lower resolution or fewer pages per message, or raise the mailbox's MaxSendSize (up " +
      'to 150 MB).',
    commands: { exchangeOnline: 'Set-Mailbox -Identity <mailbox> -MaxSendSize 150MB' },
    example: graphFailure(413, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.'),
  },
  {
    id: 'graph-throttled',
    match: [
      { kind: 'graph', status: [429, 503] },
      { kind: 'graph', codes: ['ApplicationThrottled'] },
    ],
    class: 'relay',
    action: 'retry',
    category: 'throttling',
    title: 'Microsoft Graph is slowing RelayDesk down',
    explanation:
      'Microsoft Graph is busy or throttling this app or mailbox. RelayDesk waits as long as Graph ' +
      'asks, then retries.',
    fix: 'Nothing, if it passes. If it keeps happening, lower `upstream.messagesPerMinute`.',
    actions: [openSetting('upstream.messagesPerMinute', 'Lower the messages per minute')],
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
    class: 'relay',
    action: 'retry',
    category: 'unknown',
    title: 'Microsoft Graph had an error',
    explanation: 'Microsoft Graph had a problem of its own. RelayDesk retries the message later.',
    fix: 'Nothing, if it passes. If it lasts, check the Microsoft 365 service health page.',
    example: graphFailure(
      500,
      'ErrorInternalServerError',
      'An internal server error occurred. The operation failed.',
    ),
  },
  {
    id: 'graph-rejected',
    match: [{ kind: 'graph' }],
    class: 'message',
    action: 'fail-message',
    category: 'unknown',
    title: 'Microsoft Graph refused the message',
    explanation: 'Microsoft Graph refused this message for good. Other messages are unaffected.',
    fix: 'Read the message shown with the error; it usually names the reason.',
    example: graphFailure(
      400,
      'ErrorInvalidRecipients',
      "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
    ),
  },
];
