/**
 * The desktop app as electron-builder packs it, checked offline: `electron-builder --dir` for
 * linux-x64, linux-arm64 and win-x64 with a stand-in Electron distribution (test/fixtures/
 * electron-dist.ts), then what landed in app.asar and app.asar.unpacked is read back: the packed
 * package.json, main, preload, window and tray files, the keychain binding of the TARGET
 * architecture and no other, no devDependencies, no source maps, and the Electron fuses flipped.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ID } from '../../electron/main/app-identity.ts';
import { makeLinuxDist, makeWindowsDist, readFuses } from '../fixtures/electron-dist.ts';
import * as electronStub from '../fixtures/electron-stub.ts';
import { ensureRendererBuilt } from '../fixtures/renderer-build.ts';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const asar = createRequire(import.meta.url)('@electron/asar') as {
  listPackage(archive: string): string[];
  extractFile(archive: string, file: string): Buffer;
};

interface PackageJson {
  name: string;
  version: string;
  productName?: string;
  homepage?: string;
  main?: string;
  devDependencies: Record<string, string>;
}
interface BuilderConfig {
  appId: string;
  extraMetadata: { main: string };
  nsis: { perMachine: boolean };
}

const TARGETS = [
  {
    platform: 'linux',
    arch: 'x64',
    binding: 'keyring-linux-x64-gnu',
    unpacked: 'linux-unpacked',
    exe: 'relaydesk',
    updateFeed: null,
  },
  {
    platform: 'linux',
    arch: 'arm64',
    binding: 'keyring-linux-arm64-gnu',
    unpacked: 'linux-arm64-unpacked',
    exe: 'relaydesk',
    // As build/dist.mjs passes it when RELAYDESK_UPDATE_URL is set. (For Windows electron-builder
    // writes the feed while it makes the NSIS installer, which --dir does not.)
    updateFeed: 'https://updates.example.test/relaydesk',
  },
  {
    platform: 'win',
    arch: 'x64',
    binding: 'keyring-win32-x64-msvc',
    unpacked: 'win-unpacked',
    exe: 'RelayDesk.exe',
    updateFeed: null,
  },
] as const;

let work: string;
let pkg: PackageJson;
let builder: BuilderConfig;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'relaydesk-pack-'));
  pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
  builder = JSON.parse(await readFile(join(repoRoot, 'electron-builder.json'), 'utf8')) as BuilderConfig;
  ensureRendererBuilt();
  const vite = join(repoRoot, 'node_modules/vite/bin/vite.js');
  for (const mode of ['main', 'preload'])
    await run(process.execPath, [vite, 'build', '--config', 'electron/vite.config.ts', '--mode', mode], {
      cwd: repoRoot,
    });
  await makeLinuxDist(join(work, 'dist-linux'));
  await makeWindowsDist(join(work, 'dist-win'));
  const cli = join(repoRoot, 'node_modules/electron-builder/cli.js');
  for (const target of TARGETS) {
    await run(
      process.execPath,
      [
        cli,
        '--dir',
        `--${target.platform}`,
        `--${target.arch}`,
        `-c.electronDist=${join(work, target.platform === 'win' ? 'dist-win' : 'dist-linux')}`,
        `-c.directories.output=${join(work, 'out')}`,
        '-c.win.signAndEditExecutable=false',
        '--publish=never',
        ...(target.updateFeed ? ['-c.publish.provider=generic', `-c.publish.url=${target.updateFeed}`] : []),
      ],
      { cwd: repoRoot, env: { ...process.env, CSC_IDENTITY_AUTO_DISCOVERY: 'false' }, maxBuffer: 16 << 20 },
    );
  }
}, 300_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.each(TARGETS)('the $platform-$arch package', (target) => {
  const resources = () => join(work, 'out', target.unpacked, 'resources');
  const archive = () => join(resources(), 'app.asar');

  it('packs package.json with the name, product name, entry point, homepage and version', () => {
    const packed = JSON.parse(asar.extractFile(archive(), 'package.json').toString('utf8')) as PackageJson;
    expect(packed).toMatchObject({
      name: 'relaydesk',
      productName: 'RelayDesk',
      main: builder.extraMetadata.main,
      homepage: expect.stringMatching(/^https:\/\//),
      version: pkg.version,
    });
  });

  it('holds main, the preload, the window and the tray icons', () => {
    const files = new Set(asar.listPackage(archive()));
    for (const file of [
      `/${builder.extraMetadata.main}`,
      '/out/preload/index.cjs',
      '/renderer/dist/index.html',
      '/build/icon.png',
      '/build/tray/tray-ok.png',
      '/build/tray/tray-error.png',
    ])
      expect(files, file).toContain(file);
  });

  // RunAsNode is off: a service and the elevated install run the app itself as `RelayDesk --cli ...`,
  // so the command line must be in main (docs/service.md), and a Windows package carries WinSW.
  it('carries the command line in main for `--cli`, and in a Windows package the WinSW a service needs', () => {
    const main = asar.extractFile(archive(), builder.extraMetadata.main).toString('utf8');
    expect(main).toContain('Usage: relaydesk <command>');
    expect(main).toContain('"--cli"');
    const winsw = asar
      .listPackage(archive())
      .filter((file) => file.startsWith('/node_modules/node-windows/bin/winsw/'));
    // electron-builder leaves .exe files out of Linux and macOS packages, which need no WinSW.
    expect(winsw).toEqual(
      target.platform === 'win'
        ? [
            '/node_modules/node-windows/bin/winsw/winsw.exe',
            '/node_modules/node-windows/bin/winsw/winsw.exe.config',
          ]
        : ['/node_modules/node-windows/bin/winsw/winsw.exe.config'],
    );
  });

  it('carries the keychain binding of its own architecture and no other', async () => {
    const unpacked = await readdir(join(resources(), 'app.asar.unpacked/node_modules/@napi-rs'));
    expect(unpacked.sort()).toEqual(['keyring', target.binding]);
    const packed = asar
      .listPackage(archive())
      .filter((file) => /^\/node_modules\/@napi-rs\/[^/]+$/.test(file));
    expect(packed.sort()).toEqual([
      '/node_modules/@napi-rs/keyring',
      `/node_modules/@napi-rs/${target.binding}`,
    ]);
  });

  it('has no devDependencies, no source maps and no test files', () => {
    const files = asar.listPackage(archive());
    for (const name of Object.keys(pkg.devDependencies))
      expect(files, name).not.toContain(`/node_modules/${name}`);
    expect(files.filter((file) => file.endsWith('.map'))).toEqual([]);
    expect(files.filter((file) => file.startsWith('/test/') || file.startsWith('/electron/'))).toEqual([]);
  });

  it('flips the Electron fuses: no RunAsNode, no NODE_OPTIONS or --inspect, asar only and checked', async () => {
    // RunAsNode, cookie encryption, NODE_OPTIONS, --inspect, asar integrity, only asar, V8 snapshot, file://
    expect(await readFuses(join(work, 'out', target.unpacked, target.exe))).toBe('01001100');
  });
});

describe('updates', () => {
  it('are configured only in a package built with a feed, and the updater is packed', async () => {
    for (const target of TARGETS) {
      const resources = join(work, 'out', target.unpacked, 'resources');
      const files = await readdir(resources);
      if (!target.updateFeed) {
        expect(files, target.unpacked).not.toContain('app-update.yml');
        continue;
      }
      const feed = await readFile(join(resources, 'app-update.yml'), 'utf8');
      expect(feed).toContain('provider: generic');
      expect(feed).toContain(`url: ${target.updateFeed}`);
      expect(asar.listPackage(join(resources, 'app.asar'))).toContain('/node_modules/electron-updater');
    }
  });
});

describe('the packed preload', () => {
  it('runs as Electron runs a sandboxed preload: its require knows only electron', () => {
    const archive = join(work, 'out', 'linux-unpacked', 'resources', 'app.asar');
    const code = asar.extractFile(archive, 'out/preload/index.cjs').toString('utf8');
    const asked: string[] = [];
    const sandboxRequire = (id: string) => {
      asked.push(id);
      if (id === 'electron') return electronStub;
      throw new Error(`module not found: ${id}`);
    };
    const module = { exports: {} };
    runInNewContext(code, { require: sandboxRequire, module, exports: module.exports });
    expect(asked).toEqual(['electron']);
    const api = electronStub.contextBridge.exposed.get('relaydesk') as Record<string, unknown>;
    expect(Object.keys(api)).toContain('getStatus');
    expect(Object.values(api).every((value) => typeof value === 'function')).toBe(true);
  });
});

describe('the Windows installer', () => {
  it("uses the app ID main gives Windows, and installs per user as main's per-user data folder expects", () => {
    expect(builder.appId).toBe(APP_ID);
    expect(builder.nsis.perMachine).toBe(false);
  });
});
