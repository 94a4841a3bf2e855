import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { DIAGNOSIS_RULES, diagnose } from '../../electron/relay/diagnosis.ts';
import type { SmtpStage, UpstreamFailure } from '../../electron/relay/upstream-failure.ts';
import { replyFailure } from '../fixtures/upstream-failures.ts';

function network(code: string): UpstreamFailure {
  return { kind: 'network', stage: 'connect', code, message: `connect ${code} 52.96.40.242:587` };
}

function tls(code: string): UpstreamFailure {
  return { kind: 'tls', stage: 'starttls', code, message: code };
}

function token(status: number, aadsts: number[]): UpstreamFailure {
  return {
    kind: 'token',
    status,
    error: 'invalid_client',
    aadsts,
    description: aadsts.map((n) => `AADSTS${n}: failed.`).join(' '),
  };
}

function graph(status: number, code: string, retryAfterSeconds: number | null = null): UpstreamFailure {
  return { kind: 'graph', status, code, message: code, retryAfterSeconds };
}

describe('the diagnosis table', () => {
  it('has unique ids and a title, explanation and fix on every row', () => {
    const ids = DIAGNOSIS_RULES.map((rule) => rule.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const rule of DIAGNOSIS_RULES) {
      expect(rule.title, rule.id).not.toBe('');
      expect(rule.explanation, rule.id).not.toBe('');
      expect(rule.fix, rule.id).not.toBe('');
    }
  });

  it.each(DIAGNOSIS_RULES.map((rule) => [rule.id, rule] as const))(
    'reaches row %s with its own example',
    (_id, rule) => {
      const diagnosis = diagnose(rule.example);
      expect(diagnosis.id).toBe(rule.id);
      expect(diagnosis.category).toBe(rule.category);
      expect(diagnosis.action).toBe(rule.action);
      expect(diagnosis.title).toBe(rule.title);
    },
  );
});

describe('every reply in exchange-online.md has its own row', () => {
  // The reply column of "Replies a relay admin meets" and the limits table, completed into whole reply
  // lines where the document gives only the enhanced code.
  const rows: [SmtpStage, string, string][] = [
    ['mail', '530 5.7.57 Client not authenticated to send mail', 'not-authenticated'],
    ['auth', '535 5.7.3 Authentication unsuccessful', 'auth-failed'],
    [
      'auth',
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant',
      'smtp-auth-disabled-tenant',
    ],
    [
      'auth',
      '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox',
      'smtp-auth-disabled-mailbox',
    ],
    [
      'auth',
      '535 5.7.139 Authentication unsuccessful, basic authentication is disabled',
      'smtp-basic-auth-disabled',
    ],
    [
      'auth',
      "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy",
      'smtp-auth-security-defaults',
    ],
    ['auth', '550 5.7.30 Basic authentication is not supported for Client Submission', 'basic-auth-retired'],
    ['mail', '550 5.7.60 SMTP; Client does not have permissions to send as this sender', 'send-as-denied'],
    ['data', '554 5.2.252 SendAsDenied; X not allowed to send as Y', 'send-as-denied'],
    ['mail', '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded', 'sender-thread-limit'],
    ['mail', '451 4.7.500 Server busy', 'throttled'],
    ['rcpt', '451 4.7.699 Access denied, please try again later', 'throttled'],
    ['starttls', '421 4.7.66 TLS 1.0 and 1.1 are not supported', 'tls-version-rejected'],
    ['mail', '550 5.7.708 Access denied, traffic not accepted from this IP', 'ip-not-accepted'],
    ['mail', '550 5.7.501 Access denied, spam abuse detected', 'account-restricted'],
    ['mail', '550 5.7.502 Access denied, spam abuse detected', 'account-restricted'],
    ['mail', '550 5.7.503 Access denied, spam abuse detected', 'account-restricted'],
    ['mail', '550 5.7.511 Access denied, banned sender', 'account-restricted'],
    ['mail', '550 5.1.8 Bad outbound sender', 'account-restricted'],
    [
      'data',
      '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException',
      'daily-recipient-limit',
    ],
    ['data', '554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException', 'mailbox-full'],
    [
      'message',
      '552 5.3.4 Message size exceeds fixed maximum message size MapiExceptionMaxSubmissionExceeded',
      'message-too-large',
    ],
    ['message', '550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal', 'bare-lf'],
    ['mail', '550 5.7.68 Direct Send not allowed', 'direct-send-disabled'],
  ];

  it.each(rows)('%s: %s → %s', (stage, line, expectedId) => {
    expect(diagnose(replyFailure(stage, line)).id).toBe(expectedId);
  });
});

