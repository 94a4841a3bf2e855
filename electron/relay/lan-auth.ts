/**
 * What a device's SMTP AUTH means on the LAN. In `ignore` mode (the default) trust comes from
 * `allowedClients` alone and any credentials an allowed device offers are accepted: copiers and .NET
 * apps that insist on signing in get to send. In `check` mode the credentials are verified against
 * per-device users whose passwords are stored as scrypt hashes, and a client that signs in may relay
 * from outside the allow-list (a laptop, an app on another network).
 *
 * Each check costs a 32 MiB scrypt in libuv's thread pool, the pool the spool's file writes use too,
 * so guessers must not be able to spend it at will (issue 13): a client that failed before waits its
 * delay before its next password is even hashed, a user and password already refused are refused again
 * from memory, and one check runs at a time, allowed devices first, with a short line for the others.
 */
import { createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { parseLanPasswordHash } from '../config/lan-users.ts';
import type { LanAuthConfig } from '../config/types.ts';

export interface LanAuth {
  /**
   * Resolves whether the credentials are accepted. A refusal comes after a delay that grows per client;
   * a client that failed before waits that delay before its credentials are checked at all.
   */
  authenticate(ip: string, user: string, password: string): Promise<boolean>;
  /** True in `check` mode: a verified user may relay from any address. */
  readonly grantsRelay: boolean;
}

export interface LanAuthOptions {
  /** Whether `ip` is in `allowedClients`. */
  isAllowed(ip: string): boolean;
  /** Delay after a client's first failed attempt; it doubles with each further failure. Default 500 ms. */
  failureDelayMs?: number;
  /** The longest delay. Default 8 s. */
  maxFailureDelayMs?: number;
  /** How a refusal waits; a timer unless a test watches the delays. */
  wait?: (ms: number) => Promise<void>;
}

/** scrypt with N = 2^15, r = 8, p = 1: 32 MiB and some tens of milliseconds per check. */
const COST = 32768;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

/** Failures are forgotten after this long without another. */
const FAILURE_MEMORY_MS = 15 * 60 * 1000;
/** Clients tracked for delays at most; the oldest are forgotten first. */
const MAX_TRACKED_CLIENTS = 10_000;
/** Refused user and password pairs remembered (as keyed digests), so a replay costs no scrypt. */
const MAX_REFUSED_PAIRS = 10_000;
/**
 * Checks from clients outside `allowedClients` waiting for the hashing slot. Beyond this a guess is
 * refused unchecked: a flood fills this line, never the thread pool.
 */
const MAX_WAITING_OUTSIDERS = 4;
/** After an outsider's check the slot rests this many times its duration for outsiders. */
const OUTSIDER_REST_FACTOR = 3;

function scryptAsync(
  password: string,
  salt: Buffer,
  length: number,
  options: ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

function scryptOptions(cost: number, blockSize: number, parallelism: number): ScryptOptions {
  // Node's default maxmem (32 MiB) is exactly what N = 2^15, r = 8 needs, which it refuses.
  return { N: cost, r: blockSize, p: parallelism, maxmem: 256 * cost * blockSize + 1024 * 1024 };
}

/** `scrypt$32768$8$1$<salt, base64>$<key, base64>`: the form `relaydesk lan-user add` writes. */
export async function hashLanPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await scryptAsync(password, salt, KEY_LENGTH, scryptOptions(COST, BLOCK_SIZE, PARALLELISM));
  return ['scrypt', COST, BLOCK_SIZE, PARALLELISM, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyLanPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parseLanPasswordHash(hash);
  if (!parsed) return false;
  const key = await scryptAsync(
    password,
    parsed.salt,
    parsed.key.length,
    scryptOptions(parsed.cost, parsed.blockSize, parsed.parallelism),
  );
  return timingSafeEqual(key, parsed.key);
}

/**
 * One password check at a time: a 32 MiB scrypt takes one of libuv's four threads, and the others stay
 * free for the spool. Allowed devices go first. Outsiders queue in a short line (null: the line was
 * full and nothing was checked), and after each of their checks the slot rests three times as long for
 * them, so a flood from any number of addresses gets at most a quarter of one thread.
 */
function createHashingSlot() {
  const allowedLine: (() => void)[] = [];
  const outsiderLine: (() => void)[] = [];
  let running = false;
  let outsidersRestUntil = 0;
  let restTimer: NodeJS.Timeout | null = null;

  function pump(): void {
    if (running) return;
    const start = allowedLine.shift();
    if (start) {
      running = true;
      start();
      return;
    }
    if (outsiderLine.length === 0) return;
    const rest = outsidersRestUntil - Date.now();
    if (rest > 0) {
      restTimer ??= setTimeout(() => {
        restTimer = null;
        pump();
      }, rest);
      restTimer.unref();
      return;
    }
    running = true;
    outsiderLine.shift()!();
  }

  return async function run<T>(allowed: boolean, task: () => Promise<T>): Promise<T | null> {
    if (!allowed && outsiderLine.length >= MAX_WAITING_OUTSIDERS) return null;
    await new Promise<void>((start) => {
      (allowed ? allowedLine : outsiderLine).push(start);
      pump();
    });
    const started = Date.now();
    try {
      return await task();
    } finally {
      if (!allowed) outsidersRestUntil = Date.now() + OUTSIDER_REST_FACTOR * (Date.now() - started);
      running = false;
      pump();
    }
  };
}

/** Remembers refused user and password pairs by an HMAC under a key of this process only. */
function createRefusedPairs() {
  const key = randomBytes(32);
  const refused = new Map<string, number>();
  const digest = (user: string, password: string): string =>
    createHmac('sha256', key).update(user).update('\0').update(password).digest('base64');
  return {
    has(user: string, password: string): boolean {
      const at = refused.get(digest(user, password));
      return at !== undefined && Date.now() - at < FAILURE_MEMORY_MS;
    },
    add(user: string, password: string): void {
      const pair = digest(user, password);
      refused.delete(pair);
      if (refused.size >= MAX_REFUSED_PAIRS) refused.delete(refused.keys().next().value!);
      refused.set(pair, Date.now());
    },
  };
}

export function createLanAuth(config: LanAuthConfig, options: LanAuthOptions): LanAuth {
  const baseDelay = options.failureDelayMs ?? 500;
  const maxDelay = options.maxFailureDelayMs ?? 8000;
  const wait = options.wait ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const failures = new Map<string, { count: number; last: number }>();

  /** Checks of each client still running: parallel connections count as the failures they may be. */
  const inFlight = new Map<string, number>();

  /** Failures of `ip` still remembered. */
  function failuresOf(ip: string): number {
    const previous = failures.get(ip);
    return previous && Date.now() - previous.last < FAILURE_MEMORY_MS ? previous.count : 0;
  }

  /** A guesser gets slower with every wrong password; Postfix's smtpd_error_sleep_time works alike. */
  function delayFor(failureCount: number): number {
    return Math.min(maxDelay, baseDelay * 2 ** Math.min(failureCount - 1, 30));
  }

  function recordFailure(ip: string): number {
    const count = failuresOf(ip) + 1;
    failures.delete(ip);
    if (failures.size >= MAX_TRACKED_CLIENTS) failures.delete(failures.keys().next().value!);
    failures.set(ip, { count, last: Date.now() });
    return count;
  }

  if (config.mode === 'ignore') {
    return {
      grantsRelay: false,
      async authenticate(ip) {
        if (options.isAllowed(ip)) return true;
        await wait(delayFor(recordFailure(ip)));
        return false;
      },
    };
  }

  const users = new Map(config.users.map((entry) => [entry.user, entry.passwordHash]));
  // Checked for unknown user names too, so a refusal takes as long whether or not the user exists.
  const decoyHash = hashLanPassword(randomBytes(16).toString('hex'));
  const hashingSlot = createHashingSlot();
  const refusedPairs = createRefusedPairs();

  async function check(ip: string, user: string, password: string): Promise<boolean> {
    if (refusedPairs.has(user, password)) return false;
    const hash = users.get(user);
    const decoy = await decoyHash;
    const verdict = await hashingSlot(options.isAllowed(ip), () =>
      verifyLanPassword(password, hash ?? decoy),
    );
    if (verdict === null) return false;
    if (verdict && hash !== undefined) return true;
    refusedPairs.add(user, password);
    return false;
  }

  return {
    grantsRelay: true,
    async authenticate(ip, user, password) {
      const running = inFlight.get(ip) ?? 0;
      const earlier = failuresOf(ip) + running;
      inFlight.set(ip, running + 1);
      let ok: boolean;
      try {
        // The delay comes before the hashing: a guesser's next try costs the relay nothing until then.
        if (earlier > 0) await wait(delayFor(earlier + 1));
        ok = await check(ip, user, password);
      } finally {
        const left = (inFlight.get(ip) ?? 1) - 1;
        if (left > 0) inFlight.set(ip, left);
        else inFlight.delete(ip);
      }
      if (ok) {
        failures.delete(ip);
        return true;
      }
      const count = recordFailure(ip);
      // A first failure waited for nothing yet: the refusal comes after the first delay, as before.
      if (earlier === 0) await wait(delayFor(count));
      return false;
    },
  };
}
