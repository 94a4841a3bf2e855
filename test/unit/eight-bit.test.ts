/**
 * RFC 6152 downgrade for an upstream without 8BITMIME: what reaches it is 7-bit only, each 8-bit
 * part re-encoded as quoted-printable (as Postfix does), and decoding gives back the device's bytes.
 */
import { describe, expect, it } from 'vitest';
import { downgradeToSevenBit } from '../../electron/relay/message/eight-bit.ts';
import { inMemoryJob, plainTransportTo, scriptedUpstream } from '../fixtures/scripted-upstream.ts';

/** RFC 2045 §6.7, as a receiving mail client decodes it. */
function decodeQuotedPrintable(text: string): Buffer {
  const joined = text.replace(/=\r\n/g, '');
  const bytes: number[] = [];
  for (let index = 0; index < joined.length; index++) {
    if (joined[index] === '=' && /^[0-9A-F]{2}$/.test(joined.slice(index + 1, index + 3))) {
      bytes.push(parseInt(joined.slice(index + 1, index + 3), 16));
      index += 2;
    } else {
      bytes.push(joined.charCodeAt(index));
    }
  }
  return Buffer.from(bytes);
}

function isSevenBit(bytes: Buffer): boolean {
  return (
    bytes.every((byte) => byte < 0x80) &&
    bytes
      .toString('latin1')
      .split('\r\n')
      .every((l) => l.length <= 998)
  );
}

const GERMAN = 'Grüße aus Köln, Straße 5 = Büro\r\nZeile mit Leerzeichen am Ende   \r\n.Punkt am Anfang\r\n';

describe('downgradeToSevenBit', () => {
  it('re-encodes an 8-bit text part as quoted-printable and leaves the rest alone', () => {
    const message = Buffer.from(
      [
        'From: scanner@contoso.com',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        'Content-Transfer-Encoding: 8bit',
        '',
        'preamble',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        Buffer.from(GERMAN, 'utf8').toString('latin1') + '--b1',
        'Content-Type: application/pdf',
        'Content-Transfer-Encoding: base64',
        '',
        'JVBERi0xLjQK',
        '--b1',
        'Content-Type: message/rfc822',
        '',
        'Subject: inner',
        'Content-Type: text/plain; charset=iso-8859-1',
        '',
        'caf\xe9',
        '--b1--',
        'epilogue',
        '',
      ].join('\r\n'),
      'latin1',
    );
    const converted = downgradeToSevenBit(message);
    expect(isSevenBit(converted)).toBe(true);
    const text = converted.toString('latin1');
    // The multipart's own label follows its parts; the base64 part is untouched.
    expect(text).toContain(
      'Content-Type: multipart/mixed; boundary="b1"\r\nContent-Transfer-Encoding: 7bit\r\n\r\npreamble',
    );
    expect(text).toContain('Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1');
    const [, utf8Part] =
      /charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n([\s\S]*?)\r\n--b1/.exec(text)!;
    expect(decodeQuotedPrintable(utf8Part!).toString('utf8')).toBe(GERMAN.slice(0, -2));
    const [, inner] =
      /charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n([\s\S]*?)\r\n--b1--/.exec(
        text,
      )!;
    expect(decodeQuotedPrintable(inner!).toString('latin1')).toBe('caf\xe9');
    expect(text.endsWith('--b1--\r\nepilogue\r\n')).toBe(true);
  });

  it('makes a plain 8-bit message without MIME headers a MIME text message', () => {
    const message = Buffer.from(`From: fax@contoso.com\r\nSubject: Fax\r\n\r\n${GERMAN}`, 'utf8');
    const text = downgradeToSevenBit(message).toString('latin1');
    expect(text).toMatch(
      /^From: fax@contoso.com\r\nSubject: Fax\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1\.0\r\nContent-Type: text\/plain; charset=utf-8\r\n\r\n/,
    );
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    expect(decodeQuotedPrintable(body).toString('utf8')).toBe(GERMAN);
  });

  it('leaves a 7-bit message byte for byte as it is', () => {
    const message = Buffer.from('Subject: plain\r\nContent-Type: text/plain\r\n\r\nhello\r\n');
    expect(downgradeToSevenBit(message).equals(message)).toBe(true);
  });
});

describe('SMTP transport to an upstream without 8BITMIME', () => {
  async function deliver(ehlo: string[], eightBitDeclared: boolean) {
    const server = await scriptedUpstream({ ehlo });
    const transport = plainTransportTo(server);
    const bytes = Buffer.from(
      `Subject: Fax\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${GERMAN}`,
      'utf8',
    );
    const job = inMemoryJob(bytes, { mailFrom: 'fax@contoso.com', eightBit: eightBitDeclared });
    expect(await transport.send(job)).toMatchObject({ ok: true });
    const session = server.sessions[0]!;
    return { raw: session.messages[0]!.raw!, commands: session.commands };
  }

  it.each([
    ['declared BODY=8BITMIME', true],
    ['sent 8-bit without declaring it', false],
  ])('sends 7-bit quoted-printable when the device %s', async (_name, declared) => {
    const { raw, commands } = await deliver(['PIPELINING', 'SIZE 10000000'], declared);
    expect(isSevenBit(raw)).toBe(true);
    expect(raw.toString('latin1')).toContain('Content-Transfer-Encoding: quoted-printable');
    expect(commands.find((command) => command.startsWith('MAIL'))).not.toContain('BODY=8BITMIME');
  });

  it('sends the bytes as they are to an upstream that offers 8BITMIME', async () => {
    const { raw, commands } = await deliver(['PIPELINING', '8BITMIME'], true);
    expect(raw.toString('utf8')).toContain('Grüße aus Köln');
    expect(commands.find((command) => command.startsWith('MAIL'))).toContain('BODY=8BITMIME');
  });
});
