/** Problems RelayDesk finds itself before or while talking to the upstream. */
import { CHECK_AGAIN, ENTER_CLIENT_SECRET, PASSWORD_SET_CLI, TEST_AGAIN, openSetting } from './actions.ts';
import type { RuleSource } from './types.ts';

export const CONFIG_RULES: readonly RuleSource[] = [
  {
    id: 'secret-missing',
    match: [{ kind: 'config', codes: ['NO_SECRET'] }],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'No password or client secret stored',
    explanation:
      'The upstream needs a password (or, with OAuth 2.0, a client secret) and RelayDesk has none ' +
      'stored for it.',
    fix:
      'Store it in the keychain, or give it to the RelayDesk service in the RELAYDESK_UPSTREAM_PASSWORD ' +
      '(password) or RELAYDESK_CLIENT_SECRET (OAuth 2.0) environment variable.',
    cli: `To store it: ${PASSWORD_SET_CLI}.`,
    byAuth: {
      password: {
        explanation: 'The upstream signs in with a password, and RelayDesk has none stored for <mailbox>.',
        fix:
          'Store the password in the keychain, or give it to the RelayDesk service in the ' +
          'RELAYDESK_UPSTREAM_PASSWORD environment variable.',
        actions: [openSetting('upstream.password', 'Enter the password'), TEST_AGAIN],
      },
      oauth2: {
        explanation:
          "The upstream signs in with OAuth 2.0 as an app, and RelayDesk has none of the app's client " +
          'secret stored.',
        fix:
          'Store the client secret in the keychain, or give it to the RelayDesk service in the ' +
          'RELAYDESK_CLIENT_SECRET environment variable.',
        actions: [ENTER_CLIENT_SECRET, TEST_AGAIN],
      },
    },
    example: { kind: 'config', code: 'NO_SECRET', message: 'no password stored for john@contoso.com' },
  },
  {
    id: 'keychain-unavailable',
    match: [{ kind: 'config', codes: ['KEYCHAIN_UNAVAILABLE'] }],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: "The system's keychain cannot be opened",
    explanation:
      "RelayDesk keeps the password in the operating system's keychain, which could not be opened. " +
      'This is common when RelayDesk runs as a service or on a server without a signed-in desktop ' +
      'session.',
    fix:
      'Store the secret as the account RelayDesk runs under, or give it to the service in the ' +
      'RELAYDESK_UPSTREAM_PASSWORD or RELAYDESK_CLIENT_SECRET environment variable.',
    cli: `Run ${PASSWORD_SET_CLI} as that account.`,
    example: {
      kind: 'config',
      code: 'KEYCHAIN_UNAVAILABLE',
      message: 'the Secret Service is not available on this system',
    },
  },
  {
    id: 'smtputf8-not-offered',
    match: [{ kind: 'config', codes: ['SMTPUTF8_NOT_OFFERED'] }],
    class: 'message',
    action: 'fail-message',
    category: 'recipient',
    title: 'The upstream cannot take addresses with non-ASCII characters',
    explanation:
      "This message's sender or recipient address has characters outside ASCII (such as `josé@`), " +
      'which needs the SMTPUTF8 extension (RFC 6531), and the upstream does not offer it. Sending the ' +
      'address anyway would garble it, so RelayDesk returns this message; other messages are not ' +
      'affected.',
    fix:
      'Use an ASCII address for this sender or recipient, or relay through an upstream that offers ' +
      'SMTPUTF8 (Microsoft 365 does).',
    example: {
      kind: 'config',
      code: 'SMTPUTF8_NOT_OFFERED',
      message: "smtp.example.test does not offer SMTPUTF8, which this message's addresses need",
    },
  },
  {
    id: 'upstream-size-exceeded',
    match: [{ kind: 'config', codes: ['UPSTREAM_SIZE_EXCEEDED'] }],
    class: 'message',
    action: 'fail-message',
    category: 'size',
    title: 'The message is larger than the upstream accepts',
    explanation:
      'The upstream announces the largest message it takes (SIZE in its EHLO reply), and this message ' +
      'is larger. RelayDesk refuses such messages at the device once it knows the limit; this one ' +
      'arrived before that.',
    fix:
      'Send smaller files (scan at a lower resolution, or split the document), or set ' +
      '`upstream.maxMessageBytes` to the limit the connection test shows.',
    cli: 'The connection test is `npx relaydesk check`.',
    actions: [openSetting('upstream.maxMessageBytes', 'Change the largest message'), TEST_AGAIN],
    example: {
      kind: 'config',
      code: 'UPSTREAM_SIZE_EXCEEDED',
      message: 'the message (40000000 bytes) is larger than smtp.example.test accepts (SIZE 36700160)',
    },
  },
  {
    id: 'config-other',
    match: [{ kind: 'config' }],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: "A problem in RelayDesk's configuration",
    explanation: 'RelayDesk found a problem in its own configuration before contacting the upstream.',
    fix: 'Read the message shown with the error and correct the configuration.',
    ...CHECK_AGAIN,
    example: { kind: 'config', code: 'NO_USER', message: 'upstream.user is not set' },
  },
];
