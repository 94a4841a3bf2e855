/** Builders for the rows' example failures, from what a server or Microsoft sends. */
import type { SmtpReply, SmtpStage, TokenGrant, UpstreamFailure } from '../upstream-failure.ts';

/** A reply failure from the reply line as the server sent it. */
export function replyLine(stage: SmtpStage, raw: string): UpstreamFailure {
  const parsed = /^(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3}) )?(.*)$/.exec(raw);
  if (!parsed) throw new Error(`not an SMTP reply line: ${raw}`);
  const reply: SmtpReply = {
    code: Number(parsed[1]),
    enhanced: parsed[2] ?? null,
    text: parsed[3] ?? '',
    raw,
  };
  return { kind: 'reply', stage, reply };
}

/** A token endpoint refusal with the trace lines Microsoft Entra ID appends. */
export function tokenFailure(
  status: number,
  error: string,
  aadsts: number,
  description: string,
): UpstreamFailure {
  return {
    kind: 'token',
    status,
    error,
    aadsts: [aadsts],
    description: `AADSTS${aadsts}: ${description} Trace ID: 0f3c7a52-8e21-4b7e-9a3d-1c2b4e5f6a70 Correlation ID: 6d1e2f3a-4b5c-4d6e-8f70-1a2b3c4d5e6f Timestamp: 2026-01-12 09:14:03Z`,
  };
}

/** A refusal of a user's sign-in (delegated OAuth 2.0) with the grant that was refused. */
export function signinFailure(
  grant: TokenGrant,
  status: number,
  error: string,
  aadsts: number,
  description: string,
): UpstreamFailure {
  const failure = tokenFailure(status, error, aadsts, description);
  return failure.kind === 'token' ? { ...failure, grant } : failure;
}

export function graphFailure(
  status: number,
  code: string,
  message: string,
  retryAfterSeconds: number | null = null,
): UpstreamFailure {
  return { kind: 'graph', status, code, message, retryAfterSeconds };
}
