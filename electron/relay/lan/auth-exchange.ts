/**
 * The LAN AUTH exchange, PLAIN (RFC 4616) and LOGIN, as steps: each client line in, a challenge, a
 * refusal or the credentials out. Only these two are offered: devices that pick the strongest
 * mechanism on offer (CRAM-MD5, NTLM) fail when given more.
 */

/** Where an exchange stands between the client's lines. */
export type AuthWait =
  { name: 'auth-plain' } | { name: 'auth-login-user' } | { name: 'auth-login-password'; user: string };

export type AuthStep =
  | { kind: 'challenge'; reply: string; wait: AuthWait }
  | { kind: 'credentials'; user: string; password: string }
  | { kind: 'refused'; reply: string };

/** `AUTH <mechanism> [initial response]`. */
export function startAuth(argument: string): AuthStep {
  const [mechanismRaw = '', initial] = argument.split(/\s+/, 2);
  const mechanism = mechanismRaw.toUpperCase();
  if (mechanism === 'PLAIN') {
    return initial === undefined
      ? { kind: 'challenge', reply: '334 ', wait: { name: 'auth-plain' } }
      : continueAuth({ name: 'auth-plain' }, initial);
  }
  if (mechanism === 'LOGIN') {
    // The exact prompts ("Username:", "Password:") some Xerox units wait for.
    return initial === undefined
      ? { kind: 'challenge', reply: '334 VXNlcm5hbWU6', wait: { name: 'auth-login-user' } }
      : continueAuth({ name: 'auth-login-user' }, initial);
  }
  return {
    kind: 'refused',
    reply: '504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)',
  };
}

/** The client's answer to a challenge. */
export function continueAuth(wait: AuthWait, response: string): AuthStep {
  if (response === '*') return { kind: 'refused', reply: '501 5.7.0 Authentication cancelled' };
  const decoded = decodeBase64(response);
  if (decoded === null) return { kind: 'refused', reply: '501 5.5.2 Cannot decode AUTH response' };
  switch (wait.name) {
    case 'auth-plain': {
      const [, user = '', password = ''] = decoded.split('\0');
      return { kind: 'credentials', user, password };
    }
    case 'auth-login-user':
      return {
        kind: 'challenge',
        reply: '334 UGFzc3dvcmQ6',
        wait: { name: 'auth-login-password', user: decoded },
      };
    case 'auth-login-password':
      return { kind: 'credentials', user: wait.user, password: decoded };
  }
}

function decodeBase64(text: string): string | null {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed)) return null;
  return Buffer.from(trimmed, 'base64').toString('utf8');
}
