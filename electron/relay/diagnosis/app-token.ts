/** The app's own sign-in (client credentials): Microsoft Entra ID refusing a token. */
import { ENTER_CLIENT_SECRET, PASSWORD_SET_CLI, TEST_AGAIN, openSetting } from './actions.ts';
import type { RuleSource } from './types.ts';
import { tokenFailure } from './examples.ts';

const NEW_CLIENT_SECRET =
  'In Microsoft Entra admin center → App registrations → the app → Certificates & secrets, create a ' +
  'new client secret and copy its Value (shown only once, not the Secret ID); store it in RelayDesk or ' +
  'in the RELAYDESK_CLIENT_SECRET environment variable.';
const NEW_CLIENT_SECRET_CLI = `To store it: ${PASSWORD_SET_CLI}.`;

export const APP_TOKEN_RULES: readonly RuleSource[] = [
  {
    id: 'token-secret-invalid',
    match: [{ kind: 'token', aadsts: [7000215, 700027] }],
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'The client secret is wrong',
    explanation:
      "Microsoft Entra ID did not accept the app's client secret: usually the Secret ID was copied " +
      "instead of the secret's Value, or the secret belongs to another app.",
    fix: NEW_CLIENT_SECRET,
    cli: NEW_CLIENT_SECRET_CLI,
    actions: [ENTER_CLIENT_SECRET, TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'credentials',
    title: 'The client secret has expired',
    explanation: "The app's client secret has passed its expiry date, so Microsoft Entra ID refuses it.",
    fix: `${NEW_CLIENT_SECRET} Note the new expiry date.`,
    cli: NEW_CLIENT_SECRET_CLI,
    actions: [ENTER_CLIENT_SECRET, TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'No such app in this tenant',
    explanation:
      'Microsoft Entra ID knows no app with this client ID in this tenant: the client ID or the tenant ' +
      'is wrong, or the app was deleted.',
    fix:
      "Copy the Application (client) ID and the Directory (tenant) ID from the app's Overview page in " +
      'Microsoft Entra admin center into `upstream.oauth2.clientId` and `upstream.oauth2.tenant`.',
    actions: [openSetting('upstream.oauth2.clientId', 'Check the app and tenant IDs'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'Tenant not found',
    explanation:
      'Microsoft Entra ID does not know the tenant in `upstream.oauth2.tenant`, or the token URL ' +
      'points to another Microsoft cloud than the tenant lives in.',
    fix:
      'Set `upstream.oauth2.tenant` to the Directory (tenant) ID or a verified domain such as ' +
      "contoso.onmicrosoft.com. For government clouds, set `upstream.oauth2.tokenUrl` to that cloud's " +
      'sign-in host (for example login.microsoftonline.us).',
    actions: [openSetting('upstream.oauth2.tenant', 'Check the tenant'), TEST_AGAIN],
    example: tokenFailure(
      400,
      'invalid_request',
      90002,
      "Tenant 'contoso.onmicrosoft.cm' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
    ),
  },
  {
    id: 'token-consent-missing',
    match: [{ kind: 'token', aadsts: [65001, 650057, 1003031] }],
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: "The app lacks a permission or an admin's consent",
    explanation:
      'The app does not have the permission RelayDesk needs, or an administrator has not granted ' +
      'consent for it in this tenant.',
    fix:
      'In Microsoft Entra admin center → App registrations → the app → API permissions, add the ' +
      'application permission Office 365 Exchange Online → SMTP.SendAsApp (SMTP upstream) or Microsoft ' +
      'Graph → Mail.Send (Graph upstream), then press "Grant admin consent".',
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
    class: 'relay',
    action: 'hold',
    category: 'policy',
    title: 'A Conditional Access policy blocked the app',
    explanation:
      'A Conditional Access policy for workload identities (for example one that allows only certain ' +
      "locations) refused the app's sign-in.",
    fix:
      'Find the failed sign-in in Microsoft Entra admin center → Sign-in logs → Service principal ' +
      "sign-ins: it names the policy. Allow this office's public IP address or exclude the app from it.",
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'The app is disabled',
    explanation: "The app's Enterprise Application is disabled in the tenant, so it cannot sign in.",
    fix:
      'In Microsoft Entra admin center → Enterprise applications → the app → Properties, set "Enabled ' +
      'for users to sign-in?" to Yes.',
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'Exchange Online or Graph not found in the tenant',
    explanation:
      'The tenant has no Exchange Online (or Microsoft Graph) to issue a token for: the tenant has no ' +
      'Exchange Online subscription, or the token URL points to another Microsoft cloud.',
    fix:
      'Check that `upstream.oauth2.tenant` is the tenant that holds the mailbox, and that ' +
      '`upstream.oauth2.tokenUrl` is the sign-in host of its cloud.',
    actions: [openSetting('upstream.oauth2.tenant', 'Check the tenant'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'Invalid token scope',
    explanation:
      'Microsoft Entra ID refused the permission scope RelayDesk asked for. RelayDesk asks for ' +
      '`https://outlook.office365.com/.default` (SMTP) or `https://graph.microsoft.com/.default` ' +
      '(Graph), which only the v2.0 token endpoint understands.',
    fix:
      'Set `upstream.oauth2.tokenUrl` to a v2.0 endpoint (ending in `/oauth2/v2.0/token`), or remove ' +
      'it to use the default.',
    actions: [openSetting('upstream.oauth2.tokenUrl', 'Check the token URL'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'Account not found in the tenant',
    explanation: 'The account named in the sign-in does not exist in this tenant.',
    fix: 'Check `upstream.user` and `upstream.oauth2.tenant`: the mailbox must belong to that tenant.',
    actions: [openSetting('upstream.user', 'Check the mailbox address'), TEST_AGAIN],
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
    class: 'relay',
    action: 'retry',
    category: 'throttling',
    title: 'Microsoft sign-in is slowing RelayDesk down',
    explanation: 'The sign-in service received too many token requests. RelayDesk retries later.',
    fix: 'Nothing, if it passes.',
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
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'Microsoft sign-in is unavailable',
    explanation: "Microsoft's sign-in service had a problem of its own. RelayDesk retries later.",
    fix: 'Nothing, if it passes. If it lasts, check the Microsoft 365 service health page.',
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
    class: 'relay',
    action: 'hold',
    category: 'configuration',
    title: 'Microsoft sign-in refused the app',
    explanation: 'Microsoft Entra ID refused to issue a token for the app.',
    fix:
      'Look up the AADSTS number shown with the error at https://login.microsoftonline.com/error, and ' +
      'check `upstream.oauth2` (tenant and client ID) and the stored client secret.',
    actions: [openSetting('upstream.oauth2.clientId', 'Check the app and tenant IDs'), TEST_AGAIN],
    example: tokenFailure(
      400,
      'invalid_request',
      900144,
      "The request body must contain the following parameter: 'grant_type'.",
    ),
  },
];
