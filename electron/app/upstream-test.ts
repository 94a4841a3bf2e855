/**
 * Trying the upstream from the window: the connection test (a draft config or the one in use) and the
 * test email, which also shows as a row of the activity.
 */
import { parseConfig } from '../config/index.ts';
import type { ConfigProblem } from '../config/types.ts';
import { checkUpstream } from '../relay/check.ts';
import type { Logger } from '../relay/log.ts';
import { sendTestEmail as sendTestEmailUpstream } from '../relay/send-test.ts';
import type { UpstreamDeps } from '../relay/upstream.ts';
import type { CheckView, TestEmailView } from '../shared/ipc.ts';
import type { AppConfig } from './config-apply.ts';
import type { RelayActivity } from './relay-activity.ts';
import type { UpstreamSecrets } from './upstream-secrets.ts';

export interface UpstreamTestDeps {
  appConfig: AppConfig;
  upstreamSecrets: UpstreamSecrets;
  upstreamDeps: UpstreamDeps;
  logger: Logger;
}

function isUpstreamProblem(problem: ConfigProblem): boolean {
  return problem.path.startsWith('upstream') || problem.path === '(file)';
}

/** Tests `raw` (a draft config) or, with null, the config in use. */
export async function testConnection(raw: unknown, deps: UpstreamTestDeps): Promise<CheckView> {
  let target = deps.appConfig.config;
  if (raw !== null && raw !== undefined) {
    const parsed = parseConfig(raw);
    const problems = parsed.problems.filter(isUpstreamProblem);
    if (problems.length > 0) {
      return {
        ok: false,
        upstream: '',
        steps: [],
        reason: 'The upstream settings have problems: fix them first.',
        diagnosis: null,
        problems,
      };
    }
    target = parsed.config;
  }
  const secretProblem = deps.upstreamSecrets.environmentProblem(target.upstream);
  if (secretProblem) {
    return {
      ok: false,
      upstream: '',
      steps: [],
      reason: secretProblem.message,
      diagnosis: null,
      problems: [secretProblem],
    };
  }
  const result = await checkUpstream(target, deps.upstreamDeps);
  deps.logger.info('connection-test', { upstream: result.upstream, ok: result.ok, reason: result.reason });
  return {
    ok: result.ok,
    upstream: result.upstream,
    steps: result.steps,
    reason: result.reason,
    diagnosis: result.diagnosis,
    problems: [],
  };
}

/** Sends the test email to `to`, or to the configured mailbox; the result is also an activity row. */
export async function sendTestEmail(
  to: string | null,
  deps: Omit<UpstreamTestDeps, 'upstreamSecrets'> & { activity: RelayActivity },
): Promise<TestEmailView> {
  const { config, exists } = deps.appConfig;
  const recipient = to ?? config.upstream.user ?? config.upstream.mailbox;
  const at = Date.now();
  if (!exists || !recipient) {
    return {
      ok: false,
      to: recipient ?? '',
      from: '',
      reply: exists
        ? 'No mailbox is configured to send the test email to: enter an address.'
        : 'RelayDesk is not set up yet: finish the setup first.',
      diagnosis: null,
      at,
    };
  }
  const result = await sendTestEmailUpstream(config, deps.upstreamDeps, recipient);
  deps.logger.info('test-email', { to: result.to, ok: result.ok, reply: result.reply });
  deps.activity.record({
    id: `test-${result.messageId}`,
    time: at,
    device: 'RelayDesk',
    from: result.from,
    to: [result.to],
    subject: 'RelayDesk test message',
    size: null,
    result: result.ok ? 'test-delivered' : 'test-failed',
    reply: result.reply,
  });
  return {
    ok: result.ok,
    to: result.to,
    from: result.from,
    reply: result.reply,
    diagnosis: result.diagnosis,
    at,
  };
}