describe('diagnose: what the queue does', () => {
  it('holds the queue for 535 5.7.139 and offers Set-CASMailbox', () => {
    const diagnosis = diagnose(
      replyFailure(
        'auth',
        '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.',
      ),
    );
    expect(diagnosis.category).toBe('policy');
    expect(diagnosis.action).toBe('hold');
    expect(diagnosis.powershell).toBe(
      'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false',
    );
    expect(diagnosis.fix).toContain('Set-TransportConfig -SmtpClientAuthenticationDisabled $false');
  });

  it('points a security defaults block at OAuth 2.0, without PowerShell', () => {
    const diagnosis = diagnose(
      replyFailure(
        'auth',
        "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy.",
      ),
    );
    expect(diagnosis.action).toBe('hold');
    expect(diagnosis.powershell).toBeNull();
    expect(diagnosis.fix).toContain('OAuth 2.0');
  });

  it('tells how to re-enter the password and register the service principal for 535 5.7.3', () => {
    const diagnosis = diagnose(replyFailure('auth', '535 5.7.3 Authentication unsuccessful'));
    expect(diagnosis).toMatchObject({ category: 'credentials', action: 'hold' });
    expect(diagnosis.fix).toContain('npx relaydesk password set');
    expect(diagnosis.powershell).toContain(
      'New-ServicePrincipal -AppId <appId> -ObjectId <objectId of the Enterprise Application>',
    );
  });

  it('retries 451 4.7.500', () => {
    expect(diagnose(replyFailure('mail', '451 4.7.500 Server busy. Please try again later'))).toMatchObject({
      category: 'throttling',
      action: 'retry',
    });
  });

  it('fails only the recipient for 550 5.1.1 at RCPT', () => {
    expect(diagnose(replyFailure('rcpt', '550 5.1.1 User unknown'))).toMatchObject({
      id: 'recipient-unknown',
      category: 'recipient',
      action: 'fail-recipient',
    });
  });

  it('fails only the message for 554 5.2.252, since other senders still pass', () => {
    const diagnosis = diagnose(
      replyFailure('data', '554 5.2.252 SendAsDenied; a@contoso.com not allowed to send as b@contoso.com'),
    );
    expect(diagnosis).toMatchObject({ category: 'send-as', action: 'fail-message' });
    expect(diagnosis.fix).toContain('"sender": {"mode": "rewrite"}');
  });

  it('keeps the SubmissionQuotaExceeded limit apart from a full mailbox', () => {
    expect(
      diagnose(
        replyFailure('data', '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException'),
      ).id,
    ).toBe('daily-recipient-limit');
    expect(
      diagnose(replyFailure('data', '554 5.2.2 STOREDRV.Submission.Exception:QuotaExceededException')).id,
    ).toBe('mailbox-full');
  });

  it('treats too large messages as final, with the MaxSendSize line', () => {
    const diagnosis = diagnose(replyFailure('mail', '552 Message size exceeds fixed maximum message size'));
    expect(diagnosis).toMatchObject({ category: 'size', action: 'fail-message' });
    expect(diagnosis.powershell).toBe('Set-Mailbox -Identity <mailbox> -MaxSendSize 150MB');
  });

  it('retries 452 4.5.3 too many recipients', () => {
    expect(diagnose(replyFailure('rcpt', '452 4.5.3 Too many recipients')).action).toBe('retry');
  });

  it('decides unknown replies by class and stage', () => {
    expect(diagnose(replyFailure('data', '450 4.2.0 try again')).action).toBe('retry');
    expect(diagnose(replyFailure('mail', '421 4.4.2 Connection dropped due to SocketError')).action).toBe(
      'retry',
    );
    expect(diagnose(replyFailure('data', '421 4.3.2 Service not available')).action).toBe('retry');
    expect(diagnose(replyFailure('rcpt', '553 5.7.1 Sender address rejected')).action).toBe('fail-recipient');
    expect(diagnose(replyFailure('rcpt', '550 Requested action not taken')).action).toBe('fail-recipient');
    expect(diagnose(replyFailure('data', '554 Transaction failed')).action).toBe('fail-message');
    expect(diagnose(replyFailure('mail', '553 5.1.7 The address is not valid')).action).toBe('fail-message');
    expect(diagnose(replyFailure('auth', '538 5.7.11 Encryption required')).action).toBe('hold');
    expect(diagnose(replyFailure('ehlo', '554 5.7.1 Access denied')).action).toBe('hold');
    expect(diagnose(replyFailure('greeting', '554 No SMTP service here')).action).toBe('hold');
    expect(diagnose(replyFailure('data', '250 2.0.0 OK'))).toMatchObject({
      id: 'unexpected',
      action: 'retry',
    });
  });

  it('recognises 5.7.139 variants by text, and the bare code', () => {
    expect(
      diagnose(
        replyFailure('auth', '535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.'),
      ).id,
    ).toBe('smtp-auth-credentials-incorrect');
    expect(diagnose(replyFailure('auth', '535 5.7.139 Authentication unsuccessful')).id).toBe(
      'smtp-auth-policy',
    );
  });
});

