/**
 * A page of a list that changes while it is shown (the queue shrinks as mail goes out): the page
 * asked for, or the last one that still exists, and its items. `page` is zero-based.
 */
export function pageOf<T>(items: readonly T[], page: number, size: number): { page: number; items: T[] } {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const current = Math.min(page, pages - 1);
  return { page: current, items: items.slice(current * size, (current + 1) * size) };
}
