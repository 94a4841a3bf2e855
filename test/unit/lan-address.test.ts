import { describe, expect, it } from 'vitest';
import { isQualifiedAddress, parsePathArgument } from '../../electron/relay/lan/address.ts';

function parsed(argument: string, keyword: 'FROM' | 'TO') {
  const result = parsePathArgument(argument, keyword);
  return result.ok
    ? { address: result.value.address, params: Object.fromEntries(result.value.params) }
    : result.reply;
}

describe('parsePathArgument: envelopes the way devices write them', () => {
  it.each([
    ['FROM:<scanner@contoso.com>', 'scanner@contoso.com'],
    ['FROM:scanner@contoso.com', 'scanner@contoso.com'],
    ['FROM: <scanner@contoso.com>', 'scanner@contoso.com'],
    ['from:<scanner@contoso.com>', 'scanner@contoso.com'],
    ['FROM:<>', ''],
    ['FROM:<scanner>', 'scanner'],
    ['FROM:scanner', 'scanner'],
    ['FROM:<user.@dom>', 'user.@dom'],
    ['FROM:<scanner@>', 'scanner@'],
    ['FROM:<@relay.example:scanner@contoso.com>', 'scanner@contoso.com'],
  ])('accepts the sender %s', (argument, address) => {
    expect(parsed(argument, 'FROM')).toEqual({ address, params: {} });
  });

  it('reads ESMTP parameters after a bracketed or a bare address', () => {
    expect(parsed('FROM:<a@b.com> SIZE=1200 BODY=8BITMIME', 'FROM')).toEqual({
      address: 'a@b.com',
      params: { SIZE: '1200', BODY: '8BITMIME' },
    });
    expect(parsed('FROM:a@b.com smtputf8', 'FROM')).toEqual({
      address: 'a@b.com',
      params: { SMTPUTF8: true },
    });
  });

  it.each([
    ['TO:<alice@contoso.com>', 'alice@contoso.com'],
    ['TO:alice@contoso.com', 'alice@contoso.com'],
    ['TO: <alice@contoso.com>', 'alice@contoso.com'],
    ['TO:<Postmaster>', 'Postmaster'],
  ])('accepts the recipient %s', (argument, address) => {
    expect(parsed(argument, 'TO')).toEqual({ address, params: {} });
  });

  it.each([
    ['FROM <a@b.com>', 'FROM', /^501 5\.5\.4 Syntax/],
    ['FROM:<a@b.com', 'FROM', /^501 5\.1\.7 Missing closing/],
    ['FROM:<a\x01b@c.com>', 'FROM', /^501 5\.1\.7 Bad address syntax/],
    [`FROM:<${'a'.repeat(65)}@b.com>`, 'FROM', /^501 5\.1\.7 Local part too long/],
    [`FROM:<a@${'b'.repeat(260)}.com>`, 'FROM', /^501 5\.1\.7 Address too long/],
    ['TO:<>', 'TO', /^501 5\.1\.3 Recipient address required/],
    ['TO:<alice>', 'TO', /^501 5\.1\.3 Recipient address must include a domain/],
    ['TO:<alice@>', 'TO', /^501 5\.1\.3 Bad domain/],
    ['FROM:<a@b.com> SIZE=1 B@D', 'FROM', /^501 5\.5\.4 Invalid parameter/],
  ] as const)('refuses %s', (argument, keyword, reply) => {
    expect(parsed(argument, keyword)).toMatch(reply);
  });
});

describe('isQualifiedAddress: what Microsoft 365 takes as a sender', () => {
  it.each([
    'scanner@contoso.com',
    'first.last@mail.contoso.co.uk',
    '"odd name"@contoso.com',
    'x+tag@a-b.example',
  ])('takes %s', (address) => {
    expect(isQualifiedAddress(address)).toBe(true);
  });

  it.each([
    '',
    'scanner',
    'scanner@',
    '@contoso.com',
    'user.@contoso.com',
    'a..b@contoso.com',
    'fax@printer',
    'x@-bad.com',
    'x@[10.0.0.5]',
  ])('maps %s to a real sender', (address) => {
    expect(isQualifiedAddress(address)).toBe(false);
  });
});
