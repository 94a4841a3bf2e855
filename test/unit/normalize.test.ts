import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { SenderConfig } from '../../electron/config/types.ts';
import { toCrlf } from '../../electron/relay/graph/mime.ts';
import { fitRecipientsToEnvelope } from '../../electron/relay/graph/recipients.ts';
import { parseHeaderBlock, type HeaderField } from '../../electron/relay/message/headers.ts';
import { CarriageReturnRuns } from '../../electron/relay/message/line-ends.ts';
import { createPreparer } from '../../electron/relay/message/prepare.ts';
import { createSpool, type Spool } from '../../electron/relay/spool.ts';
import type { OutboundJob } from '../../electron/relay/transport.ts';
import {
  createBodyNormalizer,
  encodeHeaderField,
  foldHeaderField,
  normalizeHeaderBlock,
  normalizeMessage,
  scanBody,
} from '../../electron/relay/message/normalize.ts';

const DataStream = createRequire(import.meta.url)(
  'nodemailer/lib/smtp-connection/data-stream',
) as new () => Transform;

/** Header and body text travel as binary strings: one character per byte. */
const utf8 = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
/** Latin-1 text written as windows-1252 bytes (the two agree outside 0x80-0x9F). */
const cp1252 = (text: string) => Buffer.from(text, 'latin1').toString('latin1');

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** An RFC 2047 decoder written apart from the encoder: every encoded-word must decode on its own. */
function decodeWord(charset: string, encoding: string, text: string): string {
  expect(charset.toUpperCase()).toBe('UTF-8');
  const bytes =
    encoding.toUpperCase() === 'B'
      ? Buffer.from(text, 'base64')
      : Buffer.from(
          text
            .replace(/_/g, ' ')
            .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
          'latin1',
        );
  return strictUtf8.decode(bytes);
}

function decodeHeader(field: string): string {
  const unfolded = field.replace(/\r\n(?=[ \t])/g, '');
  let out = '';
  let last = 0;
  let previousEncoded = false;
  for (const match of unfolded.matchAll(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g)) {
    const between = unfolded.slice(last, match.index);
    // RFC 2047 §6.2: white space between two encoded-words is not shown.
    if (!(previousEncoded && /^[ \t]*$/.test(between))) out += between;
    out += decodeWord(match[1]!, match[2]!, match[3]!);
    previousEncoded = true;
    last = match.index + match[0].length;
  }
  return out + unfolded.slice(last);
}

