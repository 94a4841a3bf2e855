/**
 * The updater is on only for a package built with a feed (resources/app-update.yml), and a failed
 * check is logged, never thrown into the tray app.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';

const checks = vi.hoisted(() => ({ count: 0, fail: false }));
vi.mock('electron-updater', () => ({
  default: {
    autoUpdater: {
      logger: null,
      checkForUpdatesAndNotify: () => {
        checks.count += 1;
        return checks.fail ? Promise.reject(new Error('feed unreachable')) : Promise.resolve(null);
      },
    },
  },
}));

const { startUpdates } = await import('../../electron/main/updates.ts');
let resources: string;
const warnings: unknown[] = [];
const log = {
  info: () => undefined,
  warn: (...args: unknown[]) => warnings.push(args),
  error: () => undefined,
};

beforeAll(async () => {
  resources = await mkdtemp(join(tmpdir(), 'relaydesk-resources-'));
});

afterAll(async () => {
  await rm(resources, { recursive: true, force: true });
});

it('stays off without a feed, and when not packaged', async () => {
  expect(startUpdates({ isPackaged: true, resourcesPath: resources, log })).toBe(false);
  await writeFile(
    join(resources, 'app-update.yml'),
    'provider: generic\nurl: https://updates.example.test/\n',
  );
  expect(startUpdates({ isPackaged: false, resourcesPath: resources, log })).toBe(false);
  expect(checks.count).toBe(0);
});

it('checks at start when the package has a feed, and logs a failed check', async () => {
  checks.fail = true;
  expect(startUpdates({ isPackaged: true, resourcesPath: resources, log })).toBe(true);
  expect(checks.count).toBe(1);
  await vi.waitFor(() => expect(warnings).toEqual([['update check failed', { reason: 'feed unreachable' }]]));
});
