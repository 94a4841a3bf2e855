/**
 * `relaydesk signin [--device-code] [--no-browser]` and `relaydesk signout`: the delegated OAuth 2.0
 * sign-in of the mailbox's user. The refresh token goes to the OS keychain; the terminal shows the
 * address to open (or the code to enter), then who signed in, or the diagnosis when it failed.
 */
import { spawn } from 'node:child_process';
import { diagnose, diagnosisContextFor } from '../relay/diagnosis.ts';
import { sendControlRequest } from '../relay/control.ts';
import { isDelegated } from '../relay/oauth/endpoints.ts';
import { signIn, signOut, type SignInPrompt } from '../relay/oauth/signin.ts';
import { describeFailure, UpstreamError } from '../relay/upstream-failure.ts';
import { createKeychainStore } from '../secrets/index.ts';
import { formatDiagnosis } from './check.ts';
import { EXIT_CONFIG, loadCommandConfig, type CliIo, type ConfigFlags } from './context.ts';
import { formatTime } from './format.ts';

export interface SignInFlags extends ConfigFlags {
  'device-code'?: boolean;
  'no-browser'?: boolean;
}

/**
 * The OS's own opener for a URL. Windows' `start` is a cmd built-in whose parser splits at `&`, so the
 * URL's ampersands are escaped for it; the empty "" is start's window title.
 */
export function openInBrowser(url: string, platform: NodeJS.Platform = process.platform): Promise<void> {
  const [command, args] =
    platform === 'win32'
      ? ['cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]]
      : platform === 'darwin'
        ? ['open', [url]]
        : ['xdg-open', [url]];
  return new Promise((resolve) => {
    try {
      const child = spawn(command, args, { stdio: 'ignore', detached: true, windowsHide: true });
      // No opener (a server without a desktop): the address is on the terminal anyway.
      child.once('error', () => resolve());
      child.once('spawn', () => {
        child.unref();
        resolve();
      });
    } catch {
      resolve();
    }
  });
}

function showPrompt(prompt: SignInPrompt, io: CliIo, opening: boolean): void {
  if (prompt.kind === 'browser') {
    io.stdout.write(
      `${opening ? 'Opening the Microsoft sign-in page in your browser. If it does not open, open' : 'Open'} this address in a browser on this computer and sign in as the mailbox's user:\n\n  ${prompt.url}\n\n` +
        `Waiting for the sign-in (Microsoft sends the browser back to ${prompt.redirectUri}) ...\n`,
    );
  } else {
    io.stdout.write(
      `${prompt.message}\n\n  Address: ${prompt.verificationUri}\n  Code:    ${prompt.userCode}\n\n` +
        `Waiting for the sign-in (the code is valid until ${formatTime(prompt.expiresAt)}) ...\n`,
    );
  }
}

export async function signInCommand(flags: SignInFlags, io: CliIo): Promise<number> {
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config, dataDir } = loaded;
  if (!isDelegated(config.upstream)) {
    io.stderr.write(
      'This upstream does not sign in as a user. To sign in with Microsoft, set upstream.auth to "oauth2" ' +
        'and upstream.oauth2.grant to "delegated", with the tenant and client ID of a public client app ' +
        '(see docs/microsoft365.md).\n',
    );
    return EXIT_CONFIG;
  }
  const secrets = createKeychainStore();
  const method = flags['device-code'] ? 'device-code' : 'browser';
  const opening = method === 'browser' && !flags['no-browser'];
  try {
    const account = await signIn({
      upstream: config.upstream,
      secrets,
      dataDir,
      method,
      onPrompt: (prompt) => showPrompt(prompt, io, opening),
      openBrowser: opening ? (url) => openInBrowser(url) : undefined,
    });
    io.stdout.write(
      `Signed in as ${account.name ? `${account.name} <${account.username}>` : account.username}. ` +
        `RelayDesk sends as this user and keeps the sign-in in the ${secrets.describe()}.\n`,
    );
    const configured = config.upstream.type === 'graph' ? config.upstream.mailbox : config.upstream.user;
    if (configured && configured.toLowerCase() !== account.username.toLowerCase()) {
      io.stdout.write(
        `Note: the config names ${configured}, but ${account.username} signed in; mail goes out as ` +
          `${account.username}. Sign in as ${configured}, or change the config.\n`,
      );
    }
    const running = await sendControlRequest(dataDir, { op: 'flush' }).catch(() => null);
    if (running?.ok) io.stdout.write('The running relay sends the waiting mail now.\n');
    return 0;
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    const diagnosis = diagnose(error.failure, diagnosisContextFor(config.upstream, io.env));
    io.stderr.write(
      [`Sign-in failed: ${describeFailure(error.failure)}`, ...formatDiagnosis(diagnosis)].join('\n') + '\n',
    );
    return 1;
  }
}

export async function signOutCommand(flags: SignInFlags, io: CliIo): Promise<number> {
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config, dataDir } = loaded;
  if (!config.upstream.oauth2) {
    io.stderr.write('This upstream has no OAuth 2.0 app (upstream.oauth2), so nobody is signed in.\n');
    return EXIT_CONFIG;
  }
  const secrets = createKeychainStore();
  try {
    const removed = await signOut({ upstream: config.upstream, secrets, dataDir });
    io.stdout.write(
      removed
        ? `Signed out: the sign-in is removed from the ${secrets.describe()}. Mail waits until someone signs in.\n`
        : 'Nobody was signed in.\n',
    );
    return 0;
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    io.stderr.write(`Sign-out failed: ${describeFailure(error.failure)}\n`);
    return 1;
  }
}