function expectWellFormedField(field: string): void {
  for (const line of field.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
  for (const word of field.match(/=\?[^?]+\?[BbQq]\?[^?]*\?=/g) ?? []) {
    expect(word.length).toBeLessThanOrEqual(75);
  }
  expect(field).not.toMatch(/[\x80-\xff]/);
}

describe('encodeHeaderField', () => {
  const cases: { name: string; raw: string; smtpUtf8?: boolean; expected: string; shows: string }[] = [
    {
      name: 'windows-1252 subject',
      raw: cp1252('Subject: Grüße aus Köln'),
      expected: 'Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus =?UTF-8?B?S8O2bG4=?=',
      shows: 'Subject: Grüße aus Köln',
    },
    {
      name: 'UTF-8 subject',
      raw: utf8('Subject: Grüße aus Köln'),
      expected: 'Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus =?UTF-8?B?S8O2bG4=?=',
      shows: 'Subject: Grüße aus Köln',
    },
    {
      name: 'windows-1252 euro sign and smart quotes (0x80-0x9F)',
      raw: 'Subject: \x93Rechnung\x94 \x80 100',
      expected: 'Subject: =?UTF-8?B?4oCcUmVjaG51bmfigJ0g4oKs?= 100',
      shows: 'Subject: “Rechnung” € 100',
    },
    {
      name: 'From display name with umlauts keeps the address',
      raw: cp1252('From: Jürgen Müller <juergen@example.com>'),
      expected: 'From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.com>',
      shows: 'From: Jürgen Müller <juergen@example.com>',
    },
    {
      name: 'quoted display name with a comma',
      raw: utf8('To: "Müller, Hans" <hans@example.de>, info@example.de'),
      expected: 'To: =?UTF-8?Q?M=C3=BCller=2C_Hans?= <hans@example.de>, info@example.de',
      shows: 'To: Müller, Hans <hans@example.de>, info@example.de',
    },
    {
      name: '8-bit inside <...> is never encoded',
      raw: utf8('Cc: Jörg <jörg@example.de>'),
      expected: `Cc: =?UTF-8?B?SsO2cmc=?= <${utf8('jörg')}@example.de>`,
      shows: `Cc: Jörg <${utf8('jörg')}@example.de>`,
    },
    {
      name: 'an address alone is left as it is, folding included',
      raw: utf8('To: <jörg@example.de>,\r\n info@example.de'),
      expected: utf8('To: <jörg@example.de>,\r\n info@example.de'),
      shows: utf8('To: <jörg@example.de>, info@example.de'),
    },
    {
      name: 'comment after a bare address',
      raw: cp1252('From: scanner@example.com (Büro Scanner)'),
      expected: 'From: scanner@example.com (=?UTF-8?B?QsO8cm8=?= Scanner)',
      shows: 'From: scanner@example.com (Büro Scanner)',
    },
    {
      name: 'group name',
      raw: cp1252('To: Büro: a@example.com, b@example.com;'),
      expected: 'To: =?UTF-8?B?QsO8cm8=?= : a@example.com, b@example.com;',
      shows: 'To: Büro : a@example.com, b@example.com;',
    },
    {
      name: "next to the device's own encoded-word the space survives",
      raw: utf8('Subject: =?UTF-8?Q?Hallo?= Müller'),
      expected: 'Subject: =?UTF-8?Q?Hallo?= =?UTF-8?Q?_M=C3=BCller?=',
      shows: 'Subject: Hallo Müller',
    },
    {
      name: 'X- header is unstructured',
      raw: cp1252('X-Device-Location: 2. Stock, Büro'),
      expected: 'X-Device-Location: 2. Stock, =?UTF-8?B?QsO8cm8=?=',
      shows: 'X-Device-Location: 2. Stock, Büro',
    },
    {
      name: 'SMTPUTF8 upstream: UTF-8 stays as it is',
      raw: utf8('Subject: Grüße aus Köln'),
      smtpUtf8: true,
      expected: utf8('Subject: Grüße aus Köln'),
      shows: utf8('Subject: Grüße aus Köln'),
    },
    {
      name: 'SMTPUTF8 upstream: windows-1252 becomes UTF-8',
      raw: 'Subject: Preis \x80 5, Gr\xfc\xdfe',
      smtpUtf8: true,
      expected: utf8('Subject: Preis € 5, Grüße'),
      shows: utf8('Subject: Preis € 5, Grüße'),
    },
    {
      name: 'ASCII is left alone, folding included',
      raw: 'Subject: Scan\r\n from MFP',
      expected: 'Subject: Scan\r\n from MFP',
      shows: 'Subject: Scan from MFP',
    },
    {
      name: 'structured field other than addresses is left alone',
      raw: cp1252('Content-Type: application/pdf; name="Büro.pdf"'),
      expected: cp1252('Content-Type: application/pdf; name="Büro.pdf"'),
      shows: cp1252('Content-Type: application/pdf; name="Büro.pdf"'),
    },
  ];

  it.each(cases)('$name', ({ raw, smtpUtf8, expected, shows }) => {
    const encoded = encodeHeaderField(raw, { smtpUtf8: smtpUtf8 ?? false });
    expect(encoded).toBe(expected);
    expect(decodeHeader(encoded)).toBe(shows);
  });

  it('splits long text into encoded-words of at most 75 characters without cutting a character', () => {
    const text = `${'ä'.repeat(60)} Überweisung 😀😀😀😀😀 ${'€'.repeat(40)} Ende`;
    for (const raw of [utf8(`Subject: ${text}`), utf8(`From: ${text} <device@example.com>`)]) {
      const encoded = encodeHeaderField(raw, { smtpUtf8: false });
      expectWellFormedField(encoded);
      expect(encoded.split('\r\n').length).toBeGreaterThan(3);
      expect(decodeHeader(encoded)).toBe(Buffer.from(raw, 'latin1').toString('utf8'));
    }
  });

  it('keeps a Q encoded-word of a 4-byte character within the first line', () => {
    const encoded = encodeHeaderField(utf8(`X-A-Rather-Long-Header-Name-For-Devices: ${'😀'.repeat(20)}`), {
      smtpUtf8: false,
    });
    expectWellFormedField(encoded);
    expect(decodeHeader(encoded)).toBe(`X-A-Rather-Long-Header-Name-For-Devices: ${'😀'.repeat(20)}`);
  });
});

describe('foldHeaderField', () => {
  const unfold = (field: string) => field.replace(/\r\n(?=[ \t])/g, '');

  it('leaves lines up to 998 characters as they are', () => {
    const raw = `Subject: ${'a'.repeat(989)}`;
    expect(raw.length).toBe(998);
    expect(foldHeaderField(raw)).toBe(raw);
  });

  it.each([
    ['Subject', (i: number) => `word${i}`],
    ['References', (i: number) => `<id${i}.scan@device.example>`],
    ['To', (i: number) => `user${i}@example.com,`],
  ])('folds a 2000-character %s at white space, unfolding to the original', (name, word) => {
    const words: string[] = [];
    while (words.join(' ').length < 2000) words.push(word(words.length));
    const raw = `${name}: ${words.join(' ')}`;
    const folded = foldHeaderField(raw);
    const lines = folded.split('\r\n');
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(78);
    expect(unfold(folded)).toBe(raw);
  });

  it('keeps the lines that were within the limit', () => {
    const raw = `Subject: first line\r\n ${'b '.repeat(600)}end`;
    const folded = foldHeaderField(raw);
    expect(folded.startsWith('Subject: first line\r\n b b')).toBe(true);
    expect(unfold(folded)).toBe(unfold(raw));
  });

  it('gives an unstructured field without white space encoded-words to fold between', () => {
    const value = `${'x'.repeat(1500)}=?_${'y'.repeat(500)}`;
    const folded = foldHeaderField(`Subject: Scan ${value}`);
    expectWellFormedField(folded);
    expect(decodeHeader(folded)).toBe(`Subject: Scan ${value}`);
  });

  it('leaves a structured field without white space as it is', () => {
    const raw = `Message-ID: <${'x'.repeat(2000)}@device.example>`;
    expect(foldHeaderField(raw)).toBe(raw);
  });
});

/** Decodes quoted-printable, checking RFC 2045 §6.7 line lengths on the way. */
function decodeQuotedPrintable(encoded: string): Buffer {
  const lines = encoded.split('\r\n');
  let text = '';
  lines.forEach((line, index) => {
    expect(line.length).toBeLessThanOrEqual(76);
    expect(line).not.toMatch(/[ \t]$/);
    const soft = line.endsWith('=');
    text += soft ? line.slice(0, -1) : line;
    if (!soft && index < lines.length - 1) text += '\r\n';
  });
  return Buffer.from(
    text.replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'latin1',
  );
}

function field(raw: string): HeaderField {
  return { name: raw.slice(0, raw.indexOf(':')), raw };
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Runs scan and transform over `body` cut into the given chunks. */
async function normalizeChunks(fields: HeaderField[], chunks: Buffer[]) {
  const scan = await scanBody(fields, Readable.from(chunks));
  const block = normalizeHeaderBlock(fields, { smtpUtf8: false, body: scan });
  const body = block.bodyTransform
    ? await collect(Readable.from(chunks).pipe(block.bodyTransform()))
    : Buffer.concat(chunks);
  return { scan, block, body };
}

function cut(body: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
  return chunks;
}

function part(body: string, marker: string): string {
  const start = body.indexOf(marker);
  const headerEnd = body.indexOf('\r\n\r\n', start) + 4;
  return body.slice(headerEnd, body.indexOf('\r\n--', headerEnd));
}

const MULTIPART_FIELDS = [
  field('From: scanner@example.com'),
  field('MIME-Version: 1.0'),
  field('Content-Type: multipart/mixed;\r\n boundary="----=_Part_7"'),
];
const LONG_TEXT = `${'Seite 1 von 3 '.repeat(400)}Ende `;
const PDF = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
const MULTIPART_BODY = Buffer.from(
  [
    'This is a multi-part message in MIME format.',
    '------=_Part_7',
    'Content-Type: text/plain; charset=ISO-8859-1',
    'Content-Transfer-Encoding: 8bit',
    '',
    cp1252(`Gescannt am Empfang, Büro 2. ${LONG_TEXT}`),
    'Zweite Zeile = kurz.',
    '------=_Part_7',
    'Content-Type: application/pdf; name="scan.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    ...PDF.toString('base64').match(/.{1,76}/g)!,
    '------=_Part_7--',
    '',
  ].join('\r\n'),
  'latin1',
);

describe('body normalization', () => {
  it('re-encodes a 5000-octet line of a plain body as quoted-printable that decodes to the original', async () => {
    const line = Array.from({ length: 5000 }, (_, i) => String.fromCharCode(32 + (i % 95))).join('');
    const body = Buffer.from(`${line}\r\nsecond line \r\n`, 'latin1');
    const { block, body: out } = await normalizeChunks([field('Subject: scan')], [body]);
    expect(block.fields).toEqual([
      'Subject: scan',
      'Content-Transfer-Encoding: quoted-printable',
      'MIME-Version: 1.0',
    ]);
    expect(block.changed).toEqual(['body: lines over 998 octets, re-encoded as quoted-printable']);
    expect(decodeQuotedPrintable(out.toString('latin1'))).toEqual(body);
  });

  it('writes quoted-printable byte for byte: 75-character lines, =3D, trailing space as =20', async () => {
    const body = Buffer.from(`${'a'.repeat(1000)} \r\nb=c\r\n`, 'latin1');
    const { body: out } = await normalizeChunks([field('Content-Type: text/plain')], [body]);
    expect(out.toString('latin1')).toBe(
      `${`${'a'.repeat(75)}=\r\n`.repeat(13)}${'a'.repeat(25)}=20\r\nb=3Dc\r\n`,
    );
  });

  it('treats bare LF as a line end and writes CRLF', async () => {
    const crlf = Buffer.from(`${'z'.repeat(1200)}\r\nok\r\n`, 'latin1');
    const lf = Buffer.from(`${'z'.repeat(1200)}\nok\n`, 'latin1');
    const fields = [field('Subject: x')];
    expect((await normalizeChunks(fields, [lf])).body).toEqual((await normalizeChunks(fields, [crlf])).body);
  });

  it('names the charset of a body the device sent without Content-Type', async () => {
    const windows = Buffer.from(`${'\xe4'.repeat(1200)}\r\n`, 'latin1');
    const unicode = Buffer.from(`${'ä'.repeat(1200)}\r\n`, 'utf8');
    const ascii = Buffer.from(`${'a'.repeat(1200)}\r\n`, 'latin1');
    const fields = [field('Subject: x')];
    expect((await normalizeChunks(fields, [windows])).block.fields).toContain(
      'Content-Type: text/plain; charset=windows-1252',
    );
    expect((await normalizeChunks(fields, [unicode])).block.fields).toContain(
      'Content-Type: text/plain; charset=utf-8',
    );
    expect((await normalizeChunks(fields, [ascii])).block.fields).toEqual([
      'Subject: x',
      'Content-Transfer-Encoding: quoted-printable',
      'MIME-Version: 1.0',
    ]);
  });

  it('replaces an 8bit Content-Transfer-Encoding rather than adding a second one', async () => {
    const fields = [
      field('MIME-Version: 1.0'),
      field('Content-Transfer-Encoding: 8bit'),
      field('Content-Type: text/plain; charset=utf-8'),
    ];
    const { block } = await normalizeChunks(fields, [Buffer.from('q'.repeat(999))]);
    expect(block.fields).toEqual([
      'MIME-Version: 1.0',
      'Content-Transfer-Encoding: quoted-printable',
      'Content-Type: text/plain; charset=utf-8',
    ]);
  });

  it('re-encodes only the long-line part of a multipart message', async () => {
    const { scan, block, body } = await normalizeChunks(MULTIPART_FIELDS, [MULTIPART_BODY]);
    expect([...scan.reencode]).toEqual([1]);
    expect(block.fields).toEqual(MULTIPART_FIELDS.map((f) => f.raw));
    const text = body.toString('latin1');
    const original = MULTIPART_BODY.toString('latin1');
    expect(text).toContain(
      '------=_Part_7\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGescannt am Empfang, B=FCro 2. Seite',
    );
    expect(decodeQuotedPrintable(part(text, 'charset=ISO')).toString('latin1')).toBe(
      part(original, 'charset=ISO'),
    );
    // Everything from the PDF part on is byte for byte what the device sent.
    const pdfStart = original.indexOf('------=_Part_7\r\nContent-Type: application/pdf');
    expect(text.slice(text.indexOf('------=_Part_7\r\nContent-Type: application/pdf'))).toBe(
      original.slice(pdfStart),
    );
    expect(text.startsWith('This is a multi-part message in MIME format.\r\n------=_Part_7\r\n')).toBe(true);
  });

  it('finds long lines in nested multiparts and in a forwarded message', async () => {
    const fields = [field('Content-Type: multipart/mixed; boundary=outer')];
    const html = `<p>${'x'.repeat(1500)}</p>`;
    const body = Buffer.from(
      [
        '--outer',
        'Content-Type: multipart/alternative; boundary="inner"',
        '',
        '--inner',
        'Content-Type: text/plain',
        '',
        'short',
        '--inner',
        'Content-Type: text/html',
        '',
        html,
        '--inner--',
        '--outer',
        'Content-Type: message/rfc822',
        '',
        'Subject: forwarded',
        '',
        'y'.repeat(1100),
        '--outer--',
        '',
      ].join('\n'),
      'latin1',
    );
    const { scan, body: out } = await normalizeChunks(fields, [body]);
    // 1 alternative, 2 text/plain, 3 text/html, 4 message/rfc822, 5 the forwarded message's body
    expect([...scan.reencode].sort()).toEqual([3, 5]);
    const text = out.toString('latin1');
    expect(text).toContain('--inner\nContent-Type: text/plain\n\nshort\n--inner\n');
    expect(text).toContain(
      'Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>',
    );
    expect(text).toContain('Subject: forwarded\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nyyy');
    for (const line of text.split(/\r?\n/)) expect(line.length).toBeLessThanOrEqual(998);
  });

  it('re-wraps an overlong base64 line, which decodes to the same bytes', async () => {
    const pdf = Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 13) % 256));
    const fields = [field('Content-Type: application/pdf'), field('Content-Transfer-Encoding: base64')];
    const body = Buffer.from(`${pdf.toString('base64')}\r\n`, 'latin1');
    const { block, body: out } = await normalizeChunks(fields, [body]);
    expect(block.fields).toEqual(fields.map((f) => f.raw));
    const lines = out.toString('latin1').split('\r\n');
    expect(lines[0]!.length).toBe(998);
    for (const line of lines.slice(1)) expect(line.length).toBeLessThanOrEqual(76);
    expect(Buffer.from(lines.join(''), 'base64')).toEqual(pdf);
  });

  it('folds an overlong part header line', async () => {
    const fields = [field('Content-Type: multipart/mixed; boundary=b')];
    const names = Array.from({ length: 120 }, (_, i) => `page${i}.pdf`).join(' ');
    const body = Buffer.from(`--b\r\nContent-Description: ${names}\r\n\r\nhello\r\n--b--\r\n`, 'latin1');
    const { body: out } = await normalizeChunks(fields, [body]);
    const text = out.toString('latin1');
    for (const line of text.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
    expect(text.replace(/\r\n(?=[ \t])/g, '')).toBe(body.toString('latin1'));
  });

  it('leaves a body without long lines alone', async () => {
    const { scan, block } = await normalizeChunks(MULTIPART_FIELDS, [
      Buffer.from('--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n'),
    ]);
    expect(scan.rewrap).toBe(false);
    expect(block.bodyTransform).toBeNull();
    expect(block.changed).toEqual([]);
  });

  it('says so when a long line is in an encoding it cannot change', async () => {
    const fields = [
      field('Content-Type: application/octet-stream'),
      field('Content-Transfer-Encoding: binary'),
    ];
    const { block } = await normalizeChunks(fields, [Buffer.alloc(2000, 0x41)]);
    expect(block.bodyTransform).toBeNull();
    expect(block.changed).toEqual(['body: lines over 998 octets in a part whose encoding cannot change']);
  });

  it('gives the same result wherever the chunks are cut', async () => {
    const fields = [field('Content-Type: multipart/mixed; boundary="outer"')];
    const lines = [
      'preamble',
      '--outer  ',
      'Content-Type: multipart/alternative;',
      ' boundary=inner',
      '',
      '--inner',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `${'Gr\xfc\xdfe '.repeat(200)}`,
      '.dot line ',
      '--inner--',
      '--outer',
      'Content-Transfer-Encoding: base64',
      'Content-Type: image/png',
      '',
      Buffer.alloc(800, 0xa7).toString('base64'),
      '--outer--',
      'epilogue',
    ];
    const variants = {
      crlf: lines.join('\r\n'),
      lf: lines.join('\n'),
      // A bare CR before an empty CRLF line would make `\r\r\n`: one line end, as Postfix reads it.
      mixed: lines
        .map(
          (line, index) =>
            line + (lines[index + 1] === '' ? '\r\n' : ['\r\n', '\n', '\r', '\r\n'][index % 4]),
        )
        .join(''),
    };
    for (const [name, text] of Object.entries(variants)) {
      const body = Buffer.from(text, 'latin1');
      const whole = await normalizeChunks(fields, [body]);
      expect([...whole.scan.reencode], name).toEqual([2]);
      const expected = whole.body.toString('latin1');
      expect(expected, name).toContain(
        'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe',
      );
      for (const size of [1, 2, 3, 5, 7, 13, 64]) {
        const chunked = await normalizeChunks(fields, cut(body, size));
        expect(chunked.scan, `${name} in chunks of ${size}`).toEqual(whole.scan);
        expect(chunked.body.toString('latin1'), `${name} in chunks of ${size}`).toBe(expected);
      }
      for (let at = 1; at < body.length; at++) {
        const chunked = await normalizeChunks(fields, [body.subarray(0, at), body.subarray(at)]);
        expect(chunked.body.toString('latin1'), `${name} cut at ${at}`).toBe(expected);
      }
    }
  });
});

