import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../electron/config/index.ts';
import { defaultBadmailDir } from '../../electron/relay/pickup.ts';
import { checkPickupSize, readPickupMessage } from '../../electron/relay/pickup-message.ts';

const LIMITS = { maxMessageBytes: 10_000, maxRecipients: 3 };

function read(text: string) {
  const bytes = Buffer.from(text, 'latin1');
  return readPickupMessage(bytes, bytes.length, LIMITS);
}

function queuedHeader(text: string): string {
  const reading = read(text);
  if (!reading.ok) throw new Error(reading.problem);
  return reading.envelope.header.toString('latin1');
}

describe('pickup file envelope', () => {
  it('takes MAIL FROM from From and recipients from To, Cc and Bcc, once each, and drops Bcc', () => {
    const reading = read(
      'From: "Scanner" <scan@contoso.com>\nTo: a@contoso.com, "Doe, B" <b@contoso.com>\nCc: A@contoso.com\n' +
        'Bcc: c@contoso.com\nSubject: x\n\nbody\n',
    );
    expect(reading).toMatchObject({
      ok: true,
      envelope: { mailFrom: 'scan@contoso.com', rcptTo: ['a@contoso.com', 'b@contoso.com', 'c@contoso.com'] },
    });
    expect(queuedHeader('From: s@contoso.com\nBcc: c@contoso.com\nTo: a@contoso.com\n\nx')).toBe(
      'From: s@contoso.com\r\nTo: a@contoso.com\r\n\r\n',
    );
  });

  it("honours IIS's X-Sender/X-Receiver only at the top of the file", () => {
    expect(
      read('X-Sender: <>\r\nX-Receiver: <r@contoso.com>\r\nFrom: s@contoso.com\r\nTo: t@contoso.com\r\n\r\n'),
    ).toMatchObject({ ok: true, envelope: { mailFrom: '', rcptTo: ['r@contoso.com'] } });
    // Further down it is an ordinary header (Eudora writes X-Sender), kept and not obeyed.
    const text = 'From: s@contoso.com\r\nX-Sender: other@contoso.com\r\nTo: t@contoso.com\r\n\r\n';
    expect(read(text)).toMatchObject({ ok: true, envelope: { mailFrom: 's@contoso.com' } });
    expect(queuedHeader(text)).toContain('X-Sender: other@contoso.com');
  });

  it('reads a file Notepad saved with a byte order mark', () => {
    const reading = read('\xef\xbb\xbfFrom: s@contoso.com\r\nTo: t@contoso.com\r\n\r\nbody');
    expect(reading).toMatchObject({ ok: true, envelope: { mailFrom: 's@contoso.com', bodyOffset: 45 } });
  });

  it('falls back to Sender when there is no From', () => {
    expect(read('Sender: s@contoso.com\nTo: t@contoso.com\n\n')).toMatchObject({
      ok: true,
      envelope: { mailFrom: 's@contoso.com' },
    });
  });

  it('refuses what cannot be sent, saying what to fix', () => {
    const cases: [string, RegExp][] = [
      ['To: t@contoso.com\n\nx', /no sender/],
      ['From: s@contoso.com\nSubject: x\n\nx', /no recipients/],
      ['From: s@contoso.com\nTo: undisclosed-recipients:;\n\nx', /no recipients/],
      ['From: s@contoso.com\nTo: bob\n\nx', /no recipients/],
      ['From: scanner\nTo: t@contoso.com\n\nx', /sender "scanner" is not a mail address/],
      ['X-Receiver: bob\nFrom: s@contoso.com\n\nx', /recipient "bob" is not a mail address/],
      ['From: s@contoso.com\nTo: a@x.com, b@x.com, c@x.com, d@x.com\n\nx', /4 recipients/],
      ['%PDF-1.7 binary', /not an RFC 5322 message/],
    ];
    for (const [text, problem] of cases) {
      const reading = read(text);
      expect(reading.ok, text).toBe(false);
      if (!reading.ok) {
        expect(reading.problem, text).toMatch(problem);
        expect(reading.fix, text).not.toBe('');
      }
    }
    expect(checkPickupSize(10_001, LIMITS)?.problem).toMatch(/10001 bytes/);
    expect(checkPickupSize(0, LIMITS)?.problem).toMatch(/empty/);
    expect(checkPickupSize(10_000, LIMITS)).toBeNull();
  });
});

/** The problems in the pickup section (an empty config also lacks an upstream). */
function pickupProblems(raw: unknown) {
  const { config, problems } = parseConfig(raw);
  return { config, problems: problems.filter((p) => p.path.startsWith('pickup')) };
}

describe('pickup config', () => {
  it('is off by default, and takes absolute folders only', () => {
    expect(defaultConfig().pickup).toEqual({ dir: null, badmailDir: null, settleSeconds: 2 });
    const { problems } = pickupProblems({ pickup: { dir: 'Pickup', badmailDir: 'mailroot/Badmail' } });
    expect(problems.map((p) => p.path)).toEqual(['pickup.dir', 'pickup.badmailDir']);
    expect(problems[0]!.message).toMatch(/must be an absolute path/);
  });

  it('refuses the pickup folder as its own badmail folder', () => {
    const dir = path.resolve('/mailroot/Pickup');
    const { config, problems } = pickupProblems({ pickup: { dir, badmailDir: dir, settleSeconds: 5 } });
    expect(problems).toEqual([
      { path: 'pickup.badmailDir', message: expect.stringMatching(/picked up again/) },
    ]);
    expect(config.pickup).toEqual({ dir, badmailDir: null, settleSeconds: 5 });
  });

  it("puts Badmail beside the pickup folder, as IIS's mailroot had it", () => {
    expect(defaultBadmailDir(path.resolve('/inetpub/mailroot/Pickup'))).toBe(
      path.resolve('/inetpub/mailroot/Badmail'),
    );
    expect(defaultBadmailDir(path.resolve('/var/spool/relaydesk/pickup'))).toBe(
      path.resolve('/var/spool/relaydesk/badmail'),
    );
  });
});
