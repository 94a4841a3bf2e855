/** The connection to the upstream failing before any reply. */
import { TEST_AGAIN, openSetting } from './actions.ts';
import type { RuleCommands, RuleSource } from './types.ts';

/** Whether this computer finds the upstream's address, in each platform's own tool. */
const RESOLVE_NAME: RuleCommands = {
  windows: 'Resolve-DnsName <host>',
  linux: 'getent hosts <host>',
  macos: 'dscacheutil -q host -a name <host>',
};

/** Whether this computer reaches the upstream's port, in each platform's own tool. */
const TEST_PORT: RuleCommands = {
  windows: 'Test-NetConnection <host> -Port <port>',
  linux: 'nc -vz -w 10 <host> <port>',
  macos: 'nc -vz -G 10 <host> <port>',
};

export const NETWORK_RULES: readonly RuleSource[] = [
  {
    id: 'dns-failed',
    match: [{ kind: 'network', codes: ['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL'] }],
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'Server name not found',
    explanation:
      "This PC could not look up the upstream's name: the name is misspelled, or the PC's DNS server " +
      'is not answering (no internet connection, VPN, DNS filter).',
    fix: 'Check `upstream.host` for typing errors, then check that this PC resolves it:',
    actions: [openSetting('upstream.host', 'Check the server name'), TEST_AGAIN],
    commands: RESOLVE_NAME,
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
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'Connection refused',
    explanation:
      'Nothing accepts connections at that address and port, or a firewall turns them away. Many ' +
      'internet providers block outgoing port 25.',
    fix:
      'Check `upstream.host` and `upstream.port` (Microsoft 365: smtp.office365.com, port 587), and ' +
      'test the port from this PC; if it fails, ask whoever runs the firewall or the internet line to ' +
      'allow it.',
    commands: TEST_PORT,
    actions: [openSetting('upstream.host', 'Check the server and port'), TEST_AGAIN],
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
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'No answer from the server',
    explanation:
      'The server did not answer in time. Usually a firewall silently drops the connection (many ' +
      'internet providers drop outgoing port 25), sometimes the internet connection is down or very ' +
      'slow.',
    fix:
      'Test the port from this PC; if it fails, ask whoever runs the firewall or the internet line to ' +
      'allow it. If it only happens under load, raise `upstream.timeoutSeconds`.',
    actions: [TEST_AGAIN, openSetting('upstream.timeoutSeconds', 'Wait longer for the server')],
    commands: TEST_PORT,
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
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'Connection dropped',
    explanation:
      'The connection was cut in the middle of the conversation: by the server, a firewall, or an ' +
      'unstable internet line. The message stays queued and RelayDesk retries it.',
    fix:
      'Nothing, if it passes. If it keeps happening, check the firewall or antivirus for mail scanning ' +
      'that interrupts connections.',
    example: { kind: 'network', stage: 'data', code: 'ECONNRESET', message: 'read ECONNRESET' },
  },
  {
    id: 'host-unreachable',
    match: [{ kind: 'network', codes: ['EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN'] }],
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'No network route to the server',
    explanation:
      'This PC has no way to reach the server: the network cable, Wi-Fi or VPN is down, or the PC has ' +
      'no default gateway.',
    fix: "Check this PC's network connection, then test the port:",
    actions: [TEST_AGAIN],
    commands: TEST_PORT,
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
    class: 'relay',
    action: 'retry',
    category: 'network',
    title: 'Network error',
    explanation: 'The connection to the server failed. The message stays queued and RelayDesk retries it.',
    fix: 'Nothing, if it passes. If it keeps happening, test the port from this PC:',
    commands: TEST_PORT,
    example: { kind: 'network', stage: 'connect', code: 'EADDRNOTAVAIL', message: 'connect EADDRNOTAVAIL' },
  },
];
