/**
 * Who is signed in, since when, and when the sign-in was last renewed: `signin.json` in the data folder,
 * for `relaydesk status`, the tray and the window. Nothing in it is secret (the refresh token lives in
 * the OS keychain); it is written atomically so a reader never sees half of it.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SignedInAccount {
  /** The sign-in name (id_token `preferred_username`), john@contoso.com: also the XOAUTH2 user. */
  username: string;
  name: string | null;
  /** `browser` (authorization code with PKCE) or `device-code`. */
  method: 'browser' | 'device-code';
  /** When the user signed in (milliseconds since the epoch). */
  signedInAt: number;
  /** When a refresh token was last redeemed (the sign-in is kept alive by this). */
  lastRefreshAt: number;
  /** `<tenant>:<clientId>` of the app it was signed in with: a changed config is not this sign-in. */
  app: string;
}

const FILE = 'signin.json';

export function readSignedIn(dataDir: string): SignedInAccount | null {
  try {
    const value = JSON.parse(readFileSync(join(dataDir, FILE), 'utf8')) as Partial<SignedInAccount>;
    return typeof value.username === 'string' && typeof value.signedInAt === 'number'
      ? (value as SignedInAccount)
      : null;
  } catch {
    return null;
  }
}

export function writeSignedIn(dataDir: string, account: SignedInAccount): void {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(account, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function clearSignedIn(dataDir: string): void {
  rmSync(join(dataDir, FILE), { force: true });
}
