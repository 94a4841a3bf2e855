/**
 * The device authorization grant (RFC 8628) as Entra ID runs it: ask `/devicecode` for a user code, show
 * it, and poll `/token` every `interval` seconds: `authorization_pending` means wait, `slow_down` adds
 * five seconds to the interval for good, `expired_token` (or the code's own expiry) ends it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { postTokenRequest, type OAuthJson } from '../oauth-token.ts';
import { UpstreamError } from '../upstream-failure.ts';

export interface DeviceCodePrompt {
  userCode: string;
  verificationUri: string;
  /** Entra ID's own sentence, in the user's language: "To sign in, use a web browser to open ...". */
  message: string;
  expiresAt: number;
}

export interface DeviceCodeOptions {
  devicecodeUrl: string;
  tokenUrl: string;
  clientId: string;
  scope: string;
  onPrompt: (prompt: DeviceCodePrompt) => void;
  fetch?: typeof fetch;
  /** Waits between polls; replaced in tests that check the intervals the protocol asks for. */
  wait?: (ms: number) => Promise<void>;
  now?: () => number;
}

const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8628 §3.5: the increase a slow_down asks for. */
const SLOW_DOWN_SECONDS = 5;

export async function signInWithDeviceCode(opts: DeviceCodeOptions): Promise<OAuthJson> {
  const now = opts.now ?? Date.now;
  const wait = opts.wait ?? ((ms: number) => sleep(ms));
  const started = now();
  const answer = await postTokenRequest({
    url: opts.devicecodeUrl,
    grant: 'device_code',
    form: { client_id: opts.clientId, scope: opts.scope },
    fetch: opts.fetch,
  });
  const deviceCode = answer.device_code;
  const userCode = answer.user_code;
  const verificationUri = answer.verification_uri;
  if (typeof deviceCode !== 'string' || typeof userCode !== 'string' || typeof verificationUri !== 'string') {
    throw new UpstreamError({
      kind: 'token',
      status: 200,
      error: 'invalid_response',
      aadsts: [],
      description: 'The device code endpoint answered without device_code, user_code and verification_uri.',
      grant: 'device_code',
    });
  }
  const expiresAt = started + (Number(answer.expires_in) > 0 ? Number(answer.expires_in) : 900) * 1000;
  // RFC 8628 §3.2: 5 seconds when the server names no interval.
  let intervalSeconds = Number(answer.interval) > 0 ? Number(answer.interval) : 5;
  opts.onPrompt({
    userCode,
    verificationUri,
    message:
      typeof answer.message === 'string'
        ? answer.message
        : `To sign in, open ${verificationUri} in a web browser and enter the code ${userCode}.`,
    expiresAt,
  });

  // Bounded: the loop ends when the code expires, whatever the server keeps answering.
  while (now() < expiresAt) {
    await wait(intervalSeconds * 1000);
    try {
      return await postTokenRequest({
        url: opts.tokenUrl,
        grant: 'device_code',
        form: { grant_type: GRANT, client_id: opts.clientId, device_code: deviceCode },
        redact: [deviceCode],
        fetch: opts.fetch,
      });
    } catch (error) {
      const code =
        error instanceof UpstreamError && error.failure.kind === 'token' ? error.failure.error : null;
      if (code === 'authorization_pending') continue;
      if (code === 'slow_down') {
        intervalSeconds += SLOW_DOWN_SECONDS;
        continue;
      }
      throw error;
    }
  }
  throw new UpstreamError({
    kind: 'token',
    status: 400,
    error: 'expired_token',
    aadsts: [],
    description: 'The code expired before anyone signed in with it.',
    grant: 'device_code',
  });
}
