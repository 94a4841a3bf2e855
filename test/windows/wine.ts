/**
 * Runs Windows programs for the Windows lane's end-to-end tests: node.exe (Node.js for Windows) and
 * programs built with mingw, in the Wine prefix that .ci/windows-lane.sh prepared. Paths inside the
 * prefix's drive_c are C:\..., the rest of the Linux file system is drive Z:.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = resolve(import.meta.dirname, '../..');
export const laneHome = process.env.RELAYDESK_WINE_HOME ?? join(ROOT, 'test-artifacts', 'wine');
export const prefix = join(laneHome, 'prefix');
export const nodeExe = process.env.RELAYDESK_WINE_NODE ?? join(laneHome, 'node', 'bin', 'node.exe');
const driveC = join(prefix, 'drive_c');

/** Why the lane cannot run here, or null when the prefix and node.exe are in place. */
export function wineMissing(): string | null {
  if (!existsSync(join(prefix, 'system.reg'))) return `no Wine prefix at ${prefix}: run .ci/windows-lane.sh`;
  if (!existsSync(nodeExe)) return `no node.exe at ${nodeExe}: run .ci/windows-lane.sh`;
  return null;
}

export const wineEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  WINEPREFIX: prefix,
  WINEDEBUG: '-all',
  WINEDLLOVERRIDES: 'mscoree,mshtml=',
  ...extra,
});

/** The Windows name of a Linux path: C:\... inside the prefix's drive_c, else Z:\... */
export function windowsPath(linuxPath: string): string {
  const absolute = resolve(linuxPath);
  const onC = absolute === driveC || absolute.startsWith(driveC + sep);
  const rest = onC ? absolute.slice(driveC.length) : absolute;
  return `${onC ? 'C:' : 'Z:'}${rest.replaceAll('/', '\\') || '\\'}`;
}

/** A Linux path under drive_c for a C:\ folder name. */
export const onDriveC = (...parts: string[]) => join(driveC, ...parts);

export interface WineProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

/**
 * Starts a Windows program with its stdout and stderr in files (`<output>.out`, `<output>.err`):
 * node.exe under Wine dies with `open EBADF` when they are host pipes. stdin is /dev/null.
 */
export function startWine(
  program: string,
  args: string[],
  output: string,
  env?: NodeJS.ProcessEnv,
): WineProcess {
  const out = openSync(`${output}.out`, 'w');
  const err = openSync(`${output}.err`, 'w');
  const child = spawn('wine', [program, ...args], {
    cwd: ROOT,
    env: wineEnv(env),
    stdio: ['ignore', out, err],
  });
  closeSync(out);
  closeSync(err);
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  const text = (file: string) => readFileSync(file, 'utf8').replaceAll('\r\n', '\n');
  return { child, exited, stdout: () => text(`${output}.out`), stderr: () => text(`${output}.err`) };
}

/** `relaydesk <args>` under node.exe. */
export const startRelaydeskExe = (args: string[], output: string, env?: NodeJS.ProcessEnv) =>
  startWine(nodeExe, [windowsPath(join(ROOT, 'bin', 'relaydesk.js')), ...args], output, env);

/** Runs `relaydesk <args>` under node.exe to the end. */
export async function relaydeskExe(args: string[], output: string, env?: NodeJS.ProcessEnv) {
  const run = startRelaydeskExe(args, output, env);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Builds a C program of test/windows with Debian's mingw-w64 into `outDir`; returns the .exe path. */
export async function buildWindowsProgram(source: string, outDir: string): Promise<string> {
  const exe = join(outDir, source.replace(/\.c$/, '.exe'));
  await promisify(execFile)('x86_64-w64-mingw32-gcc', [
    '-municode',
    '-O2',
    '-o',
    exe,
    join(ROOT, 'test', 'windows', source),
  ]);
  return exe;
}
