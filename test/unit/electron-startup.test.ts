/**
 * A tray app that fails to start must not linger invisibly holding the single-instance lock: main
 * shows what went wrong in a dialog and exits non-zero (against the stand-in 'electron').
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import * as stub from '../fixtures/electron-stub.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));
vi.mock('electron-log/main', () => import('../fixtures/electron-log-stub.ts'));

let root: string;

afterAll(async () => {
  delete process.env.RELAYDESK_DATA_DIR;
  await rm(root, { recursive: true, force: true });
});

it('shows the startup error in a dialog and exits 1 when the relay cannot start', async () => {
  root = await mkdtemp(join(tmpdir(), 'relaydesk-startup-'));
  // The data folder is a file: the relay cannot create its spool there.
  const notAFolder = join(root, 'data');
  await writeFile(notAFolder, 'not a folder');
  process.env.RELAYDESK_DATA_DIR = notAFolder;
  process.env.XDG_CONFIG_HOME = join(root, 'xdg');
  await import('../../electron/main/index.ts');
  const deadline = Date.now() + 10_000;
  while (stub.app.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(stub.app.exitCode).toBe(1);
  expect(stub.dialog.errors).toEqual([
    { title: 'RelayDesk could not start', content: expect.stringMatching(/ENOTDIR|EEXIST|not a directory/) },
  ]);
  expect(stub.Tray.created).toHaveLength(0);
});
