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
      for (const scale of ['', '@1.25x', '@1.5x', '@2x', '@3x'])
        await access(`${repoRoot}build/tray/tray-${state}${scale}.png`);
      await access(`${repoRoot}build/tray/tray-${state}Template.png`);
      await access(`${repoRoot}build/tray/tray-${state}Template@2x.png`);
    }
  });

  it('gives Windows tray icons as .ico files holding 16, 20, 24 and 32 px', async () => {
    for (const state of ['ok', 'attention', 'error', 'paused']) {
      const icon = await readFile(`${repoRoot}build/tray/tray-${state}.ico`);
      expect(icon.readUInt16LE(2), 'an icon resource').toBe(1);
      const sizes = Array.from({ length: icon.readUInt16LE(4) }, (_, i) => icon[6 + 16 * i]);
      expect(sizes).toEqual([16, 20, 24, 32]);
    }
  });

  it('gives macOS template images: black and transparency only', async () => {
    const { inflateSync } = await import('node:zlib');
    const image = await readFile(`${repoRoot}build/tray/tray-okTemplate.png`);
    const idat = image.subarray(image.indexOf('IDAT') + 4, image.indexOf('IEND') - 8);
    const rows = inflateSync(idat);
    const colours = new Set<number>();
    for (let y = 0; y < 16; y += 1)
      for (let x = 0; x < 16; x += 1) {
        const at = y * (16 * 4 + 1) + 1 + x * 4;
        colours.add(rows[at]! | rows[at + 1]! | rows[at + 2]!);
      }
    expect([...colours]).toEqual([0]);
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

  it("keeps electron-builder's default deb dependencies (GTK, NSS...) beside the tray's and the keychain's", async () => {
    const { default: FpmTarget } = require('app-builder-lib/out/targets/FpmTarget.js') as {
      default: { prototype: { getDefaultDepends(this: unknown, target: string): string[] } };
    };
    const defaults = FpmTarget.prototype.getDefaultDepends.call({}, 'deb');
    const { deb } = JSON.parse(await readFile(`${repoRoot}electron-builder.json`, 'utf8')) as {
      deb: { depends: string[] };
    };
    expect(deb.depends).toEqual(expect.arrayContaining(defaults));
    expect(deb.depends.some((dependency) => dependency.includes('appindicator3-1'))).toBe(true);
  });

  it('signs from the environment only: ad hoc on macOS without a certificate, Azure Trusted Signing when configured', async () => {
    const { signingArgs } = (await import(`${repoRoot}build/dist.mjs`)) as {
      signingArgs(env: Record<string, string>): string[];
    };
    expect(signingArgs({})).toEqual(['-c.mac.identity=-']);
    expect(
      signingArgs({ CSC_LINK: 'x', RELAYDESK_UPDATE_URL: 'https://updates.contoso.com/relaydesk' }),
    ).toEqual(['-c.publish.provider=generic', '-c.publish.url=https://updates.contoso.com/relaydesk']);
    expect(() => signingArgs({ RELAYDESK_UPDATE_URL: 'http://updates.contoso.com/' })).toThrow(/https/);
    expect(signingArgs({ CSC_LINK: '/secure/developer-id.p12' })).toEqual([]);
    expect(() =>
      signingArgs({ CSC_LINK: 'x', RELAYDESK_AZURE_SIGN_ENDPOINT: 'https://eus.codesigning.azure.net' }),
    ).toThrow(/needs all of/);
    expect(
      signingArgs({
        CSC_LINK: 'x',
        RELAYDESK_AZURE_SIGN_ENDPOINT: 'https://eus.codesigning.azure.net',
        RELAYDESK_AZURE_SIGN_ACCOUNT: 'contoso-signing',
        RELAYDESK_AZURE_SIGN_PROFILE: 'public-trust',
        RELAYDESK_AZURE_SIGN_PUBLISHER: 'Contoso Ltd',
      }),
    ).toEqual([
      '-c.win.azureSignOptions.endpoint=https://eus.codesigning.azure.net',
      '-c.win.azureSignOptions.codeSigningAccountName=contoso-signing',
      '-c.win.azureSignOptions.certificateProfileName=public-trust',
      '-c.win.azureSignOptions.publisherName=Contoso Ltd',
    ]);
  });
});
