/**
 * The connection test behind `relaydesk check` and the app's "Test connection": credentials, then
 * connect, EHLO, STARTTLS and AUTH, each step with its result and time, and the diagnosis of the
 * step that failed. It sends nothing.
 */
import type { RelayConfig } from '../config/types.ts';
import { describeDataFolder, inspectDataFolder } from './data-folder.ts';
import { diagnose, diagnosisContextFor, type Diagnosis } from './diagnosis.ts';
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
  /** Worth fixing, but RelayDesk works: shown as a warning and does not fail the check. */
  warning?: boolean;
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

export interface CheckOptions {
  /** Also check that the data folder is private (the command line's check; the app's test skips it). */
  dataDir?: string;
}

export async function checkUpstream(
  config: RelayConfig,
  deps: UpstreamDeps,
  options: CheckOptions = {},
): Promise<CheckResult> {
  const steps: CheckStep[] = options.dataDir ? [await dataFolderStep(options.dataDir)] : [];
  const upstream = describeUpstream(config);
  const context = diagnosisContextFor(config.upstream, deps.env);
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
    steps.push(sizeStep(connection.capabilities.size, config));
    await connection.quit();
  } catch (error) {
    return fail(failureOf(error));
  }
  return { ok: true, upstream, steps, failure: null, reason: null, diagnosis: null };
}

async function dataFolderStep(dataDir: string): Promise<CheckStep> {
  const started = Date.now();
  const report = await inspectDataFolder(dataDir);
  const warning = report ? describeDataFolder(report) : null;
  return {
    name: 'data folder',
    ok: warning === null,
    ms: Date.now() - started,
    detail: report
      ? (warning ?? `${dataDir}: only this account and the administrators can change it`)
      : `${dataDir} does not exist yet: serve creates it, private to this account`,
    ...(warning === null ? {} : { warning: true }),
  };
}

const MB = 1024 * 1024;

function megabytes(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

/**
 * The upstream's own limit (RFC 1870 SIZE in its EHLO) against RelayDesk's: a limit below
 * `upstream.maxMessageBytes` is what devices are held to, refused with 552 5.3.4 above it.
 */
function sizeStep(announced: number | null, config: RelayConfig): CheckStep {
  const configured = Math.min(config.upstream.maxMessageBytes, config.limits.maxMessageBytes);
  let detail: string;
  if (!announced) {
    detail =
      `the upstream announces no fixed limit${announced === null ? ' (no SIZE)' : ' (SIZE 0)'}; ` +
      `devices may send up to ${megabytes(configured)} (upstream.maxMessageBytes, limits.maxMessageBytes)`;
  } else if (announced < config.upstream.maxMessageBytes) {
    detail =
      `the upstream accepts up to ${megabytes(announced)} (SIZE ${announced}), less than ` +
      `upstream.maxMessageBytes (${config.upstream.maxMessageBytes}): RelayDesk refuses larger messages ` +
      `at the device with 552 5.3.4; set upstream.maxMessageBytes to ${announced} to say so in the config`;
  } else {
    detail = `the upstream accepts up to ${megabytes(announced)} (SIZE ${announced}); devices may send up to ${megabytes(configured)}`;
  }
  return { name: 'size', ok: true, ms: 0, detail };
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
