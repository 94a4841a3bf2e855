/**
 * A token endpoint that echoes the request body (issue 13): the client secret comes back URL-encoded
 * and in base64 inside the error text. It must appear in no form in what RelayDesk writes or shows:
 * the log file, stdout, status.json, the spool's state files, and `relaydesk check`'s output.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testCa } from '../fixtures/tls.ts';
import { startTokenEndpoint } from '../fixtures/token-endpoint.ts';
import { createTeardown, eventually, freePort, sendMail, startRelay, testConfig } from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const SMTP_SCOPE = 'https://outlook.office365.com/.default';

/** Every way the secret can be written down that the issue names, each as a string to look for. */
function formsOf(secret: string, requestBody: string): Record<string, string> {
  const base64 = (text: string) => Buffer.from(text).toString('base64');
  return {
    raw: secret,
    'URL-encoded (form)': new URLSearchParams({ s: secret }).toString().slice(2),
    'URL-encoded (URI)': encodeURIComponent(secret),
    'JSON-escaped': JSON.stringify(secret).slice(1, -1),
    base64: base64(secret).replace(/=+$/, ''),
    'base64 of the request body': base64(requestBody).slice(0, 40),
    'AUTH PLAIN base64': base64(`\0scanner@contoso.com\0${secret}`).slice(8, 40),
  };
}

function leaks(text: string, forms: Record<string, string>): string[] {
  return Object.entries(forms)
    .filter(([, form]) => text.includes(form))
    .map(([name]) => name);
}

describe('secret redaction', () => {
  it('keeps an echoed client secret out of the log, stdout, status.json, state files and check output', async () => {
    const endpoint = teardown.closing(await startTokenEndpoint({ echoRequestBody: true }));
    const secret = endpoint.clientSecret;
    // The secret has a character (~) that a form body percent-encodes: the raw form is not enough.
    expect(new URLSearchParams({ s: secret }).toString()).toContain('%7E');
    const requestBody = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: endpoint.clientId,
      client_secret: secret,
      scope: SMTP_SCOPE,
    }).toString();
    const forms = formsOf(secret, requestBody);

    const port = await freePort();
    const relay = teardown.relay(
      await startRelay({
        config: testConfig(port, await freePort(), testCa.file, {
          upstream: {
            auth: 'oauth2',
            oauth2: { tenant: endpoint.tenant, clientId: endpoint.clientId, tokenUrl: endpoint.url() },
          },
          queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 },
        }),
        env: { RELAYDESK_CLIENT_SECRET: secret },
      }),
    );
    const sent = await sendMail(relay.port, {
      from: 'scanner@contoso.com',
      to: ['john@contoso.com'],
      data: 'Subject: scan\r\n\r\nhello\r\n',
    });
    expect(sent.final).toMatch(/^250 /);

    // Delivery state: records in the spool's segments (state files for messages with a file of their own).
    const segmentsDir = join(relay.dataDir, 'spool', 'segments');
    const stateText = await eventually(async () => {
      const names = (await readdir(segmentsDir)).filter((name) => name.endsWith('.seg'));
      const texts = await Promise.all(names.map((name) => readFile(join(segmentsDir, name), 'latin1')));
      const text = texts.join('\n').replace(/\0+/g, '\n');
      return text.includes('Malformed request') ? text : '';
    });
    const statusText = await eventually(async () => {
      const text = await readFile(join(relay.dataDir, 'status.json'), 'utf8').catch(() => '');
      return text.includes('Malformed request') ? text : '';
    });
    const check = await relay.cli(['check', '--config', relay.configPath], {
      RELAYDESK_CLIENT_SECRET: secret,
    });
    const checkJson = await relay.cli(['check', '--json', '--config', relay.configPath], {
      RELAYDESK_CLIENT_SECRET: secret,
    });
    await relay.stop();
    const logFile = await readFile(join(relay.dataDir, 'logs', 'relaydesk.log'), 'utf8');
    const stdout = relay.logs.map((record) => JSON.stringify(record)).join('\n');

    // The echo reached every place, so each is a real test of the redaction.
    for (const text of [stateText, statusText, logFile, stdout, check.stdout, checkJson.stdout]) {
      expect(text).toContain('Malformed request');
    }
    expect({
      'state files': leaks(stateText, forms),
      'status.json': leaks(statusText, forms),
      'log file': leaks(logFile, forms),
      stdout: leaks(stdout, forms),
      'relaydesk check': leaks(check.stdout + check.stderr, forms),
      'relaydesk check --json': leaks(checkJson.stdout, forms),
    }).toEqual({
      'state files': [],
      'status.json': [],
      'log file': [],
      stdout: [],
      'relaydesk check': [],
      'relaydesk check --json': [],
    });
    for (const text of [stateText, statusText, logFile, stdout, check.stdout, checkJson.stdout]) {
      expect(text).toContain('[secret]');
    }
  }, 60_000);
});