describe('normalizeMessage', () => {
  let dir: string | null = null;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = null;
  });

  it('reads a spooled body from disk and reports the size of what goes upstream', async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaydesk-normalize-'));
    const path = join(dir, 'body');
    await writeFile(path, MULTIPART_BODY);
    const fields = [...MULTIPART_FIELDS, field(cp1252('Subject: Scan vom Büro'))];
    const result = await normalizeMessage(fields, () => createReadStream(path, { highWaterMark: 1024 }), {
      smtpUtf8: false,
    });
    expect(result.fields.at(-1)).toBe('Subject: Scan vom =?UTF-8?B?QsO8cm8=?=');
    const out = await collect(createReadStream(path).pipe(result.bodyTransform!()));
    expect(result.bodySize).toBe(out.length);
    expect(result.changed).toEqual([
      'Subject: 8-bit text encoded as RFC 2047 encoded-words',
      'body: 1 part(s) with lines over 998 octets re-encoded as quoted-printable',
    ]);
  });

  it('streams a 30 MB body with a bounded lag between input and output', async () => {
    const line = Buffer.from(`${'Lorem ipsum dolor sit amet, \xe4\xf6\xfc '.repeat(150)}\r\n`, 'latin1');
    const total = 30 * 1024 * 1024;
    const chunk = Buffer.concat(Array.from({ length: Math.ceil(65536 / line.length) }, () => line));
    function* source() {
      for (let sent = 0; sent < total; sent += chunk.length) yield chunk;
    }
    const fields = [field('Content-Type: text/plain; charset=ISO-8859-1')];
    const scan = await scanBody(fields, Readable.from(source()));
    expect([...scan.reencode]).toEqual([0]);

    const transform = createBodyNormalizer(fields, scan.reencode);
    const inputHash = createHash('sha256');
    const outputHash = createHash('sha256');
    let inputBytes = 0;
    let decodedBytes = 0;
    let longestLine = 0;
    let column = 0;
    // Streaming quoted-printable decoder: `held` keeps an escape cut by a chunk boundary.
    let held = Buffer.alloc(0);
    transform.on('data', (out: Buffer) => {
      const encoded = Buffer.concat([held, out]);
      const decoded = Buffer.alloc(encoded.length);
      let n = 0;
      let i = 0;
      for (; i < encoded.length; i++) {
        const byte = encoded[i]!;
        if (byte === 0x3d) {
          if (i + 2 >= encoded.length) break;
          const next = encoded.subarray(i + 1, i + 3).toString('latin1');
          i += 2;
          if (next === '\r\n') {
            longestLine = Math.max(longestLine, column + 1);
            column = 0;
            continue;
          }
          decoded[n++] = parseInt(next, 16);
          column += 3;
        } else {
          decoded[n++] = byte;
          if (byte === 0x0a) column = 0;
          else if (byte !== 0x0d) column++;
        }
        longestLine = Math.max(longestLine, column);
      }
      held = encoded.subarray(i);
      outputHash.update(decoded.subarray(0, n));
      decodedBytes += n;
    });
    let maxLag = 0;
    for (const input of source()) {
      transform.write(input);
      inputHash.update(input);
      inputBytes += input.length;
      await new Promise((resolve) => setImmediate(resolve));
      maxLag = Math.max(maxLag, inputBytes - decodedBytes);
    }
    await new Promise((resolve) => transform.end(resolve));
    expect(held.length).toBe(0);
    expect(decodedBytes).toBe(inputBytes);
    expect(longestLine).toBeLessThanOrEqual(76);
    expect(outputHash.digest('hex')).toBe(inputHash.digest('hex'));
    // Whatever was written came out before the next chunk: nothing of the message is held back.
    expect(maxLag).toBeLessThanOrEqual(76);
  });
});

