import { describe, expect, it } from 'vitest';
import { redactFailure, redactSecrets, registerSecret } from '../../electron/relay/redact.ts';
import { describeFailure, UpstreamError } from '../../electron/relay/upstream-failure.ts';

const SECRET = 'Rd8Q~p"a\\ss wörd+/=';
registerSecret(SECRET);

const base64 = (text: string) => Buffer.from(text).toString('base64');

describe('redactSecrets', () => {
  it('cuts the raw, URL-encoded and JSON-escaped forms', () => {
    const forms = [
      SECRET,
      new URLSearchParams({ s: SECRET }).toString().slice(2),
      encodeURIComponent(SECRET),
      JSON.stringify(SECRET).slice(1, -1),
      JSON.stringify(SECRET).slice(1, -1).replace(/ö/g, '\\u00f6'),
    ];
    for (const form of forms) {
      expect(redactSecrets(`before ${form} after`)).toBe('before [secret] after');
    }
    const lowerHex = encodeURIComponent(SECRET).replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase());
    expect(redactSecrets(`x=${lowerHex}&y=1`)).toBe('x=[secret]&y=1');
  });

  it('cuts the base64 of the secret and of any text that holds it, at every byte offset', () => {
    expect(redactSecrets(`key ${base64(SECRET)} end`)).toBe('key [secret] end');
    for (const prefix of ['', 'a', 'ab', 'abc', 'client_secret=']) {
      expect(redactSecrets(`AUTH PLAIN ${base64(`${prefix}\0john@contoso.com\0${SECRET}`)}`)).toBe(
        'AUTH PLAIN [secret]',
      );
      const urlSafe = base64(`${prefix}${SECRET}!`).replace(/\+/g, '-').replace(/\//g, '_');
      expect(redactSecrets(`t=${urlSafe}.`)).toBe('t=[secret].');
    }
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_secret: SECRET }).toString();
    expect(redactSecrets(`echo: ${base64(body)}`)).toBe('echo: [secret]');
  });

  it('cuts the XOAUTH2 string of a registered access token', () => {
    const token = 'eyJ0eXAiOiJKV1QiLCJhbGciOi.access-token-xyz';
    registerSecret(token);
    const xoauth2 = base64(`user=john@contoso.com\x01auth=Bearer ${token}\x01\x01`);
    expect(redactSecrets(`535 5.7.3 ${xoauth2} rejected`)).toBe('535 5.7.3 [secret] rejected');
  });

  it('leaves other text alone, and ignores secrets too short to tell from ordinary words', () => {
    const text = 'token endpoint: HTTP 401 invalid_client AADSTS7000215: Invalid client secret provided.';
    expect(redactSecrets(text)).toBe(text);
    registerSecret('abc');
    expect(redactSecrets('abc abcdef')).toBe('abc abcdef');
  });
});

describe('where upstream failures are made', () => {
  it('an UpstreamError carries no form of a secret, in its failure or its message', () => {
    const echoed = new URLSearchParams({ client_secret: SECRET }).toString();
    const error = new UpstreamError({
      kind: 'token',
      status: 400,
      error: `bad ${echoed}`,
      aadsts: [900144],
      description: `Malformed request: ${echoed} (base64 ${base64(echoed)})`,
    });
    expect(error.message).toBe(
      'token endpoint: HTTP 400 bad client_secret=[secret] AADSTS900144: Malformed request: client_secret=[secret] (base64 [secret])',
    );
    expect(describeFailure(error.failure)).toBe(error.message);
    const reply = redactFailure({
      kind: 'reply',
      stage: 'auth',
      reply: { code: 535, enhanced: '5.7.8', text: `bad ${SECRET}`, raw: `535 5.7.8 bad ${SECRET}` },
    });
    expect(reply).toMatchObject({ reply: { text: 'bad [secret]', raw: '535 5.7.8 bad [secret]' } });
  });
});
