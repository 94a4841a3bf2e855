/**
 * config.json and admin-token on Windows file semantics (issue 11, "What to deliver" 2): an editor,
 * a backup or a virus scanner holding the file open without delete sharing. Real files; only
 * Windows' refusals are injected (test/fixtures/windows-files.ts). A short hold is waited out; a
 * long one is reported and leaves the old file whole.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readOrCreateToken } from '../../electron/admin/token.ts';
import { defaultConfig } from '../../electron/config/defaults.ts';
import { loadConfigFile, saveConfigFile } from '../../electron/config/store.ts';
import { windowsFiles, type WindowsFiles } from '../fixtures/windows-files.ts';
import { eventually } from '../integration/harness.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-winfs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The other program lets go as soon as RelayDesk has been refused once. */
function releaseAfterFirstRefusal(files: WindowsFiles): void {
  void eventually(() => files.refusals.length > 0, 10_000, 5).then(() => files.releaseAll());
}

describe('config.json held open by another program', () => {
  /** The default config saved on Windows' file system, before another program opens it. */
  async function savedOnWindows() {
    const files = windowsFiles({ platform: 'win32', windowsFolders: true });
    const file = path.join(dir, 'config.json');
    const first = defaultConfig();
    await saveConfigFile(file, first, files.fs);
    return { files, file, first };
  }

  it('saves once the other program lets go, on Windows where the folder cannot be flushed', async () => {
    const { files, file, first } = await savedOnWindows();
    files.hold(file);
    releaseAfterFirstRefusal(files);
    const changed = { ...first, allowedClients: ['10.100.102.0/24'] };
    await saveConfigFile(file, changed, files.fs);
    expect(files.refusals[0]).toMatch(/^rename EPERM /);
    expect((await loadConfigFile(file)).config).toEqual(changed);
    expect(await readdir(dir)).toEqual(['config.json']);
  });

  it('reports a file held for longer, keeps the old config whole and leaves no temporary file', async () => {
    const { files, file, first } = await savedOnWindows();
    files.hold(file);
    await expect(
      saveConfigFile(file, { ...first, allowedClients: ['10.0.0.0/8'] }, files.fs),
    ).rejects.toMatchObject({ code: 'EPERM' });
    expect(files.refusals.length).toBeGreaterThan(1);
    expect((await loadConfigFile(file)).config).toEqual(first);
    expect(await readdir(dir)).toEqual(['config.json']);
  });
});

describe('admin-token refused for a moment by another program', () => {
  it('replaces an unusable token once a virus scanner lets go of the file', async () => {
    const files = windowsFiles({ platform: 'win32' });
    const file = path.join(dir, 'admin-token');
    await writeFile(file, 'not a token\n');
    // The scanner opens each file written in the folder without sharing it, for a moment.
    files.fail('open', /admin-token/, 'EBUSY');
    void eventually(() => files.refusals.length > 0, 10_000, 5).then(() => files.fail('open', /x/, null));
    const token = await readOrCreateToken(dir, files.fs);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(files.refusals[0]).toMatch(/^open EBUSY /);
    expect((await readFile(file, 'utf8')).trim()).toBe(token);
    expect(await readdir(dir)).toEqual(['admin-token']);
  });
});