/** What the relay sends upstream for a device's bytes: prepare.ts, then the SMTP data encoder. */
async function upstreamBytes(
  deviceBytes: Buffer,
  rcptTo: string[],
  options: { sender?: SenderConfig; fromDisk?: boolean } = {},
): Promise<{ job: OutboundJob; data: string }> {
  const root = await mkdtemp(join(tmpdir(), 'relaydesk-prepare-'));
  // Closed before its folder goes: Windows keeps a folder with an open segment in it.
  let opened: Spool | null = null;
  try {
    const spool = await createSpool(root);
    opened = spool;
    const writer = await spool.begin({
      receivedAt: Date.UTC(2026, 11, 3, 12),
      client: {
        ip: '127.0.0.1',
        port: 40000,
        helo: 'busybox',
        listener: '127.0.0.1:2525',
        tls: false,
        authUser: null,
      },
      mailFrom: 'scanner@contoso.com',
      rcptTo,
      eightBit: false,
      smtpUtf8: false,
    });
    await writer.write(deviceBytes);
    const message = await writer.commit();
    // A retry reads the spool file instead of the copy kept from receiving.
    if (options.fromDisk) spool.takeMemoryCopy(message.envelope.id);
    const prepare = createPreparer({
      spool,
      hostname: 'relay.test',
      mailbox: 'john@contoso.com',
      sender: options.sender ?? { mode: 'keep', byClient: {} },
    });
    const job = await prepare(message);
    // The bytes as the upstream client puts them on the wire: nodemailer's DATA encoder.
    const encoder = new DataStream();
    const data = Buffer.concat(await collectAll(Readable.from(job.open()).pipe(encoder))).toString('latin1');
    // What goes upstream is what the job says it measures (SIZE=), before dot-stuffing and the end.
    expect(job.size).toBe(Buffer.concat(await collectAll(job.open())).length);
    return { job, data };
  } finally {
    await opened?.close();
    await rm(root, { recursive: true, force: true });
  }
}

