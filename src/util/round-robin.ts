// Taking turns: the first item of each list, then the second of each, and so on, each item once. Where
// only the first N of a combined list are kept (a bounded announcement), every list gets its share
// instead of the first lists taking it all.

/** The items of `lists` in turns (first of each, second of each, …); an item seen before is skipped. */
export function roundRobin<T>(lists: readonly (readonly T[])[]): T[] {
  const taken = new Set<T>();
  const longest = Math.max(0, ...lists.map((list) => list.length));
  for (let index = 0; index < longest; index++)
    for (const list of lists) if (index < list.length) taken.add(list[index] as T);
  return [...taken];
}
