/**
 * Settings typed one entry per line (allowed devices, more ports, a sender per device) get their
 * problems from the validator by list index or map key (`allowedClients[1]`, `sender.byClient["x"]`);
 * the admin sees the line instead: "Line 2: ...".
 */
import type { ConfigProblem } from '../../../electron/config/types.ts';
import { problemsAt } from './config-path.ts';

/**
 * `lineOf` turns the part of a problem's path after `base` (`[1]`, `[0].port`, `["10.0.0.5"]`) into a
 * zero-based line, or null when the problem is about the list as a whole.
 */
export function problemsByLine(
  problems: readonly ConfigProblem[],
  base: string,
  lineOf: (rest: string) => number | null,
): ConfigProblem[] {
  return problemsAt(problems, base).map((problem) => {
    const line = lineOf(problem.path.slice(base.length));
    return line === null ? problem : { ...problem, message: `Line ${line + 1}: ${problem.message}` };
  });
}

/** `[2]` and `[2].port`: the list index. */
export function listIndex(rest: string): number | null {
  const match = /^\[(\d+)\]/.exec(rest);
  return match ? Number(match[1]) : null;
}
