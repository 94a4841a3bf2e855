import { describe, expect, it } from 'vitest';
import { createLanAuth, hashLanPassword, verifyLanPassword } from '../../electron/relay/lan-auth.ts';

const allowOnly =
  (...ips: string[]) =>
  (ip: string) =>
    ips.includes(ip);

describe('LAN password hashes', () => {
  it('are salted scrypt hashes that verify only the right password', async () => {
    const hash = await hashLanPassword('scan to email');
    const again = await hashLanPassword('scan to email');
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(hash).not.toBe(again);
    expect(hash).not.toContain('scan to email');
    expect(await verifyLanPassword('scan to email', hash)).toBe(true);
    expect(await verifyLanPassword('scan to e-mail', hash)).toBe(false);
    expect(await verifyLanPassword('', hash)).toBe(false);
  });

  it('refuses hashes it cannot check, and parameters that would take a lot of memory', async () => {
    const hash = await hashLanPassword('x');
    const huge = hash.replace('scrypt$32768$', `scrypt$${2 ** 24}$`);
    const notPowerOfTwo = hash.replace('scrypt$32768$', 'scrypt$30000$');
    for (const bad of ['', 'x', '$2b$10$abcdefghijklmnopqrstuv', huge, notPowerOfTwo]) {
      expect(await verifyLanPassword('x', bad)).toBe(false);
    }
  });
});

describe('createLanAuth', () => {
  it('ignore: any credentials from an allowed client, none from others; grants no relaying', async () => {
    const auth = createLanAuth(
      { mode: 'ignore', users: [] },
      { isAllowed: allowOnly('10.0.0.5'), failureDelayMs: 10 },
    );
    expect(auth.grantsRelay).toBe(false);
    expect(await auth.authenticate('10.0.0.5', 'admin', '')).toBe(true);
    expect(await auth.authenticate('10.0.0.9', 'admin', 'admin')).toBe(false);
  });

  it('check: only the listed user with the right password, whatever the client address', async () => {
    const users = [{ user: 'Laptop', passwordHash: await hashLanPassword('right') }];
    const auth = createLanAuth(
      { mode: 'check', users },
      { isAllowed: allowOnly('10.0.0.5'), failureDelayMs: 10 },
    );
    expect(auth.grantsRelay).toBe(true);
    expect(await auth.authenticate('192.168.1.20', 'Laptop', 'right')).toBe(true);
    expect(await auth.authenticate('10.0.0.5', 'Laptop', 'wrong')).toBe(false);
    expect(await auth.authenticate('10.0.0.5', 'laptop', 'right')).toBe(false);
    expect(await auth.authenticate('10.0.0.5', 'nobody', 'right')).toBe(false);
  });

  it('makes each further failure from one client wait twice as long, up to the cap, and others not at all', async () => {
    const users = [{ user: 'mfp', passwordHash: await hashLanPassword('right') }];
    const waits: number[] = [];
    const auth = createLanAuth(
      { mode: 'check', users },
      {
        isAllowed: () => false,
        failureDelayMs: 100,
        maxFailureDelayMs: 400,
        wait: async (ms) => {
          waits.push(ms);
        },
      },
    );
    for (let i = 0; i < 4; i++) expect(await auth.authenticate('10.0.0.7', 'mfp', 'no')).toBe(false);
    expect(await auth.authenticate('10.0.0.8', 'mfp', 'no')).toBe(false);
    expect(waits).toEqual([100, 200, 400, 400, 100]);
    // A client that failed waits before it is checked again, even with the right password; a success
    // forgives: the next failure starts from the first delay again.
    expect(await auth.authenticate('10.0.0.7', 'mfp', 'right')).toBe(true);
    expect(await auth.authenticate('10.0.0.7', 'mfp', 'no')).toBe(false);
    expect(waits).toEqual([100, 200, 400, 400, 100, 400, 100]);
  });

  it('refuses a user and password it refused before from memory, without hashing again', async () => {
    const users = [{ user: 'mfp', passwordHash: await hashLanPassword('right') }];
    const auth = createLanAuth({ mode: 'check', users }, { isAllowed: () => false, wait: async () => {} });
    const timed = async (ip: string, password: string) => {
      const started = process.hrtime.bigint();
      expect(await auth.authenticate(ip, 'mfp', password)).toBe(false);
      return Number(process.hrtime.bigint() - started);
    };
    const fresh = await timed('10.0.0.7', 'guess-1');
    const replayed = await timed('10.0.0.8', 'guess-1');
    expect(replayed).toBeLessThan(fresh / 4);
    expect(await auth.authenticate('10.0.0.9', 'mfp', 'right')).toBe(true);
  });

  it('checks one password at a time, allowed devices first, and refuses outsiders beyond a short line', async () => {
    const users = [{ user: 'mfp', passwordHash: await hashLanPassword('right') }];
    const auth = createLanAuth(
      { mode: 'check', users },
      { isAllowed: (ip) => ip === '10.0.0.5', wait: async () => {} },
    );
    const order: string[] = [];
    const attempt = (ip: string, password: string) =>
      auth.authenticate(ip, 'mfp', password).then((ok) => {
        order.push(`${ip} ${password} ${ok}`);
        return ok;
      });
    // One outsider's check runs, four wait in line, the sixth and seventh find the line full.
    const outsiders = [1, 2, 3, 4, 5, 6].map((n) => attempt(`192.0.2.${n}`, `guess-${n}`));
    const lineFull = attempt('192.0.2.7', 'right');
    const device = attempt('10.0.0.5', 'right');
    expect(await device).toBe(true);
    expect(await lineFull).toBe(false);
    await Promise.all(outsiders);
    expect(order.slice(0, 3)).toEqual([
      '192.0.2.6 guess-6 false',
      '192.0.2.7 right false',
      '192.0.2.1 guess-1 false',
    ]);
    expect(order[3]).toBe('10.0.0.5 right true');
  });

  it('waits for real by default: a refusal takes at least the first delay', async () => {
    const auth = createLanAuth(
      { mode: 'ignore', users: [] },
      { isAllowed: () => false, failureDelayMs: 150 },
    );
    const started = Date.now();
    expect(await auth.authenticate('10.0.0.9', 'x', 'y')).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });
});
