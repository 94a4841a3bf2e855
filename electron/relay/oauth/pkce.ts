/** Proof Key for Code Exchange (RFC 7636) with S256, and the `state` that ties a redirect to its request. */
import { createHash, randomBytes } from 'node:crypto';

export interface Pkce {
  verifier: string;
  challenge: string;
}

export function createPkce(): Pkce {
  // 32 random bytes: a 43-character verifier, the minimum RFC 7636 §4.1 allows, with 256 bits of entropy.
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier, 'ascii').digest('base64url') };
}

export function createState(): string {
  return randomBytes(16).toString('base64url');
}
