/** TLS towards the upstream: certificates, versions, STARTTLS. */
import { TEST_AGAIN, openSetting } from './actions.ts';
import type { RuleSource } from './types.ts';

export const TLS_RULES: readonly RuleSource[] = [
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
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: "The server's certificate is not trusted",
    explanation:
      "The server's certificate is not signed by an authority this PC trusts. Often a firewall or " +
      'antivirus intercepts TLS and presents its own certificate; with a private mail server, the ' +
      'server uses a certificate from a private authority. RelayDesk never turns certificate checks ' +
      'off.',
    fix:
      'If a firewall or antivirus inspects TLS, exempt <host> from inspection. For a private server, ' +
      "save the authority's certificate as a PEM file and set `upstream.caFile` to its path.",
    actions: [openSetting('upstream.caFile', 'Choose the certificate file'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: "The server's certificate is out of date",
    explanation: "The server's certificate has expired or is not valid yet, or this PC's clock is wrong.",
    fix:
      "First check this PC's date, time and time zone. If they are right, the server's certificate " +
      'must be renewed by whoever runs the server.',
    example: { kind: 'tls', stage: 'starttls', code: 'CERT_HAS_EXPIRED', message: 'certificate has expired' },
  },
  {
    id: 'tls-wrong-host',
    match: [{ kind: 'tls', codes: ['ERR_TLS_CERT_ALTNAME_INVALID'] }],
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'The certificate is for another server name',
    explanation:
      "The server's certificate does not name the host RelayDesk connects to: `upstream.host` is an IP " +
      'address or an alias, or a firewall intercepts TLS.',
    fix: 'Set `upstream.host` to the name on the certificate (for Microsoft 365, smtp.office365.com).',
    actions: [openSetting('upstream.host', 'Change the server name'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'The server did not answer in TLS',
    explanation:
      'RelayDesk started TLS but the server answered in plain text. Most often `upstream.security` is ' +
      '`tls` (encrypted from the first byte, port 465) on a port that expects STARTTLS (587 or 25); ' +
      'Microsoft 365 has no port 465. Less often the server speaks only an old TLS version.',
    fix: 'For port 587 or 25, set `upstream.security` to `starttls`; `tls` belongs with port 465.',
    actions: [openSetting('upstream.security', 'Change the connection security'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'The server speaks only an old TLS version',
    explanation:
      'The server offers only TLS 1.0 or 1.1. RelayDesk always uses TLS 1.2 or later towards the ' +
      'upstream, because the old versions are broken.',
    fix:
      'Have the server updated or configured for TLS 1.2, or deliver through Microsoft 365 instead. ' +
      '(Old devices on the LAN side may still use TLS 1.0: see `lanTls.allowLegacyTls`.)',
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
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'The server does not offer STARTTLS',
    explanation:
      'RelayDesk will not send a password or a message unencrypted, and the server did not offer to ' +
      "encrypt. Either it is the wrong server or port, or a firewall's SMTP inspection removes " +
      "STARTTLS from the server's answer (Cisco ASA's ESMTP inspection is a known example).",
    fix:
      'Check `upstream.host` and `upstream.port`. If they are right, turn off SMTP inspection for this ' +
      'connection in the firewall.',
    actions: [openSetting('upstream.host', 'Check the server and port'), TEST_AGAIN],
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
    class: 'relay',
    action: 'hold',
    category: 'tls',
    title: 'TLS failed',
    explanation: 'The encrypted connection to the server could not be set up.',
    fix:
      'Check `upstream.host`, `upstream.port` and `upstream.security`, and whether a firewall or ' +
      'antivirus inspects TLS.',
    cli: '`npx relaydesk check` shows the details.',
    actions: [openSetting('upstream.security', 'Check the connection security'), TEST_AGAIN],
    example: {
      kind: 'tls',
      stage: 'starttls',
      code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
      message: 'SSL routines:ssl3_read_bytes:sslv3 alert handshake failure',
    },
  },
];
