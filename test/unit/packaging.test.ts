import { access, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);

interface BuilderConfig {
  extraMetadata: { main: string };
  files: string[];
  win: { target: { target: string }[]; icon: string };
  mac: { target: { target: string }[]; icon: string };
  linux: { target: string[]; icon: string };
}

async function config(): Promise<BuilderConfig> {
  return JSON.parse(await readFile(`${repoRoot}electron-builder.json`, 'utf8')) as BuilderConfig;
}

describe('packaging (electron-builder.json)', () => {
  it("passes electron-builder's own schema validation", async () => {
    // The validator `npm run dist` runs first; loading it needs no Electron download.
    const { validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
      validateConfiguration(config: unknown, logger: { isEnabled: boolean; add(): void }): Promise<void>;
    };
    await expect(
      validateConfiguration(await config(), { isEnabled: false, add: () => undefined }),
    ).resolves.toBeUndefined();
    await expect(
      validateConfiguration(
        { ...(await config()), win: { targte: 'nsis' } },
        { isEnabled: false, add: () => undefined },
      ),
    ).rejects.toThrow(/Invalid configuration/);
  });

  it('builds an NSIS installer, a dmg, an AppImage and a deb, with icons that exist', async () => {
    const builder = await config();
    expect(builder.win.target.map((t) => t.target)).toEqual(['nsis']);
    expect(builder.mac.target.map((t) => t.target)).toEqual(['dmg']);
    expect(builder.linux.target).toEqual(['AppImage', 'deb']);
    for (const icon of [builder.win.icon, builder.mac.icon, builder.linux.icon])
      await access(`${repoRoot}${icon}`);
    for (const state of ['ok', 'attention', 'error', 'paused']) {
      await access(`${repoRoot}build/tray/tray-${state}.png`);
      await access(`${repoRoot}build/tray/tray-${state}@2x.png`);
    }
  });

  it('starts the bundled main process, which loads the preload, window and tray icons it packs', async () => {
    const builder = await config();
    expect(builder.extraMetadata.main).toBe('out/main/index.js');
    const main = await readFile(`${repoRoot}electron/main/index.ts`, 'utf8');
    for (const path of ['out/preload/index.cjs', 'renderer/dist', 'build/tray', 'build/icon.png']) {
      expect(main).toContain(path);
      const packed = builder.files.some(
        (pattern) => !pattern.startsWith('!') && path.startsWith(pattern.replace('/**/*', '')),
      );
      expect(packed, `${path} is not in "files"`).toBe(true);
    }
  });
});
