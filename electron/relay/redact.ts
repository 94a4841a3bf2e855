/**
 * Cuts the secrets this process uses out of any text before it is logged, shown or stored. A token
 * endpoint, proxy or smart host that echoes the request puts a secret into its error text in some
 * encoding (issue 13): raw, URL-encoded (`%7E`, `+`), JSON-escaped, base64, or inside the base64 of
 * SASL AUTH PLAIN (`\0user\0password`) and XOAUTH2 (`user=...\x01auth=Bearer token\x01\x01`). Every
 * secret is registered where it is read or received, and each of those forms is replaced with
 * `[secret]` where error text enters RelayDesk and again where files are written.
 */
import type { UpstreamFailure } from './upstream-failure.ts';

const REPLACEMENT = '[secret]';
/** Shorter secrets look like ordinary words and numbers: cutting them would garble every line. */
const MIN_SECRET_LENGTH = 4;
/** The shortest base64 run that stands for part of a secret; shorter ones occur by chance. */
const MIN_BASE64_CORE = 6;
/** Secrets remembered at most (access tokens come hourly); the oldest are forgotten first. */
const MAX_SECRETS = 64;

const secrets = new Set<string>();
/** Every literal form of every secret, longest first; base64 cores are marked to be widened. */
let forms: { text: string; base64: Base64Alphabet | null }[] = [];
let pattern: RegExp | null = null;

/** What may stand before a base64 core in its run, and after it (padding comes only at the end). */
interface Base64Alphabet {
  before: RegExp;
  after: RegExp;
}
const BASE64: Base64Alphabet = { before: /[A-Za-z0-9+/]/, after: /[A-Za-z0-9+/=]/ };
const BASE64URL: Base64Alphabet = { before: /[A-Za-z0-9_-]/, after: /[A-Za-z0-9_=-]/ };

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The secret's text forms: raw, URL-encoded both ways, with either case of hex, and JSON-escaped. */
function textForms(secret: string): string[] {
  const formEncoded = new URLSearchParams({ s: secret }).toString().slice(2);
  const uriEncoded = encodeURIComponent(secret);
  const jsonEscaped = JSON.stringify(secret).slice(1, -1);
  const jsonAscii = jsonEscaped.replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  const lowerHex = (text: string) => text.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase());
  return [
    secret,
    formEncoded,
    uriEncoded,
    lowerHex(formEncoded),
    lowerHex(uriEncoded),
    jsonEscaped,
    jsonAscii,
  ];
}

/**
 * Base64 groups three bytes into four characters, so the secret inside a longer encoded text (AUTH
 * PLAIN, XOAUTH2, a whole request body) shows as one of three character runs, one per offset modulo
 * 3: the characters made of the secret's bits alone. The base64 run holding one is cut whole.
 */
function base64Cores(form: string): { text: string; base64: Base64Alphabet }[] {
  const bytes = new TextEncoder().encode(form);
  const cores: { text: string; base64: Base64Alphabet }[] = [];
  for (let offset = 0; offset < 3; offset += 1) {
    // btoa and TextEncoder, not Buffer: the window's type check reads this module too.
    const encoded = btoa(String.fromCharCode(...new Uint8Array(offset), ...bytes));
    const core = encoded.slice(Math.ceil((8 * offset) / 6), Math.floor((8 * (offset + bytes.length)) / 6));
    if (core.length < MIN_BASE64_CORE) continue;
    cores.push({ text: core, base64: BASE64 });
    const urlSafe = core.replace(/\+/g, '-').replace(/\//g, '_');
    if (urlSafe !== core) cores.push({ text: urlSafe, base64: BASE64URL });
  }
  return cores;
}

/** Remembers `secret` (a password, client secret or access token) so every form of it is cut. */
export function registerSecret(secret: string): void {
  if (secret.length < MIN_SECRET_LENGTH || secrets.has(secret)) return;
  if (secrets.size >= MAX_SECRETS) secrets.delete(secrets.values().next().value!);
  secrets.add(secret);
  // A base64 text may hold any text form: an echoed form body is base64 of the URL-encoded secret.
  const texts = [...new Set([...secrets].flatMap(textForms))];
  forms = [...texts.map((text) => ({ text, base64: null })), ...texts.flatMap(base64Cores)].sort(
    (a, b) => b.text.length - a.text.length,
  );
  pattern = new RegExp(forms.map((form) => escapeRegExp(form.text)).join('|'), 'g');
}

/** `text` with every form of every registered secret replaced by `[secret]`. */
export function redactSecrets(text: string): string {
  if (!pattern) return text;
  const cuts: [number, number][] = [];
  // exec, not matchAll: matchAll copies the pattern on every call (see test/unit/redact-cost.test.ts).
  pattern.lastIndex = 0;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(text)) !== null) {
    const matched = match[0];
    let start = match.index;
    let end = start + matched.length;
    const base64 = forms.find((form) => form.text === matched)?.base64;
    if (base64) {
      while (start > 0 && base64.before.test(text[start - 1]!)) start -= 1;
      while (end < text.length && base64.after.test(text[end]!)) end += 1;
    }
    const last = cuts.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else cuts.push([start, end]);
  }
  if (cuts.length === 0) return text;
  let out = '';
  let from = 0;
  for (const [start, end] of cuts) {
    out += text.slice(from, start) + REPLACEMENT;
    from = end;
  }
  return out + text.slice(from);
}

/** `failure` with the secrets cut out of its texts (an upstream's reply, a token endpoint's words). */
export function redactFailure(failure: UpstreamFailure): UpstreamFailure {
  if (!pattern) return failure;
  switch (failure.kind) {
    case 'reply':
      return {
        ...failure,
        reply: {
          ...failure.reply,
          text: redactSecrets(failure.reply.text),
          raw: redactSecrets(failure.reply.raw),
        },
      };
    case 'token':
      return {
        ...failure,
        error: redactSecrets(failure.error),
        description: redactSecrets(failure.description),
      };
    case 'network':
    case 'tls':
    case 'graph':
    case 'config':
      return { ...failure, message: redactSecrets(failure.message) };
  }
}
