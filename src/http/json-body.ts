// Turns a POST body into a JSON value, refusing what would hurt later hops: bytes that are not UTF-8
// (no silent U+FFFD substitution that changes what the client meant) and nesting so deep that
// re-serializing it toward the backend would overflow the stack.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../protocol/json-depth.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import { sendRpcError } from './replies.ts';

/**
 * Refuses (415, answered here) a POST whose body is not plain JSON: another Content-Type, or a
 * Content-Encoding, since a compressed body would be parsed as garbage (RFC 7694). True when refused.
 */
export function refuseNonJsonBody(req: IncomingMessage, res: ServerResponse): boolean {
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== 'application/json') {
    sendRpcError(res, 415, ErrorCode.InvalidRequest, 'Content-Type must be application/json');
    return true;
  }
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') {
    sendRpcError(res, 415, ErrorCode.InvalidRequest, 'Content-Encoding is not supported; send identity', {
      headers: { 'accept-encoding': 'identity' },
    });
    return true;
  }
  return false;
}

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
  if (nestsDeeperThan(body, value)) {
    return {
      ok: false,
      code: ErrorCode.InvalidRequest,
      message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    };
  }
  return { ok: true, value };
}
