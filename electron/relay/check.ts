/**
 * The connection test behind `relaydesk check` and the app's "Test connection": credentials, then
 * connect, EHLO, STARTTLS and AUTH, each step with its result and time, and the diagnosis of the
 * step that failed. It sends nothing.
 */
import type { RelayConfig } from '../config/types.ts';
import { diagnose, type Diagnosis } from './diagnosis.ts';
import { connectSmtp } from './smtp-client.ts';
import { probeGraphMailbox, type GraphProbeStep } from './graph/index.ts';
import { GRAPH_SCOPE } from './oauth-token.ts';
import { isDelegated } from './oauth/endpoints.ts';
import {
  createAuthSource,
  createTokenProviderFor,
  smtpConnectionOptions,
  type UpstreamDeps,
} from './upstream.ts';
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
  const who = u.user ? ` as ${u.user}` : isDelegated(u) ? ' as the signed-in user' : '';
  return `${u.host}:${u.port} (${u.security}, auth ${u.auth}${who})`;
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
    tenant: config.upstream.oauth2?.tenant,
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

  if (config.upstream.type === 'graph') return checkGraph(config, deps, steps, fail, upstream);

  const started = Date.now();
  let auth;
  try {
    auth = await createAuthSource(config.upstream, deps)(false);
    const what =
      auth === null
        ? 'no authentication configured'
        : auth.method === 'xoauth2'
          ? `OAuth 2.0 token for ${auth.user} obtained${isDelegated(config.upstream) ? ' (signed in as that user)' : ''}`
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

/** Graph: a token, then a permission probe on the mailbox that sends nothing. */
async function checkGraph(
  config: RelayConfig,
  deps: UpstreamDeps,
  steps: CheckStep[],
  fail: (failure: UpstreamFailure) => CheckResult,
  upstream: string,
): Promise<CheckResult> {
  const tokens = createTokenProviderFor(config.upstream, GRAPH_SCOPE, deps);
  let started = Date.now();
  try {
    await tokens.getToken();
    steps.push({
      name: 'token',
      ok: true,
      ms: Date.now() - started,
      detail: `token issued for ${GRAPH_SCOPE}`,
    });
  } catch (error) {
    const failure = failureOf(error);
    steps.push({ name: 'token', ok: false, ms: Date.now() - started, detail: describeFailure(failure) });
    return fail(failure);
  }
  started = Date.now();
  let probe;
  try {
    // Reuses the cached token; the probe's own time is the mailbox checks.
    probe = await probeGraphMailbox(config.upstream, tokens, deps.fetch);
  } catch (error) {
    return fail(failureOf(error));
  }
  const probeMs = Date.now() - started;
  const probeSteps: [string, GraphProbeStep | null][] = [
    ['send', probe.send],
    ['drafts', probe.drafts],
  ];
  let failure: UpstreamFailure | null = null;
  for (const [name, step] of probeSteps) {
    if (!step) continue;
    steps.push({ name: `mailbox ${name}`, ok: step.ok, ms: probeMs, detail: step.detail });
    // A missing Mail.ReadWrite only matters for large messages unless Sent Items are skipped.
    const fatal = name !== 'drafts' || !config.upstream.saveToSentItems;
    if (!step.ok && fatal && !failure) failure = step.failure;
  }
  if (failure) return fail(failure);
  return { ok: true, upstream, steps, failure: null, reason: null, diagnosis: null };
}
