/**
 * electron-builder's beforePack hook: puts the OS keychain binding of the TARGET platform and
 * architecture into node_modules before the app is packed. npm installs only the build machine's
 * binding (an optional dependency per platform), so a win-arm64 package built on Linux x64 would
 * otherwise ship `keyring-linux-x64-gnu` and no keychain at all. `files` in electron-builder.json
 * keeps only the target's binding; this hook makes sure it exists, fetched with `npm pack` at the
 * exact version package-lock.json pins (the npm registry is the only download, as for `npm ci`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The binding package's suffix per electron-builder platform name and arch. */
const SUFFIX = {
  'linux-x64': 'linux-x64-gnu',
  'linux-arm64': 'linux-arm64-gnu',
  'win32-x64': 'win32-x64-msvc',
  'win32-arm64': 'win32-arm64-msvc',
  'darwin-x64': 'darwin-x64',
  'darwin-arm64': 'darwin-arm64',
};

/** electron-builder's Arch enum, as numbers in the hook's context. */
const ARCH_NAMES = ['ia32', 'x64', 'armv7l', 'arm64', 'universal'];

export function keyringBindingSuffix(platform, arch) {
  const suffix = SUFFIX[`${platform}-${arch}`];
  if (!suffix) throw new Error(`RelayDesk has no keychain binding for ${platform}-${arch}`);
  return suffix;
}

export function ensureKeyringBinding(projectDir, platform, arch) {
  const name = `@napi-rs/keyring-${keyringBindingSuffix(platform, arch)}`;
  const target = join(projectDir, 'node_modules', name);
  if (existsSync(join(target, 'package.json'))) return target;
  const lock = JSON.parse(readFileSync(join(projectDir, 'package-lock.json'), 'utf8'));
  const version = lock.packages[`node_modules/${name}`]?.version;
  if (!version) throw new Error(`package-lock.json does not pin ${name}`);
  const work = mkdtempSync(join(tmpdir(), 'relaydesk-keyring-'));
  try {
    const tarball = execFileSync('npm', ['pack', `${name}@${version}`, '--silent'], {
      cwd: work,
      encoding: 'utf8',
    }).trim();
    execFileSync('tar', ['-xzf', tarball], { cwd: work });
    mkdirSync(join(projectDir, 'node_modules', '@napi-rs'), { recursive: true });
    renameSync(join(work, 'package'), target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return target;
}

export default async function beforePack(context) {
  const arch = typeof context.arch === 'number' ? ARCH_NAMES[context.arch] : context.arch;
  ensureKeyringBinding(context.packager.projectDir, context.electronPlatformName, arch);
  // electron-builder.json's `files` keeps this binding and drops every other one.
  process.env.RELAYDESK_KEYRING_BINDING = keyringBindingSuffix(context.electronPlatformName, arch);
}
