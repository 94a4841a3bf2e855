/**
 * The form of `lanAuth.users` entries: what a device can send as a user name, and the scrypt hash
 * `relaydesk lan-user add` writes for its password. The config checks entries with these rules; the
 * relay's LAN sign-in (relay/lan-auth.ts) hashes and verifies with them.
 */

/** Hashes with parameters above these are refused, so a tampered config cannot make a check take gigabytes. */
const MAX_COST = 1 << 20;
const MAX_BLOCK_SIZE = 32;
const MAX_PARALLELISM = 16;

export interface ParsedLanHash {
  cost: number;
  blockSize: number;
  parallelism: number;
  salt: Buffer;
  key: Buffer;
}

/** The parts of a hash `relaydesk lan-user add` writes, or null when it is not one (or costs too much). */
export function parseLanPasswordHash(hash: string): ParsedLanHash | null {
  const match = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(hash);
  if (!match) return null;
  const [cost, blockSize, parallelism] = [match[1], match[2], match[3]].map(Number) as [
    number,
    number,
    number,
  ];
  const powerOfTwo = cost > 1 && (cost & (cost - 1)) === 0;
  if (!powerOfTwo || cost > MAX_COST || blockSize < 1 || blockSize > MAX_BLOCK_SIZE) return null;
  if (parallelism < 1 || parallelism > MAX_PARALLELISM) return null;
  const salt = Buffer.from(match[4]!, 'base64');
  const key = Buffer.from(match[5]!, 'base64');
  if (key.length < 16) return null;
  return { cost, blockSize, parallelism, salt, key };
}

/** What a device can type into its SMTP settings and send in AUTH: printable ASCII, no spaces. */
export function lanUserNameProblem(name: string): string | null {
  if (name.length > 128) return 'is longer than 128 characters';
  if (!/^[\x21-\x7e]+$/.test(name)) return 'may hold only printable ASCII characters, without spaces';
  return null;
}

/** Whether `hash` has the form `relaydesk lan-user add` writes (and within the accepted costs). */
export function isLanPasswordHash(hash: string): boolean {
  return parseLanPasswordHash(hash) !== null;
}
