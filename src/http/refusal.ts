// A refusal at the HTTP edge (status, JSON-RPC code, message, headers) as data, so a guard only decides
// and the request kind decides how it is written: to a ServerResponse, or to the raw socket of an
// upgrade request (WebSocket), which has no response object.

import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorResponse } from '../protocol/jsonrpc.ts';
import { sendRpcError } from './replies.ts';

export interface Refusal {
  status: number;
  /** The JSON-RPC error code of the body (what MCP clients parse to show the user). */
  code: number;
  message: string;
  headers?: Readonly<Record<string, string>>;
}

/** Answers `res` with the refusal: its status and headers, and a JSON-RPC error body. */
export function sendRefusal(res: ServerResponse, refusal: Refusal): void {
  sendRpcError(res, refusal.status, refusal.code, refusal.message, { headers: refusal.headers });
}

/**
 * Answers an upgrade request on its socket with a minimal HTTP/1.1 response carrying the same body,
 * then closes it: nothing more may be read from a connection whose upgrade was refused.
 */
export function refuseSocket(socket: Duplex, refusal: Refusal): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(errorResponse(null, refusal.code, refusal.message));
  const lines = [
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? 'Error'}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
  ];
  for (const [name, value] of Object.entries(refusal.headers ?? {})) {
    // Our own header values, but a line break must never split the response.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) continue;
    lines.push(`${name}: ${value}`);
  }
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
