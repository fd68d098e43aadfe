// Small writers for HTTP answers that carry a JSON-RPC error body, so every refusal looks the same.

import type { ServerResponse } from 'node:http';
import { errorResponse, type JsonRpcId } from '../protocol/jsonrpc.ts';
import { encodedLength, encodeMessage } from '../protocol/raw-json.ts';

/** Writes `body` as the JSON answer; returns its text when it was written as one string. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): string | undefined {
  if (res.headersSent) {
    res.end();
    return undefined;
  }
  const encoded = encodeMessage(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': encodedLength(encoded),
    ...headers,
  });
  if (typeof encoded === 'string') {
    res.end(encoded);
    return encoded;
  }
  res.cork();
  for (const part of encoded) res.write(part);
  res.end();
  res.uncork();
  return undefined;
}

/** An HTTP refusal with a JSON-RPC error body (what MCP clients parse to show the user). */
export function sendRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  options: { id?: JsonRpcId | null; headers?: Readonly<Record<string, string>> } = {},
): void {
  sendJson(res, status, errorResponse(options.id ?? null, code, message), options.headers);
}