describe('diagnose: network, TLS, token, Graph and configuration failures', () => {
  it('retries network failures and says what each means', () => {
    expect(diagnose(network('ECONNREFUSED'))).toMatchObject({ id: 'connection-refused', action: 'retry' });
    expect(diagnose(network('ENOTFOUND'))).toMatchObject({ id: 'dns-failed', action: 'retry' });
    expect(diagnose(network('EAI_AGAIN'))).toMatchObject({ id: 'dns-failed', action: 'retry' });
    expect(diagnose(network('ETIMEDOUT'))).toMatchObject({ id: 'connection-timeout', action: 'retry' });
    expect(diagnose(network('TIMEOUT'))).toMatchObject({ id: 'connection-timeout', action: 'retry' });
    expect(diagnose(network('EPIPE'))).toMatchObject({ id: 'connection-reset', action: 'retry' });
    expect(diagnose(network('EHOSTUNREACH'))).toMatchObject({ id: 'host-unreachable', action: 'retry' });
    expect(diagnose(network('ESOMETHINGNEW'))).toMatchObject({ category: 'network', action: 'retry' });
  });

  it('mentions ISPs blocking port 25 for a refused connection', () => {
    expect(diagnose(network('ECONNREFUSED')).explanation).toContain('port 25');
  });

  it('holds the queue for certificate problems and never suggests turning checks off', () => {
    const diagnosis = diagnose(tls('DEPTH_ZERO_SELF_SIGNED_CERT'));
    expect(diagnosis).toMatchObject({ category: 'tls', action: 'hold', id: 'tls-untrusted-certificate' });
    expect(diagnosis.fix).toContain('upstream.caFile');
    expect(diagnose(tls('ERR_TLS_CERT_ALTNAME_INVALID'))).toMatchObject({
      id: 'tls-wrong-host',
      action: 'hold',
    });
    expect(diagnose(tls('CERT_NOT_YET_VALID'))).toMatchObject({
      id: 'tls-certificate-expired',
      action: 'hold',
    });
  });

  it('recognises old TLS versions by code family', () => {
    expect(diagnose(tls('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')).id).toBe('tls-old-version');
    expect(diagnose(tls('ERR_SSL_SSLV3_ALERT_PROTOCOL_VERSION')).id).toBe('tls-old-version');
    expect(diagnose(tls('STARTTLS_NOT_OFFERED'))).toMatchObject({
      id: 'starttls-not-offered',
      action: 'hold',
    });
  });

  it('holds the queue for token errors by AADSTS number', () => {
    expect(diagnose(token(401, [7000215]))).toMatchObject({
      id: 'token-secret-invalid',
      category: 'credentials',
      action: 'hold',
    });
    expect(diagnose(token(401, [7000222])).id).toBe('token-secret-expired');
    expect(diagnose(token(400, [700016])).id).toBe('token-app-not-found');
    expect(diagnose(token(400, [900023])).id).toBe('token-tenant-not-found');
    expect(diagnose(token(400, [650057])).id).toBe('token-consent-missing');
    expect(diagnose(token(400, [53003])).category).toBe('policy');
    expect(diagnose(token(400, [123456]))).toMatchObject({ category: 'configuration', action: 'hold' });
  });

  it('retries when the token endpoint is busy or down', () => {
    expect(diagnose(token(429, []))).toMatchObject({ category: 'throttling', action: 'retry' });
    expect(diagnose(token(502, []))).toMatchObject({ category: 'network', action: 'retry' });
  });

  it('keeps Graph Retry-After on throttling, and only there', () => {
    expect(diagnose(graph(429, 'TooManyRequests', 42))).toMatchObject({
      category: 'throttling',
      action: 'retry',
      retryAfterSeconds: 42,
    });
    expect(diagnose(graph(503, 'ServiceUnavailable', 7)).retryAfterSeconds).toBe(7);
    expect(diagnose(graph(403, 'ErrorAccessDenied', 10))).toMatchObject({
      action: 'hold',
      retryAfterSeconds: null,
    });
    expect(diagnose(replyFailure('mail', '451 4.7.500 Server busy')).retryAfterSeconds).toBeNull();
  });

  it('diagnoses Graph refusals by code and status', () => {
    expect(diagnose(graph(401, 'InvalidAuthenticationToken'))).toMatchObject({
      category: 'credentials',
      action: 'hold',
    });
    expect(diagnose(graph(403, 'errorsendasdenied'))).toMatchObject({
      category: 'send-as',
      action: 'fail-message',
    });
    expect(diagnose(graph(403, 'Authorization_RequestDenied'))).toMatchObject({
      category: 'policy',
      action: 'hold',
    });
    expect(
      diagnose({
        kind: 'graph',
        status: 403,
        code: 'Forbidden',
        message: 'Access is denied. Check credentials and try again.',
        retryAfterSeconds: null,
      }).id,
    ).toBe('graph-access-denied');
    expect(diagnose(graph(404, 'ErrorMailboxNotEnabledForRESTAPI')).id).toBe('graph-mailbox-not-enabled');
    expect(diagnose(graph(404, 'ResourceNotFound')).id).toBe('graph-mailbox-not-found');
    expect(diagnose(graph(413, 'RequestEntityTooLarge'))).toMatchObject({
      category: 'size',
      action: 'fail-message',
    });
    expect(diagnose(graph(502, 'BadGateway')).action).toBe('retry');
    expect(diagnose(graph(400, 'ErrorInvalidRecipients')).action).toBe('fail-message');
  });

  it('holds the queue when no secret can be read', () => {
    const missing = diagnose({ kind: 'config', code: 'NO_SECRET', message: 'no password stored' });
    expect(missing).toMatchObject({ category: 'configuration', action: 'hold' });
    expect(missing.fix).toContain('npx relaydesk password set');
    expect(missing.fix).toContain('RELAYDESK_CLIENT_SECRET');
    expect(diagnose({ kind: 'config', code: 'KEYCHAIN_UNAVAILABLE', message: 'no keychain' }).id).toBe(
      'keychain-unavailable',
    );
  });
});

