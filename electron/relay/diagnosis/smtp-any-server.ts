/** Replies of any SMTP server, by code and class: what no Microsoft-specific row knows. */
import type { RuleSource } from './types.ts';
import {
  ENTER_PASSWORD,
  PASSWORD_SET_CLI,
  STORE_PASSWORD_AGAIN_CLI,
  TEST_AGAIN,
  openSetting,
} from './actions.ts';
import { replyLine } from './examples.ts';

export const SMTP_GENERIC_RULES: readonly RuleSource[] = [
  {
    id: 'app-password-required',
    match: [{ kind: 'reply', codes: [534], enhanced: ['5.7.9'] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'An app password is required',
    explanation:
      'The account has 2-step verification, so the server takes an app password instead of the normal ' +
      'password.',
    fix:
      'Create an app password for the account (for Google: Google account → Security → 2-Step ' +
      'Verification → App passwords) and enter it as the password.',
    cli: `Store it with ${PASSWORD_SET_CLI}.`,
    actions: [openSetting('upstream.password', 'Enter the app password'), TEST_AGAIN],
    refusedPassword: true,
    example: replyLine(
      'auth',
      '534 5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/?p=InvalidSecondFactor',
    ),
  },
  {
    id: 'auth-rejected',
    match: [{ kind: 'reply', codes: [534, 535] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'User name or password not accepted',
    explanation: 'The server refused the sign-in: the user name or password is wrong or no longer valid.',
    fix: 'Check `upstream.user` and enter the password again.',
    cli: STORE_PASSWORD_AGAIN_CLI,
    actions: [openSetting('upstream.user', 'Check the user name'), ENTER_PASSWORD, TEST_AGAIN],
    refusedPassword: true,
    example: replyLine(
      'auth',
      '535 5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials',
    ),
  },
  {
    id: 'reply-421',
    match: [{ kind: 'reply', codes: [421] }],
    class: 'relay',
    action: 'retry',
    category: 'unknown',
    title: 'The server closed the connection for now',
    explanation:
      'The server is busy, restarting or has too many connections, and asked RelayDesk to come back ' +
      'later. The message stays queued.',
    fix: 'Nothing, if it passes. If it keeps happening, lower `upstream.maxConnections`.',
    actions: [openSetting('upstream.maxConnections', 'Lower the connections at a time')],
    example: replyLine('greeting', '421 4.3.2 Service not available, closing transmission channel'),
  },
  {
    id: 'reply-4xx',
    match: [{ kind: 'reply', replyClass: 4 }],
    class: 'message',
    action: 'retry',
    category: 'unknown',
    title: 'Temporary failure',
    explanation:
      'The server reported a temporary problem. The message stays queued and RelayDesk retries it.',
    fix: 'Nothing, if it passes. If it keeps happening, look up the reply text shown in the queue.',
    example: replyLine('data', '451 4.3.0 Temporary server error. Please try again later'),
  },
  {
    id: 'reply-5xx-recipient',
    match: [{ kind: 'reply', replyClass: 5, stages: ['rcpt'] }],
    class: 'recipient',
    action: 'fail-recipient',
    category: 'recipient',
    title: 'Recipient refused',
    explanation:
      'The server refused this recipient for good. The other recipients of the message are unaffected.',
    fix: 'Check the address, and the reply text for the reason.',
    example: replyLine('rcpt', '553 5.1.3 The recipient address is not a valid RFC 5321 address'),
  },
  {
    id: 'reply-5xx-auth',
    match: [{ kind: 'reply', replyClass: 5, stages: ['auth'] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign-in failed',
    explanation: 'The server refused the sign-in, so no message can be sent until this is fixed.',
    fix: 'Check `upstream.user`, `upstream.auth` and the stored password.',
    cli: STORE_PASSWORD_AGAIN_CLI,
    actions: [
      openSetting('upstream.user', 'Check the user name'),
      openSetting('upstream.auth', 'Check how RelayDesk signs in'),
      ENTER_PASSWORD,
      TEST_AGAIN,
    ],
    refusedPassword: true,
    example: replyLine('auth', '504 5.7.4 Unrecognized authentication type'),
  },
  {
    id: 'reply-5xx-session',
    match: [{ kind: 'reply', replyClass: 5, stages: ['connect', 'greeting', 'ehlo', 'starttls'] }],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'The server refused the connection',
    explanation:
      "The server refused RelayDesk before any message was sent: this PC's IP address may be blocked, " +
      'or `upstream.host` is not a server that accepts mail from RelayDesk.',
    fix:
      'Check `upstream.host`, `upstream.port` and `upstream.security`, and the reply text for the ' +
      'reason.',
    actions: [openSetting('upstream.host', 'Check the server and port'), TEST_AGAIN],
    example: replyLine('greeting', '554 5.7.1 Service unavailable; Client host [203.0.113.17] blocked'),
  },
  {
    id: 'reply-5xx-message',
    match: [{ kind: 'reply', replyClass: 5 }],
    class: 'message',
    action: 'fail-message',
    category: 'unknown',
    title: 'Message refused',
    explanation: 'The server refused this message for good. Other messages are unaffected.',
    fix: 'Look up the reply text shown in the queue; it usually names the reason.',
    example: replyLine('data', '550 5.7.1 Message rejected as spam by Content Filtering'),
  },
];

/** Chosen when no row matches: only an SMTP reply outside 4xx and 5xx gets here. */
export const UNEXPECTED_RULE: RuleSource = {
  id: 'unexpected',
  match: [],
  class: 'message',
  action: 'retry',
  category: 'unknown',
  title: 'Unexpected answer from the server',
  explanation:
    'The server answered something RelayDesk did not expect at that point of the conversation. The ' +
    'message stays queued and RelayDesk retries it.',
  fix:
    'Nothing, if it passes. If it keeps happening, check `upstream.host` and `upstream.port` and ' +
    'report it with the log.',
  example: replyLine('data', '250 2.0.0 OK'),
};