async function collectAll(stream: AsyncIterable<unknown>): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks;
}

/** The header lines of what went upstream, Received (ours) left out. */
function upstreamHeaderLines(data: string): string[] {
  const header = data.slice(0, data.indexOf('\r\n\r\n'));
  return header
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .filter((line) => !line.startsWith('Received:'));
}

describe('carriage returns before the line end (busybox sendmail sends `\\r\\r\\n`)', () => {
  // busybox sendmail adds CRLF to every line it reads, CRLF included.
  const busybox = (lines: string[]) => Buffer.from(lines.map((line) => `${line}\r\r\n`).join(''), 'latin1');
  const message = busybox([
    'From: Scanner <scanner@contoso.com>',
    'To: alice@contoso.com',
    'Subject: Scan 42',
    'Date: Thu, 3 Dec 2026 12:00:00 +0000',
    'Message-ID: <scan42@scanner>',
    '',
    'first line',
    '',
    'third line',
  ]);

  it('reads every header line as a header, as Postfix does', () => {
    const block = parseHeaderBlock(message, message.length);
    expect(block.fields.map((f) => f.raw)).toEqual([
      'From: Scanner <scanner@contoso.com>',
      'To: alice@contoso.com',
      'Subject: Scan 42',
      'Date: Thu, 3 Dec 2026 12:00:00 +0000',
      'Message-ID: <scan42@scanner>',
    ]);
    expect(message.subarray(block.bodyOffset).toString('latin1')).toBe(
      'first line\r\r\n\r\r\nthird line\r\r\n',
    );
  });

  it.each([false, true])(
    'sends the headers as headers and the body without added blank lines (read from disk: %s)',
    async (fromDisk) => {
      const { data, job } = await upstreamBytes(message, ['alice@contoso.com'], { fromDisk });
      expect(upstreamHeaderLines(data)).toEqual([
        'From: Scanner <scanner@contoso.com>',
        'To: alice@contoso.com',
        'Subject: Scan 42',
        'Date: Thu, 3 Dec 2026 12:00:00 +0000',
        'Message-ID: <scan42@scanner>',
      ]);
      expect(data.slice(data.indexOf('\r\n\r\n') + 4)).toBe('first line\r\n\r\nthird line\r\n.\r\n');
      expect(job.bytes).toBeUndefined();
    },
  );

  it('cuts CR runs the same wherever the chunks are cut', () => {
    const body = Buffer.from('a\r\r\nb\r\r\r\r\nc\rd\r\nf\r\r\rg\r\ne\r\r', 'latin1');
    // Runs before an LF are cut; a run before anything else is the encoder's to make line ends of.
    const expected = 'a\r\nb\r\nc\rd\r\nf\r\r\rg\r\ne\r\r';
    for (let at = 0; at <= body.length; at++) {
      for (let second = at; second <= body.length; second++) {
        const runs = new CarriageReturnRuns();
        const out = Buffer.concat([
          runs.write(body.subarray(0, at)),
          runs.write(body.subarray(at, second)),
          runs.write(body.subarray(second)),
          runs.end(),
        ]);
        expect(out.toString('latin1'), `cut at ${at} and ${second}`).toBe(expected);
        expect(runs.changed).toBe(true);
      }
    }
    const clean = Buffer.from('a\r\nb\rc\r\n');
    const runs = new CarriageReturnRuns();
    expect(runs.write(clean)).toBe(clean);
    expect(runs.changed).toBe(false);
  });
});

