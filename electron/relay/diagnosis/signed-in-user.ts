/** A user's sign-in (delegated OAuth 2.0, `relaydesk signin`) that Microsoft no longer renews. */
import type { TokenGrant } from '../upstream-failure.ts';
import { SIGN_IN, SIGN_IN_CLI, SIGN_IN_STEPS, openSetting } from './actions.ts';
import type { RuleSource, RuleText } from './types.ts';
import { signinFailure } from './examples.ts';

const HELD_MAIL_GOES_OUT = 'The held mail goes out as soon as the sign-in works.';
/** "Sign in again" first, before what else helps; on the command line with the command that does it. */
const SIGN_IN_AGAIN = {
  lead: {
    cli: 'Sign in again: run `npx relaydesk signin` (or "Sign in with Microsoft" in the window) as the mailbox\'s user.',
    window: "Sign in again as the mailbox's user.",
  },
  actions: [SIGN_IN],
} satisfies Partial<RuleText>;
const SIGNED_IN_GRANTS: readonly TokenGrant[] = ['refresh_token', 'authorization_code', 'device_code'];

/**
 * A refresh that fails holds the queue (class relay: nothing is wrong with the messages) with "Sign in
 * again" as the action.
 */
export const SIGNED_IN_USER_RULES: readonly RuleSource[] = [
  {
    id: 'signin-needed',
    match: [{ kind: 'config', codes: ['NOT_SIGNED_IN'] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign in: nobody is signed in',
    explanation:
      'The upstream signs in as a user (delegated OAuth 2.0), and nobody has signed in on this ' +
      'computer yet, or someone signed out.',
    fix: HELD_MAIL_GOES_OUT,
    ...SIGN_IN_AGAIN,
    example: { kind: 'config', code: 'NOT_SIGNED_IN', message: 'Nobody is signed in for app 3f2a1b4c' },
  },
  {
    id: 'signin-frequency',
    match: [{ kind: 'token', aadsts: [70043], grants: SIGNED_IN_GRANTS }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign in again: Conditional Access asks for a new sign-in',
    explanation:
      "A Conditional Access policy's sign-in frequency (for example every 30 days) has passed, so " +
      'Microsoft no longer renews the sign-in without the user.',
    fix:
      `${HELD_MAIL_GOES_OUT} To sign in less often, an administrator can exclude this app or the mailbox ` +
      "from the policy's sign-in frequency in Microsoft Entra admin center → Conditional Access.",
    ...SIGN_IN_AGAIN,
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
    match: [
      {
        kind: 'token',
        aadsts: [700082, 70008],
        grants: SIGNED_IN_GRANTS,
      },
    ],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign in again: the sign-in expired unused',
    explanation:
      'A sign-in that is not used for 90 days ends. RelayDesk renews it every day while it runs, so ' +
      'this means the relay was stopped (or could not reach Microsoft) for a long time.',
    fix: HELD_MAIL_GOES_OUT,
    ...SIGN_IN_AGAIN,
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
    match: [
      {
        kind: 'token',
        aadsts: [50173, 50133, 50089],
        grants: SIGNED_IN_GRANTS,
      },
    ],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign in again: the password changed or the sign-in was revoked',
    explanation:
      "The user's password was changed or reset, or an administrator revoked the user's sessions, " +
      'which ends every sign-in made before.',
    fix: `${HELD_MAIL_GOES_OUT} Sign in with the new password.`,
    ...SIGN_IN_AGAIN,
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
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Sign in again: multi-factor authentication is now required',
    explanation:
      'A policy now asks this user for multi-factor authentication (a new rule, or a sign-in from a ' +
      'new location), which only an interactive sign-in can give.',
    fix: `${HELD_MAIL_GOES_OUT} Complete the second factor in the browser.`,
    ...SIGN_IN_AGAIN,
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
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Sign in again: the user must set up multi-factor authentication',
    explanation:
      'The tenant now requires multi-factor authentication and this user has not registered a method ' +
      '(Authenticator app, phone) yet.',
    fix:
      'Have the user register a method at https://aka.ms/mfasetup, then sign in again. The held mail ' +
      'goes out as soon as the sign-in works.',
    ...SIGN_IN_STEPS,
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
    match: [
      {
        kind: 'token',
        aadsts: [65001, 650057],
        grants: SIGNED_IN_GRANTS,
      },
    ],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'An administrator must consent to the app',
    explanation:
      'The app asks for the delegated permission SMTP.Send (or Mail.Send for Graph), and nobody has ' +
      'consented to it for this user. Since July 2025 most tenants let only administrators consent.',
    fix:
      'A Global or Cloud Application Administrator opens ' +
      'https://login.microsoftonline.com/<oauthTenant>/adminconsent?client_id=<appId> and accepts (or ' +
      'presses "Grant admin consent" under App registrations → the app → API permissions). Then sign ' +
      'in again.',
    ...SIGN_IN_STEPS,
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'No such app in this tenant',
    explanation:
      'Microsoft Entra ID knows no app with this client ID in the tenant signed in to: the client ID ' +
      'or the tenant is wrong, or the app was deleted.',
    fix:
      "Copy the Application (client) ID and the Directory (tenant) ID from the app's Overview page in " +
      'Microsoft Entra admin center into `upstream.oauth2.clientId` and `upstream.oauth2.tenant` ' +
      '(docs/microsoft365.md), then sign in again.',
    cli: SIGN_IN_CLI,
    actions: [openSetting('upstream.oauth2.clientId', 'Check the app and tenant IDs'), SIGN_IN],
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'The app registration does not allow public client flows',
    explanation:
      'RelayDesk signs in as a public client (no client secret), which the app registration must ' +
      'allow; without it Microsoft asks for a client secret.',
    fix:
      'In Microsoft Entra admin center → App registrations → the app → Authentication, set "Allow ' +
      'public client flows" to Yes and save (docs/microsoft365.md). Then sign in again.',
    ...SIGN_IN_STEPS,
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
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'Sign-in with a code is blocked in this tenant',
    explanation:
      'A Conditional Access policy blocks the device code flow. Microsoft has switched such a policy ' +
      'on in many tenants that had not used the device code lately.',
    fix:
      'Sign in with the browser instead, on a computer with a browser (with `serve --admin`, open the ' +
      'window on this computer). Or an administrator excludes this user from the policy under ' +
      'Conditional Access → Authentication flows.',
    cli: 'Run `npx relaydesk signin` without --device-code.',
    actions: [SIGN_IN],
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
    match: [
      {
        kind: 'token',
        aadsts: [53003, 53000, 53001],
        grants: SIGNED_IN_GRANTS,
      },
    ],
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'A Conditional Access policy blocked the sign-in',
    explanation:
      "A Conditional Access policy refused this user's sign-in for RelayDesk (for example a location, " +
      'a compliant device or an app rule).',
    fix:
      'Find the failed sign-in in Microsoft Entra admin center → Sign-in logs: it names the policy. ' +
      "Allow this office's network or exclude the app, then sign in again.",
    ...SIGN_IN_STEPS,
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
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'The sign-in code expired',
    explanation: 'Nobody entered the code and signed in before it expired (15 minutes).',
    fix: 'Sign in again and enter the new code promptly.',
    cli: 'Run `npx relaydesk signin --device-code` again.',
    actions: [SIGN_IN],
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
    match: [
      {
        kind: 'token',
        errors: ['authorization_declined', 'access_denied'],
        grants: SIGNED_IN_GRANTS,
      },
    ],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'The sign-in was cancelled',
    explanation: 'The user cancelled the sign-in or declined the permissions RelayDesk asked for.',
    fix: `${HELD_MAIL_GOES_OUT} Accept the permissions "Send mail as you" and "Maintain access".`,
    ...SIGN_IN_AGAIN,
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
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'The browser sign-in did not finish',
    explanation:
      'Nobody finished signing in in the browser in time, or the browser came back with an answer that ' +
      'belongs to another sign-in (an old tab), which RelayDesk does not use.',
    fix: 'Sign in again and finish the sign-in in the browser tab it opens.',
    cli: 'Run `npx relaydesk signin` again.',
    actions: [SIGN_IN],
    example: {
      kind: 'config',
      code: 'SIGNIN_TIMEOUT',
      message: 'Nobody finished signing in within 300 seconds.',
    },
  },
  {
    id: 'signin-refused',
    match: [{ kind: 'token', statusClass: 4, grants: SIGNED_IN_GRANTS }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'Sign in again: Microsoft refused the sign-in',
    explanation:
      'Microsoft Entra ID no longer accepts the sign-in RelayDesk keeps (the AADSTS number shown says ' +
      'why; look it up at https://login.microsoftonline.com/error).',
    fix: HELD_MAIL_GOES_OUT,
    ...SIGN_IN_AGAIN,
    example: signinFailure(
      'refresh_token',
      400,
      'invalid_grant',
      70000,
      'Provided grant is invalid or malformed.',
    ),
  },
];
