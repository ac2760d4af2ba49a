/**
 * The first index of `items` at which `before(item)` is false, found by binary search: the list
 * must hold every item for which it is true before any for which it is false (a sorted list and
 * "sorts before the target" for a lower bound, "sorts before or equal" for an upper bound).
 */
export function partitionPoint<T>(items: readonly T[], before: (item: T) => boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(items[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
