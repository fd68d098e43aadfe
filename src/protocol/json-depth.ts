// How deep a JSON value nests. Every hop that re-serializes a message (JSON.stringify recurses once per
// level) must refuse deep nesting first, whoever sent it: a client's body or a backend's line.

/** Deeper JSON is refused: MCP messages need a few levels. */
export const MAX_JSON_DEPTH = 128;

/**
 * Whether `value`, parsed from `raw`, nests objects/arrays more than `max` levels. A cheap byte
 * pre-check runs first, so the exact walk runs only on text with more than `max` opening brackets.
 */
export function nestsDeeperThan(raw: Buffer, value: unknown, max = MAX_JSON_DEPTH): boolean {
  return mayNestDeeperThan(raw, max) && deeperThan(value, max);
}

/**
 * Nesting deeper than `max` needs more than `max` opening brackets. Brackets inside strings are
 * counted too, which only ever sends a text on to the exact walk.
 */
export function mayNestDeeperThan(raw: Buffer, max = MAX_JSON_DEPTH): boolean {
  if (raw.length <= max) return false;
  return openingBrackets(raw, max + 1) > max;
}

/**
 * How many `{` and `[` `raw` holds (bytes, or characters of a decoded text), counting no further than
 * `atMost` (a text in pieces sums its pieces' counts). indexOf scans natively.
 */
export function openingBrackets(raw: Buffer | string, atMost: number): number {
  let openers = 0;
  for (const bracket of ['{', '[']) {
    for (let at = raw.indexOf(bracket); at !== -1; at = raw.indexOf(bracket, at + 1)) {
      if (++openers >= atMost) return openers;
    }
  }
  return openers;
}

/** Whether `value` nests objects/arrays more than `max` levels; iterative, so any depth is safe to check. */
export function deeperThan(value: unknown, max: number): boolean {
  // Two parallel stacks instead of {node, depth} pairs: this runs on every message.
  const nodes: unknown[] = [value];
  const depths: number[] = [0];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop() as number;
    if (typeof node !== 'object' || node === null) continue;
    if (depth >= max) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}
