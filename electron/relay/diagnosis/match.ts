/** Whether a failure matches a row: the table's only logic besides filling in the words. */
import type { UpstreamFailure } from '../upstream-failure.ts';
import type { DiagnosisMatch, EnhancedCodePattern, HttpStatusMatch, RuleSource } from './types.ts';

function parseEnhanced(code: string): [number, number, number] | null {
  const parts = /^(\d)\.(\d{1,3})\.(\d{1,3})$/.exec(code);
  return parts ? [Number(parts[1]), Number(parts[2]), Number(parts[3])] : null;
}

function enhancedMatches(pattern: EnhancedCodePattern, enhanced: string): boolean {
  if (typeof pattern === 'string') return pattern === enhanced;
  const actual = parseEnhanced(enhanced);
  const from = parseEnhanced(pattern[0]);
  const to = parseEnhanced(pattern[1]);
  if (!actual || !from || !to) return false;
  return actual[0] === from[0] && actual[1] === from[1] && actual[2] >= from[2] && actual[2] <= to[2];
}

function codeMatches(pattern: string | RegExp, code: string): boolean {
  return typeof pattern === 'string' ? pattern === code : pattern.test(code);
}

function httpMatches(match: HttpStatusMatch, status: number): boolean {
  return (
    (!match.status || match.status.includes(status)) &&
    (!match.statusClass || Math.floor(status / 100) === match.statusClass)
  );
}

export function matches(match: DiagnosisMatch, failure: UpstreamFailure): boolean {
  switch (match.kind) {
    case 'reply': {
      if (failure.kind !== 'reply') return false;
      const { reply } = failure;
      const enhanced = reply.enhanced;
      return (
        (!match.codes || match.codes.includes(reply.code)) &&
        (!match.replyClass || Math.floor(reply.code / 100) === match.replyClass) &&
        (!match.enhanced ||
          (enhanced !== null && match.enhanced.some((pattern) => enhancedMatches(pattern, enhanced)))) &&
        (!match.stages || match.stages.includes(failure.stage)) &&
        (!match.text || match.text.test(reply.text))
      );
    }
    case 'network':
    case 'tls':
      if (failure.kind !== match.kind) return false;
      return (
        (!match.codes || match.codes.some((pattern) => codeMatches(pattern, failure.code))) &&
        (!match.stages || match.stages.includes(failure.stage))
      );
    case 'token':
      if (failure.kind !== 'token') return false;
      return (
        (!match.aadsts || match.aadsts.some((number) => failure.aadsts.includes(number))) &&
        httpMatches(match, failure.status) &&
        (!match.errors || match.errors.includes(failure.error)) &&
        (!match.grants || match.grants.includes(failure.grant ?? 'client_credentials'))
      );
    case 'graph':
      if (failure.kind !== 'graph') return false;
      return (
        (!match.codes || match.codes.some((code) => code.toLowerCase() === failure.code.toLowerCase())) &&
        httpMatches(match, failure.status) &&
        (!match.text || match.text.test(failure.message))
      );
    case 'config':
      return failure.kind === 'config' && (!match.codes || match.codes.includes(failure.code));
  }
}

/** The first row that matches, top to bottom; `fallback` when none does. */
export function findRule<Rule extends RuleSource>(
  rules: readonly Rule[],
  fallback: Rule,
  failure: UpstreamFailure,
): Rule {
  return rules.find((rule) => rule.match.some((match) => matches(match, failure))) ?? fallback;
}