describe('diagnose: filling in what the relay knows', () => {
  it('puts the mailbox and app ID into the fix and the PowerShell', () => {
    const diagnosis = diagnose(replyFailure('auth', '535 5.7.3 Authentication unsuccessful'), {
      mailbox: 'john@contoso.com',
      appId: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b',
    });
    expect(diagnosis.powershell).toBe(
      'New-ServicePrincipal -AppId 3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b -ObjectId <objectId of the Enterprise Application>\n' +
        'Add-MailboxPermission -Identity john@contoso.com -User <service principal id> -AccessRights FullAccess',
    );
  });

  it('leaves placeholders it cannot fill', () => {
    const diagnosis = diagnose(
      replyFailure(
        'auth',
        '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.',
      ),
    );
    expect(diagnosis.powershell).toBe(
      'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false',
    );
  });

  it('takes the refused sender from a SendAsDenied reply', () => {
    const diagnosis = diagnose(
      replyFailure(
        'data',
        '554 5.2.252 SendAsDenied; john@contoso.com not allowed to send as HelpDesk@contoso.com; STOREDRV.Submission.Exception',
      ),
      { mailbox: 'john@contoso.com' },
    );
    expect(diagnosis.powershell).toBe(
      'Add-RecipientPermission -Identity HelpDesk@contoso.com -AccessRights SendAs -Trustee john@contoso.com',
    );
    expect(diagnosis.fix).toContain('add HelpDesk@contoso.com as an alias of john@contoso.com');
  });

  it('prefers the sender it is given, and quotes values PowerShell would split', () => {
    const diagnosis = diagnose(
      replyFailure('mail', '550 5.7.60 SMTP; Client does not have permissions to send as this sender'),
      {
        sender: 'FaxService@contoso.com',
        mailbox: "John O'Neil",
      },
    );
    expect(diagnosis.powershell).toBe(
      "Add-RecipientPermission -Identity FaxService@contoso.com -AccessRights SendAs -Trustee 'John O''Neil'",
    );
  });

  it('fills in host and port for network tests', () => {
    expect(diagnose(network('ECONNREFUSED'), { host: 'smtp.office365.com', port: 587 }).powershell).toBe(
      'Test-NetConnection smtp.office365.com -Port 587',
    );
  });
});

describe('docs/troubleshooting.md', () => {
  const docs = readFileSync(new URL('../../docs/troubleshooting.md', import.meta.url), 'utf8');

  it.each(DIAGNOSIS_RULES.map((rule) => [rule.id, rule] as const))('describes row %s', (id, rule) => {
    expect(docs).toContain(`\`${id}\``);
    for (const line of rule.powershell?.split('\n') ?? []) expect(docs).toContain(line);
  });
});
