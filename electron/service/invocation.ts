/**
 * How this install runs its own command line, for a service definition or the administrator
 * prompt: Node.js and bin/relaydesk.js (an npm or source install), or the packaged desktop app's
 * own binary given `--cli`. The packaged app turns Electron's RunAsNode fuse off (a hardening), so
 * its binary cannot act as node: it runs the command line in its main process instead (main/cli-mode.ts).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `RelayDesk --cli serve ...`: the words after it are the command line's; nothing opens on screen. */
export const APP_CLI_FLAG = '--cli';

export interface CliInvocation {
  /** The program: node, or the app's binary. */
  command: string;
  /** bin/relaydesk.js for node; null for the app's binary, which takes APP_CLI_FLAG instead. */
  script: string | null;
}

/**
 * The words before the command line's own (`serve ...`): the program, then the script or `--cli`.
 * `linux`: the app also gets `--no-sandbox` there, since Chromium refuses to start as root (the
 * install behind pkexec) with its sandbox on, and a hardened service (NoNewPrivileges=) cannot set
 * the sandbox up; the command line opens no web page, so it has nothing to sandbox.
 */
export function cliWords(cli: CliInvocation, linux: boolean): string[] {
  if (cli.script !== null) return [cli.command, cli.script];
  return [cli.command, ...(linux ? ['--no-sandbox'] : []), APP_CLI_FLAG];
}

/** The command line's words when the app was started with `--cli` (anywhere after the program), else null. */
export function appCliArgs(argv: readonly string[]): string[] | null {
  const at = argv.indexOf(APP_CLI_FLAG, 1);
  return at === -1 ? null : argv.slice(at + 1);
}

/**
 * This process's way: inside the packaged app, its own binary; under Node, node and bin/relaydesk.js
 * (from out/cli/main.js or out/main/index.js alike: both sit two folders below the root). Null where
 * no service can start this binary: an unpackaged `electron .` (its binary needs the app folder too)
 * and an AppImage (its binary lives in a FUSE mount that ends with the app and that neither root nor
 * a service's account may enter).
 */
export function thisCli(
  proc: { versions: NodeJS.ProcessVersions; execPath: string; defaultApp?: boolean } = process,
  env: NodeJS.ProcessEnv = process.env,
): CliInvocation | null {
  if (!proc.versions.electron) {
    const script = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/relaydesk.js');
    return { command: proc.execPath, script };
  }
  const inAppImage = Boolean(env.APPIMAGE && env.APPDIR && proc.execPath.startsWith(`${env.APPDIR}/`));
  return proc.defaultApp || inAppImage ? null : { command: proc.execPath, script: null };
}

/** Why thisCli() is null, for the person who asked for a service. */
export const NO_SERVICE_PROGRAM =
  'This copy of RelayDesk cannot be the program of a service: an AppImage runs from a temporary ' +
  'mount that ends with it, and an unpackaged `electron .` needs its app folder. Install the .deb ' +
  'package and run `sudo /opt/RelayDesk/relaydesk --no-sandbox --cli service install`, or ' +
  '`relaydesk service install` from an npm install (Node.js).';
