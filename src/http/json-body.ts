// Turns a POST body into a JSON value, refusing what would hurt later hops: bytes that are not UTF-8
// (no silent U+FFFD substitution that changes what the client meant) and nesting so deep that
// re-serializing it toward the backend would overflow the stack.

import { ErrorCode } from '../protocol/jsonrpc.ts';

/** Deeper JSON is refused: MCP messages need a few levels, and JSON.stringify recurses per level. */
export const MAX_JSON_DEPTH = 128;

export type JsonBody = { ok: true; value: unknown } | { ok: false; code: number; message: string };

// fatal: invalid UTF-8 throws. A leading BOM is skipped, as RFC 8259 §8.1 allows.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export function parseJsonBody(body: Buffer): JsonBody {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    return { ok: false, code: ErrorCode.ParseError, message: 'body is not valid UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: ErrorCode.ParseError, message: 'body is not valid JSON' };
  }
  if (mayNestDeeperThan(body, MAX_JSON_DEPTH) && deeperThan(value, MAX_JSON_DEPTH)) {
    return {
      ok: false,
      code: ErrorCode.InvalidRequest,
      message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    };
  }
  return { ok: true, value };
}

/**
 * A cheap pre-check on the raw bytes: nesting deeper than `max` needs more than `max` opening brackets.
 * Brackets inside strings are counted too, which only ever sends a body on to the exact walk.
 */
function mayNestDeeperThan(body: Buffer, max: number): boolean {
  if (body.length <= max) return false;
  // indexOf scans natively; at most max + 1 hits per bracket are looked for.
  let openers = 0;
  for (const bracket of [0x7b, 0x5b]) {
    for (let at = body.indexOf(bracket); at !== -1; at = body.indexOf(bracket, at + 1)) {
      if (++openers > max) return true;
    }
  }
  return false;
}

/** Whether `value` nests objects/arrays more than `max` levels; iterative, so any depth is safe to check. */
export function deeperThan(value: unknown, max: number): boolean {
  // Two parallel stacks instead of {node, depth} pairs: this runs on every POST.
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
