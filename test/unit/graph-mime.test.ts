import { describe, expect, it } from 'vitest';
import {
  isBodyText,
  leaves,
  parseMime,
  parseParameterized,
  toAttachment,
  toCrlf,
  withoutParts,
} from '../../electron/relay/graph/mime.ts';
import { fitRecipientsToEnvelope, parseAddressList } from '../../electron/relay/graph/recipients.ts';

function crlf(lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

function headerOf(message: Buffer): string {
  const text = message.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n'));
}

describe('parseAddressList', () => {
  it('reads display names with commas, comments, groups and bare addresses', () => {
    const list = parseAddressList(
      '"Doe, John" <john@contoso.com>, jane@contoso.com (Jane), Team: a@contoso.com, b@contoso.com;, undisclosed-recipients:;',
    );
    expect(list.map((m) => m.address)).toEqual([
      'john@contoso.com',
      'jane@contoso.com',
      'a@contoso.com',
      'b@contoso.com',
    ]);
    expect(list[0]!.raw).toBe('"Doe, John" <john@contoso.com>');
  });
});

describe('fitRecipientsToEnvelope', () => {
  const message = crlf([
    'From: scanner@contoso.com',
    'To: "Doe, John" <john@contoso.com>',
    'Cc: jane@contoso.com',
    'Subject: Scan',
    '',
    'body',
  ]);

  it('leaves a message whose header names exactly the envelope untouched', () => {
    const fit = fitRecipientsToEnvelope(message, ['JOHN@contoso.com', 'jane@contoso.com']);
    expect(fit.message).toBe(message);
    expect(fit.bcc).toEqual([]);
    expect(fit.omitted).toEqual([]);
  });

  it('adds envelope recipients that are not in To or Cc as one Bcc, and keeps the body', () => {
    const fit = fitRecipientsToEnvelope(message, [
      'john@contoso.com',
      'jane@contoso.com',
      'audit@contoso.com',
      'Audit@contoso.com',
    ]);
    expect(fit.bcc).toEqual(['audit@contoso.com']);
    expect(headerOf(fit.message)).toContain('To: "Doe, John" <john@contoso.com>\r\nCc: jane@contoso.com');
    expect(headerOf(fit.message)).toMatch(/\r\nBcc: audit@contoso\.com$/);
    expect(fit.message.toString('latin1').endsWith('\r\n\r\nbody')).toBe(true);
  });

  it('takes header recipients that are not in the envelope out, so Graph cannot send to them', () => {
    const fit = fitRecipientsToEnvelope(message, ['jane@contoso.com']);
    expect(fit.omitted).toEqual(['john@contoso.com']);
    expect(headerOf(fit.message)).not.toContain('john@contoso.com');
    expect(headerOf(fit.message)).not.toMatch(/^To:/m);
    expect(headerOf(fit.message)).toContain('Cc: jane@contoso.com');
  });

  it("replaces a device's own Bcc header with the envelope's hidden recipients", () => {
    const withBcc = crlf(['From: a@contoso.com', 'To: b@contoso.com', 'Bcc: leak@contoso.com', '', 'x']);
    const fit = fitRecipientsToEnvelope(withBcc, ['b@contoso.com', 'hidden@contoso.com']);
    expect(fit.omitted).toEqual(['leak@contoso.com']);
    expect(headerOf(fit.message)).not.toContain('leak@');
    expect(headerOf(fit.message)).toContain('Bcc: hidden@contoso.com');
  });

  it('folds a long Bcc between addresses', () => {
    const many = Array.from({ length: 12 }, (_, i) => `recipient${i}@contoso.com`);
    const fit = fitRecipientsToEnvelope(crlf(['From: a@contoso.com', '', 'x']), many);
    const bcc = headerOf(fit.message).slice(headerOf(fit.message).indexOf('Bcc:'));
    for (const line of bcc.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
    expect(parseAddressList(bcc.slice(4).replace(/\r\n/g, '')).map((m) => m.address)).toEqual(many);
  });
});

describe('toCrlf', () => {
  it('turns bare LF and bare CR into CRLF and keeps CRLF', () => {
    expect(toCrlf(Buffer.from('\r\na\nb\rc\r\nd')).toString()).toBe('\r\na\r\nb\r\nc\r\nd');
    const clean = Buffer.from('a\r\nb');
    expect(toCrlf(clean)).toBe(clean);
  });

  it('reads `\\r\\r\\n` (busybox sendmail) as one line end, in the header and in the body', () => {
    const busybox = Buffer.from(
      'From: a@contoso.com\r\r\nTo: b@contoso.com\r\r\n\r\r\nline 1\r\r\nline 2\r\r\n',
    );
    expect(toCrlf(busybox).toString()).toBe(
      'From: a@contoso.com\r\nTo: b@contoso.com\r\n\r\nline 1\r\nline 2\r\n',
    );
  });

  it('makes a bare CR inside a header line a space, so Graph sees no Bcc or From the relay did not', () => {
    const message = crlf([
      'From: scanner@contoso.com',
      'To: b@contoso.com',
      'Subject: x\rFrom: ceo@contoso.com\rBcc: mallory@evil.test',
      '',
      'body\rmore',
    ]);
    const fixed = toCrlf(message);
    expect(fixed.toString('latin1')).toBe(
      'From: scanner@contoso.com\r\nTo: b@contoso.com\r\n' +
        'Subject: x From: ceo@contoso.com Bcc: mallory@evil.test\r\n\r\nbody\r\nmore',
    );
    const fit = fitRecipientsToEnvelope(fixed, ['b@contoso.com']);
    expect(fit.omitted).toEqual([]);
    expect(fit.bcc).toEqual([]);
    expect(headerOf(fit.message)).not.toMatch(/^(Bcc|From: ceo)/im);
  });
});

describe('parseParameterized', () => {
  it('decodes RFC 2231 continuations and RFC 2047 words', () => {
    const continued = parseParameterized(
      "attachment; filename*0*=utf-8''Scan%20f%C3%BCr; filename*1*=%20M%C3%BCller.pdf",
    );
    expect(continued.value).toBe('attachment');
    expect(continued.params.get('filename')).toBe('Scan für Müller.pdf');
    const words = parseParameterized('application/pdf; name="=?UTF-8?B?w5xiZXJzaWNodC5wZGY=?="');
    expect(words.params.get('name')).toBe('Übersicht.pdf');
  });
});

describe('MIME parts', () => {
  const pdf = Buffer.from('%PDF-1.4 fake pdf bytes \x00\x01\x02', 'latin1');
  const message = crlf([
    'From: scanner@contoso.com',
    'To: john@contoso.com',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    'preamble',
    '--outer',
    'Content-Type: multipart/alternative; boundary=inner',
    '',
    '--inner',
    'Content-Type: text/plain',
    '',
    'Hello',
    '--inner',
    'Content-Type: text/html',
    '',
    '<p>Hello</p>',
    '--inner--',
    '--outer',
    'Content-Type: application/pdf; name="scan.pdf"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="scan.pdf"',
    '',
    pdf.toString('base64'),
    '--outer',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    'Content-Disposition: attachment; filename="notes.txt"',
    '',
    'caf=C3=A9 =',
    'au lait',
    '--outer--',
    '',
  ]);

  it('finds the leaves, tells body text from attachments, and decodes their content', () => {
    const root = parseMime(message);
    const parts = leaves(root);
    expect(parts.map((p) => p.contentType)).toEqual([
      'text/plain',
      'text/html',
      'application/pdf',
      'text/plain',
    ]);
    expect(parts.map(isBodyText)).toEqual([true, true, false, false]);
    const scan = toAttachment(message, parts[2]!, 3);
    expect(scan).toMatchObject({ name: 'scan.pdf', contentType: 'application/pdf', isInline: false });
    expect(scan.content.equals(pdf)).toBe(true);
    expect(toAttachment(message, parts[3]!, 4).content.toString('utf8')).toBe('café au lait');
  });

  it('cuts parts out and leaves every other byte as it was', () => {
    const root = parseMime(message);
    const parts = leaves(root);
    const stripped = withoutParts(message, root, new Set([parts[2]!, parts[3]!]));
    const text = stripped.toString('latin1');
    expect(text).not.toContain('scan.pdf');
    expect(text).not.toContain('notes.txt');
    const expected = message.toString('latin1');
    expect(text).toBe(
      expected.slice(0, expected.indexOf('--outer\r\nContent-Type: application/pdf')) + '--outer--\r\n',
    );
    const reparsed = leaves(parseMime(stripped));
    expect(reparsed.map((p) => p.contentType)).toEqual(['text/plain', 'text/html']);
  });

  it('keeps a multipart valid when its only part is cut out, and empties a message that is one attachment', () => {
    const single = crlf([
      'From: fax@contoso.com',
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Type: application/pdf',
      '',
      'PDF',
      '--b--',
    ]);
    const root = parseMime(single);
    const stripped = withoutParts(single, root, new Set(leaves(root)));
    expect(leaves(parseMime(stripped)).map((p) => p.contentType)).toEqual(['text/plain']);

    const bare = crlf(['From: fax@contoso.com', 'Content-Type: application/pdf', 'Subject: Fax', '', 'PDF']);
    const bareRoot = parseMime(bare);
    expect(withoutParts(bare, bareRoot, new Set([bareRoot])).toString('latin1')).toBe(
      'From: fax@contoso.com\r\nSubject: Fax\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n',
    );
  });
});
