/**
 * Signing in with Microsoft from the window (delegated OAuth 2.0): the prompt goes out as a `signin`
 * event, the result comes back with a diagnosis when it failed, and mail held for "Sign in again"
 * goes out once it succeeded.
 */
import type { EventEmitter } from 'node:events';
import { parseConfig } from '../config/index.ts';
import { diagnose } from '../relay/diagnosis.ts';
import type { Logger } from '../relay/log.ts';
import { signIn as signInWithMicrosoft } from '../relay/oauth/signin.ts';
import type { Relay } from '../relay/relay.ts';
import type { SecretStore } from '../secrets/index.ts';
import { describeFailure, UpstreamError } from '../relay/upstream-failure.ts';
import type { SignInMethod, SignInResultView } from '../shared/ipc.ts';
import type { ServiceEvents } from './service.ts';
import { signedInView } from './status-view.ts';

export interface SignInDeps {
  dataDir: string;
  secrets: SecretStore;
  logger: Logger;
  events: EventEmitter<ServiceEvents>;
  fetch?: typeof fetch;
  /** Opens a page in the system browser; without it a sign-in uses a device code. */
  openBrowser?: (url: string) => Promise<void>;
  /** The running relay, to flush what waited for the sign-in. */
  relay(): Relay | null;
  /** Pushes the new status (who is signed in) at once. */
  pushStatus(): void;
}

/** Signs in for the app in `raw` (a draft config). */
export async function signIn(
  method: SignInMethod,
  raw: unknown,
  deps: SignInDeps,
): Promise<SignInResultView> {
  const draft = parseConfig(raw).config;
  // The browser may be on another computer (serve --admin): only main's own opener makes `browser` safe.
  const chosen: SignInMethod = deps.openBrowser ? method : 'device-code';
  try {
    const account = await signInWithMicrosoft({
      upstream: draft.upstream,
      secrets: deps.secrets,
      dataDir: deps.dataDir,
      method: chosen,
      onPrompt: (prompt) =>
        deps.events.emit(
          'signin',
          prompt.kind === 'browser'
            ? { kind: 'browser', url: prompt.url }
            : {
                kind: 'device-code',
                userCode: prompt.userCode,
                verificationUri: prompt.verificationUri,
                message: prompt.message,
                expiresAt: prompt.expiresAt,
              },
        ),
      openBrowser: deps.openBrowser,
      fetch: deps.fetch,
    });
    deps.logger.info('signed-in', { user: account.username, method: account.method });
    // Mail held for "Sign in again" goes out now.
    deps.relay()?.flush();
    deps.pushStatus();
    return { ok: true, account: signedInView(account), error: null, diagnosis: null };
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    const reason = describeFailure(error.failure);
    deps.logger.warn('signin-failed', { reason });
    return {
      ok: false,
      account: null,
      error: reason,
      diagnosis: diagnose(error.failure, {
        appId: draft.upstream.oauth2?.clientId,
        tenant: draft.upstream.oauth2?.tenant,
      }),
    };
  }
}
