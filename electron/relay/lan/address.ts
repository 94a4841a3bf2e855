/**
 * MAIL FROM / RCPT TO arguments, parsed the way devices actually send them: with or without angle
 * brackets (Postfix's `strict_rfc821_envelopes = no`), with a space after the colon, with odd or
 * unqualified senders (`scanner`, `user.@dom`). What stays refused: control characters, NUL,
 * unbalanced brackets, and paths over RFC 5321's 256 octets.
 */

export interface PathArgument {
  /** The address without brackets; `''` is the null sender `<>`. */
  address: string;
  /** ESMTP parameters, keys upper-cased (`SIZE`, `BODY`, `SMTPUTF8`). */
  params: Map<string, string | true>;
}

export type PathParseResult = { ok: true; value: PathArgument } | { ok: false; reply: string };

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the brackets. */
const MAX_PATH_LENGTH = 256;
const MAX_LOCAL_PART_LENGTH = 64;

export function parsePathArgument(argument: string, keyword: 'FROM' | 'TO'): PathParseResult {
  const match = new RegExp(`^${keyword}\\s*:\\s*(.*)$`, 'i').exec(argument);
  if (!match) {
    return {
      ok: false,
      reply: `501 5.5.4 Syntax: ${keyword === 'FROM' ? 'MAIL FROM:<address>' : 'RCPT TO:<address>'}`,
    };
  }
  const rest = match[1]!.trim();
  let rawAddress: string;
  let paramText: string;
  if (rest.startsWith('<')) {
    const close = rest.indexOf('>');
    if (close < 0) return { ok: false, reply: '501 5.1.7 Missing closing ">" in the address' };
    rawAddress = rest.slice(1, close);
    paramText = rest.slice(close + 1);
  } else {
    const space = rest.search(/\s/);
    rawAddress = space < 0 ? rest : rest.slice(0, space);
    paramText = space < 0 ? '' : rest.slice(space);
  }

  // A source route (`<@relay1,@relay2:user@host>`) is obsolete; RFC 5321 §C says to ignore it.
  const address = rawAddress.replace(/^@[^:]*:/, '');
  const problem = addressProblem(address, keyword);
  if (problem) return { ok: false, reply: problem };

  const params = new Map<string, string | true>();
  for (const token of paramText.trim().split(/\s+/).filter(Boolean)) {
    const eq = token.indexOf('=');
    const key = (eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key))
      return { ok: false, reply: `501 5.5.4 Invalid parameter: ${printable(token)}` };
    params.set(key, eq < 0 ? true : token.slice(eq + 1));
  }
  return { ok: true, value: { address, params } };
}

function addressProblem(address: string, keyword: 'FROM' | 'TO'): string | null {
  const code = keyword === 'FROM' ? '5.1.7' : '5.1.3';
  // Octets, not characters: a UTF-8 address (RFC 6531) is longer on the wire than it looks.
  if (Buffer.byteLength(address) + 2 > MAX_PATH_LENGTH)
    return `501 ${code} Address too long (RFC 5321 allows 256 octets)`;
  // Control characters, brackets and unquoted whitespace have no place in an address.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f<>]/.test(address)) return `501 ${code} Bad address syntax`;
  // Commands are read as UTF-8 (RFC 6531); other 8-bit bytes were replaced by U+FFFD on the way in.
  if (address.includes('\ufffd')) return `501 ${code} Bad address syntax: not valid UTF-8`;
  if (keyword === 'FROM' && address === '') return null;
  if (address === '') return `501 ${code} Recipient address required`;
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  if (!local.startsWith('"') && /\s/.test(local)) return `501 ${code} Bad address syntax`;
  if (Buffer.byteLength(local) > MAX_LOCAL_PART_LENGTH)
    return `501 ${code} Local part too long (RFC 5321 allows 64 octets)`;
  if (at >= 0) {
    const domain = address.slice(at + 1);
    // A sender with a broken domain (`scanner@`) is mapped to a real address like an unqualified one.
    if (keyword === 'TO' && !/^(\[[^\]\s]+\]|[^\s@()[\]\\,;:]+)$/.test(domain))
      return `501 ${code} Bad domain in address`;
  } else if (keyword === 'TO' && address.toLowerCase() !== 'postmaster') {
    // An unqualified sender is mapped to a real address later; a recipient without a domain cannot be delivered.
    return `501 ${code} Recipient address must include a domain (user@example.com)`;
  }
  return null;
}

/** Whether an address can go to an upstream without SMTPUTF8 (RFC 6531). */
export function isAscii(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text);
}

/** For echoing client input in replies: printable ASCII only, bounded. */
export function printable(text: string, max = 64): string {
  const cleaned = text.replace(/[^\x20-\x7e]/g, '?');
  return cleaned.length > max ? `${cleaned.slice(0, max)}...` : cleaned;
}

const DOT_ATOM =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+)*$/;
const QUOTED_STRING = /^"([^"\\\r\n]|\\.)*"$/;
const DOMAIN_LABEL = /^[A-Za-z0-9\u0080-\uffff]([A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?$/;

/**
 * Whether a sender is an address Microsoft 365 takes (RFC 5321 Mailbox with a dotted domain). What
 * fails, `scanner`, `user.@dom`, `a..b@x.com`, `fax@printer`, is replaced by the mapped sender.
 */
export function isQualifiedAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const local = address.slice(0, at);
  const labels = address.slice(at + 1).split('.');
  if (!DOT_ATOM.test(local) && !QUOTED_STRING.test(local)) return false;
  return labels.length >= 2 && labels.every((label) => DOMAIN_LABEL.test(label));
}