describe('a bare CR inside a header', () => {
  const message = Buffer.from(
    'From: Scanner <scanner@contoso.com>\r\n' +
      'To: alice@contoso.com\r\n' +
      'Subject: x\rFrom: ceo@contoso.com\rBcc: mallory@evil.test\r\n' +
      '\r\n' +
      'Pay the invoice.\r\n',
    'latin1',
  );

  it('never reaches the upstream as a From or Bcc line of its own (sender rewriting on)', async () => {
    const { data } = await upstreamBytes(message, ['alice@contoso.com'], {
      sender: { mode: 'rewrite', byClient: {} },
    });
    const lines = upstreamHeaderLines(data);
    expect(lines.filter((line) => /^from:/i.test(line))).toEqual([
      'From: "Scanner (scanner@contoso.com)" <john@contoso.com>',
    ]);
    expect(lines.filter((line) => /^bcc:/i.test(line))).toEqual([]);
    // Postfix keeps the text, the CR read as a space.
    expect(lines).toContain('Subject: x From: ceo@contoso.com Bcc: mallory@evil.test');
  });
});

describe("a device's Bcc header", () => {
  it('is not sent upstream over SMTP; its recipients stay in the envelope', async () => {
    const message = Buffer.from(
      'From: scanner@contoso.com\r\nTo: alice@contoso.com\r\nBcc: audit@contoso.com,\r\n boss@contoso.com\r\n' +
        'Resent-Bcc: archive@contoso.com\r\nSubject: Scan\r\n\r\nbody\r\n',
      'latin1',
    );
    const rcptTo = ['alice@contoso.com', 'audit@contoso.com', 'boss@contoso.com'];
    const { data, job } = await upstreamBytes(message, rcptTo);
    expect(upstreamHeaderLines(data)).toEqual([
      'From: scanner@contoso.com',
      'To: alice@contoso.com',
      'Subject: Scan',
      expect.stringMatching(/^Date: /),
      expect.stringMatching(/^Message-ID: </),
    ]);
    expect(data).not.toMatch(/audit@|boss@|archive@/);
    expect(job.rcptTo).toEqual(rcptTo);

    // Graph sends to the header, not the envelope: its hidden recipients come back as a Bcc that
    // names exactly them (Graph takes it as bccRecipients; Exchange shows it to nobody).
    const fit = fitRecipientsToEnvelope(toCrlf(Buffer.concat(await collectAll(job.open()))), job.rcptTo);
    expect(fit.bcc).toEqual(['audit@contoso.com', 'boss@contoso.com']);
    expect(fit.omitted).toEqual([]);
    const graphHeader = fit.message
      .toString('latin1')
      .split('\r\n\r\n')[0]!
      .replace(/\r\n[ \t]/g, ' ');
    expect(graphHeader.split('\r\n').filter((line) => /^(resent-)?bcc:/i.test(line))).toEqual([
      'Bcc: audit@contoso.com, boss@contoso.com',
    ]);
  });
});
