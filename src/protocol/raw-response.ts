// Recognizes a large JSON-RPC response without parsing it (a backend's line in the gateway, a JSON reply
// body in `connect`): its top-level id and the bytes of its result, read from the text's first and last
// bytes (`{"jsonrpc":"2.0","id":7,"result":…}` as most SDKs and the gateway write it,
// `{"result":…,"jsonrpc":"2.0","id":7}` as the TypeScript SDK does). The text stays in the pieces it
// arrived in. Only certain cases pass; anything else takes the ordinary parse.

import { isUtf8 } from 'node:buffer';
import { MAX_JSON_DEPTH, openingBrackets } from './json-depth.ts';
import { firstBytes, lastBytes, RawJson, type RawResponse } from './raw-json.ts';

/** Lines from this size on are passed through when they are plainly a response. */
export const RAW_PASS_THROUGH_BYTES = 256 * 1024;
const EDGE = 256;

const ID_FIRST = /^\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(\d+)\s*,\s*"result"\s*:\s*/;
const RESULT_FIRST = /^\{\s*"result"\s*:\s*/;
const ID_LAST = /\}\s*,\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(\d+)\s*\}\s*$/;
const CLOSE = /\}\s*\}\s*$/;

/** `parts` are one line's bytes in order (without the newline). */
export function rawResponse(parts: readonly Buffer[], length: number): RawResponse | undefined {
  const edges = responseEdges(
    firstBytes(parts, EDGE).toString('latin1'),
    lastBytes(parts, EDGE).toString('latin1'),
  );
  if (!edges) return undefined;
  const { id, start, after } = edges;
  const result = slice(parts, start, length - after);
  if (firstBytes(result, 1)[0] !== 0x7b || lastBytes(result, 1)[0] !== 0x7d) return undefined;
  // What goes out as is must stay one line (an SSE data line, a stdio message), be UTF-8, and not nest
  // past what clients parse; text that fails any of these takes the ordinary path (and its errors).
  if (!plainText(parts)) return undefined;
  return { jsonrpc: '2.0', id, result: new RawJson(result) };
}

/**
 * The same recognition on decoded text (an SSE event's data in `connect`): the response's id, or
 * undefined when the text is not plainly one response line that can go out as it is.
 */
export function plainResponseId(text: string): number | undefined {
  const edges = responseEdges(text.slice(0, EDGE), text.slice(-EDGE));
  if (!edges) return undefined;
  if (text[edges.start] !== '{' || text[text.length - edges.after - 1] !== '}') return undefined;
  if (text.includes('\n') || text.includes('\r')) return undefined;
  return openingBrackets(text, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH ? undefined : edges.id;
}

/**
 * The id, where the result starts, and how many characters follow the result's closing brace, read
 * from a text's first and last characters; undefined unless the text is plainly a response.
 */
function responseEdges(head: string, tail: string): { id: number; start: number; after: number } | undefined {
  const idFirst = ID_FIRST.exec(head);
  if (idFirst) {
    const close = CLOSE.exec(tail);
    if (!close) return undefined;
    return { id: Number(idFirst[1]), start: idFirst[0].length, after: tail.length - close.index - 1 };
  }
  const resultFirst = RESULT_FIRST.exec(head);
  const idLast = ID_LAST.exec(tail);
  if (!resultFirst || !idLast) return undefined;
  return { id: Number(idLast[1]), start: resultFirst[0].length, after: tail.length - idLast.index - 1 };
}

/** The bytes from `start` to `end` of `parts`, as views into them. */
function slice(parts: readonly Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const part of parts) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, part.length);
    if (from < to) out.push(part.subarray(from, to));
    offset += part.length;
  }
  return out;
}

/**
 * No CR or LF (either would end the line), no more opening brackets than the depth limit allows
 * (a cheap bound on nesting), and valid UTF-8 across piece boundaries.
 */
function plainText(parts: readonly Buffer[]): boolean {
  let brackets = 0;
  let carry = Buffer.alloc(0);
  for (const part of parts) {
    if (part.includes(13) || part.includes(10)) return false;
    brackets += openingBrackets(part, MAX_JSON_DEPTH + 1 - brackets);
    if (brackets > MAX_JSON_DEPTH) return false;
    const bytes = carry.length > 0 ? Buffer.concat([carry, part]) : part;
    const complete = completeUtf8Length(bytes);
    if (!isUtf8(bytes.subarray(0, complete))) return false;
    carry = Buffer.from(bytes.subarray(complete));
  }
  return carry.length === 0;
}

/** How many leading bytes end on a character boundary (a sequence cut at the end is left out). */
function completeUtf8Length(bytes: Buffer): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    if (byte < 0x80) return bytes.length;
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return needed > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}
