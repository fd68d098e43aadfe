// A result passed through as the backend's bytes. Parsing a 50 MB tool result and serializing it again
// blocks the event loop for seconds (every other user waits); the gateway only needs its id. A RawJson
// stands in for such a result: writers send its bytes as they came from the pipe (no copy, no
// re-encoding), and anything that stringifies it the ordinary way still gets the right answer (toJSON
// parses it), only slowly.

import type { JsonRpcId, JsonRpcMessage } from './jsonrpc.ts';

export class RawJson {
  /**
   * Stands where a result object stands (`JsonRpcResultResponse.result`). Its fields read as undefined:
   * only results of methods whose content the gateway never inspects are passed through (see the
   * multiplexer), and a reader that needs content calls `toJSON()`.
   */
  [field: string]: unknown;
  /** The UTF-8 text of one JSON object, a result's value exactly as the backend wrote it, in pieces. */
  readonly parts: readonly Buffer[];
  readonly byteLength: number;

  constructor(parts: readonly Buffer[]) {
    this.parts = parts;
    this.byteLength = parts.reduce((sum, part) => sum + part.length, 0);
  }

  /** The last `count` bytes as text, for checks that need no parse (`"isError":true}` at the end). */
  tail(count: number): string {
    return lastBytes(this.parts, count).toString('latin1');
  }

  toJSON(): unknown {
    return JSON.parse(Buffer.concat(this.parts).toString('utf8'));
  }
}

/** A response whose result is passed through as bytes. */
export interface RawResponse {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: RawJson;
}

/** The first `count` bytes of `parts` (fewer if they hold fewer). */
export function firstBytes(parts: readonly Buffer[], count: number): Buffer {
  const taken: Buffer[] = [];
  let length = 0;
  for (const part of parts) {
    if (length >= count) break;
    taken.push(part.subarray(0, count - length));
    length += Math.min(part.length, count - length);
  }
  return Buffer.concat(taken);
}

/** The last `count` bytes of `parts`. */
export function lastBytes(parts: readonly Buffer[], count: number): Buffer {
  const taken: Buffer[] = [];
  let length = 0;
  for (let index = parts.length - 1; index >= 0 && length < count; index--) {
    const part = parts[index] as Buffer;
    taken.unshift(part.subarray(Math.max(0, part.length - (count - length))));
    length += Math.min(part.length, count - length);
  }
  return Buffer.concat(taken);
}

function rawResultOf(message: JsonRpcMessage | unknown): RawJson | undefined {
  const result = (message as { result?: unknown }).result;
  return result instanceof RawJson ? result : undefined;
}

/**
 * The JSON text of a message: a string, or, for a passed-through result, the pieces to write one after
 * another (the result's own bytes are never copied).
 */
export function encodeMessage(message: JsonRpcMessage | unknown): string | Buffer[] {
  const raw = rawResultOf(message);
  if (!raw) return JSON.stringify(message);
  const id = JSON.stringify((message as { id: JsonRpcId }).id);
  return [Buffer.from(`{"jsonrpc":"2.0","id":${id},"result":`), ...raw.parts, Buffer.from('}')];
}

/** The size of an encoded message. */
export function encodedLength(encoded: string | readonly Buffer[]): number {
  return typeof encoded === 'string'
    ? Buffer.byteLength(encoded)
    : encoded.reduce((sum, part) => sum + part.length, 0);
}

/** The size of a message's JSON text, without building it for a passed-through result. */
export function messageByteLength(message: JsonRpcMessage): number {
  const raw = rawResultOf(message);
  if (raw) return raw.byteLength + 40;
  return Buffer.byteLength(JSON.stringify(message));
}
