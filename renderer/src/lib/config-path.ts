/**
 * Reading and writing a draft config by the field paths that validation reports (`upstream.port`,
 * `upstream.oauth2.tenant`), so each input shows exactly the problems of its own field.
 */
import type { ConfigProblem } from '../../../electron/config/types.ts';

export type Draft = Record<string, unknown>;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function getPath(draft: Draft, path: string): unknown {
  let node: unknown = draft;
  for (const key of path.split('.')) {
    if (!isObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

export function setPath(draft: Draft, path: string, value: unknown): void {
  const keys = path.split('.');
  let node: Record<string, unknown> = draft;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (!isObject(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

/** Problems of the field at `path`, including its list items (`allowedClients[2]`) and sub-keys. */
export function problemsAt(problems: readonly ConfigProblem[], path: string): ConfigProblem[] {
  return problems.filter(
    (p) => p.path === path || p.path.startsWith(`${path}[`) || p.path.startsWith(`${path}.`),
  );
}

/** A deep copy that a Svelte proxy can own. */
export function cloneDraft<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
