/**
 * The connection test behind `relaydesk check` and the app's "Test connection": credentials, then
 * connect, EHLO, STARTTLS and AUTH, each step with its result and time, and the diagnosis of the
 * step that failed. It sends nothing.
 */
import type { RelayConfig } from '../config/types.ts';
import { diagnose, type Diagnosis } from './diagnosis.ts';
import { connectSmtp } from './smtp-client.ts';
import { createAuthSource, smtpConnectionOptions, type UpstreamDeps } from './upstream.ts';
import { describeFailure, UpstreamError, type UpstreamFailure } from './upstream-failure.ts';

export interface CheckStep {
  /** `credentials`, then the SMTP stages (`connect`, `greeting`, `ehlo`, `starttls`, `auth`) or Graph's. */
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface CheckResult {
  ok: boolean;
  upstream: string;
  steps: CheckStep[];
  failure: UpstreamFailure | null;
  /** One line describing the failure (the upstream's reply, or the network/TLS error). */
  reason: string | null;
  diagnosis: Diagnosis | null;
}

export function describeUpstream(config: RelayConfig): string {
  const u = config.upstream;
  if (u.type === 'graph') return `Microsoft Graph ${u.graphUrl} as ${u.mailbox ?? '(no mailbox)'}`;
  return `${u.host}:${u.port} (${u.security}, auth ${u.auth}${u.user ? ` as ${u.user}` : ''})`;
}

export function failureOf(error: unknown): UpstreamFailure {
  if (error instanceof UpstreamError) return error.failure;
  return {
    kind: 'network',
    stage: 'connect',
    code: (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN',
    message: (error as Error).message,
  };
}

export async function checkUpstream(config: RelayConfig, deps: UpstreamDeps): Promise<CheckResult> {
  const steps: CheckStep[] = [];
  const upstream = describeUpstream(config);
  const context = {
    mailbox: config.upstream.user ?? config.upstream.mailbox ?? undefined,
    appId: config.upstream.oauth2?.clientId,
    host: config.upstream.host,
    port: config.upstream.port,
  };
  const fail = (failure: UpstreamFailure): CheckResult => ({
    ok: false,
    upstream,
    steps,
    failure,
    reason: describeFailure(failure),
    diagnosis: diagnose(failure, context),
  });

  const started = Date.now();
  let auth;
  try {
    auth = await createAuthSource(config.upstream, deps)(false);
    const what =
      auth === null
        ? 'no authentication configured'
        : auth.method === 'xoauth2'
          ? `OAuth 2.0 token for ${auth.user} obtained`
          : `password for ${auth.user} found`;
    steps.push({ name: 'credentials', ok: true, ms: Date.now() - started, detail: what });
  } catch (error) {
    const failure = failureOf(error);
    steps.push({
      name: 'credentials',
      ok: false,
      ms: Date.now() - started,
      detail: describeFailure(failure),
    });
    return fail(failure);
  }

  try {
    const connection = await connectSmtp({
      ...(await smtpConnectionOptions(config.upstream)),
      auth,
      onStep: (step) => steps.push({ name: step.stage, ok: step.ok, ms: step.ms, detail: step.detail }),
    });
    await connection.quit();
  } catch (error) {
    return fail(failureOf(error));
  }
  return { ok: true, upstream, steps, failure: null, reason: null, diagnosis: null };
}
