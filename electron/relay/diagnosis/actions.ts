/**
 * The RelayDesk side of fixes, said twice: as `relaydesk` commands for the command line, and as
 * buttons for the window, which never tells anyone to run a command.
 */
import type { FixAction, RuleText } from './types.ts';

export const CHECK_AGAIN_CLI = 'Then run `npx relaydesk check`.';
export const PASSWORD_SET_CLI = '`npx relaydesk password set`';
/** A password the upstream refused, typed again on the command line and tried. */
export const STORE_PASSWORD_AGAIN_CLI = `Store the password with ${PASSWORD_SET_CLI}. ${CHECK_AGAIN_CLI}`;
export const SIGN_IN_CLI = 'Run `npx relaydesk signin` (or "Sign in with Microsoft" in the window).';

export const TEST_AGAIN: FixAction = { window: 'test-connection', label: 'Test the connection again' };
export const SIGN_IN: FixAction = { window: 'sign-in', label: 'Sign in with Microsoft' };

/** Opens Settings at the control of `path`, a config path such as `upstream.password`. */
export function openSetting(path: string, label: string): FixAction {
  return { setting: path, label };
}

export const ENTER_PASSWORD = openSetting('upstream.password', 'Enter the password again');
export const SWITCH_TO_OAUTH = openSetting('upstream.auth', 'Switch to OAuth 2.0');
export const ENTER_CLIENT_SECRET = openSetting('upstream.clientSecret', 'Enter the client secret');

/** Fixed in RelayDesk's settings or outside it: then the connection test shows whether it worked. */
export const CHECK_AGAIN = { cli: CHECK_AGAIN_CLI, actions: [TEST_AGAIN] } satisfies Partial<RuleText>;
/** A user's sign-in that only the user can renew. */
export const SIGN_IN_STEPS = { cli: SIGN_IN_CLI, actions: [SIGN_IN] } satisfies Partial<RuleText>;
