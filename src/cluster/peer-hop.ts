// The replica-to-replica hop: a request that reached a replica other than its session's (or its
// backend's) owner is sent on, once, to the owner's peer listener, and the owner's answer — JSON or
// an SSE stream, event ids and all — is piped back unchanged. The hop is signed with the cluster's
// secret (HMAC over method, path, session, origin and time); the original Authorization travels with
// it, so the owner authenticates, applies policy, rate limits and audit exactly once.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { sendRpcError } from '../http/replies.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';

export const PEER_HEADER = 'mcp-relay-peer';
/** A signature older or newer than this is refused (replay, clock skew). */
const MAX_SKEW_MS = 30_000;
/** Headers a forwarded request keeps (the rest are the hop's own or connection-level). */
const KEPT_REQUEST_HEADERS = [
  'authorization',
  'content-type',
  'accept',
  'host',
  'origin',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
];
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** Requests that came over the hop (verified): never forwarded again, placed where they arrive. */
const forwarded = new WeakSet<IncomingMessage>();

export function cameOverHop(req: IncomingMessage): boolean {
  return forwarded.has(req);
}

function signature(secret: string, parts: readonly string[]): string {
  return createHmac('sha256', secret).update(parts.join('\n')).digest('base64url');
}

function signedParts(method: string, path: string, session: string, origin: string, time: string): string[] {
  return [method, path, session, origin, time];
}

/** Checks a request on the peer listener; marks it as forwarded when its signature holds. */
export function verifyHop(req: IncomingMessage, secret: string, now = Date.now()): boolean {
  const value = req.headers[PEER_HEADER];
  if (typeof value !== 'string') return false;
  const [origin = '', time = '', mac = ''] = value.split(' ');
  if (!/^\d+$/.test(time) || Math.abs(now - Number(time)) > MAX_SKEW_MS) return false;
  const session = typeof req.headers['mcp-session-id'] === 'string' ? req.headers['mcp-session-id'] : '';
  const expected = Buffer.from(
    signature(secret, signedParts(req.method ?? '', req.url ?? '', session, origin, time)),
  );
  const given = Buffer.from(mac);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  forwarded.add(req);
  return true;
}

/**
 * Sends `req` (whose body, if it had one, was read into `body`) to the peer at `peerUrl` and pipes the
 * answer into `res`. A peer that cannot be reached gets the client a 503 with Retry-After (the request
 * never ran there), or 404 when the connection was refused (the owner is gone, and its sessions with it).
 */
export async function forwardOverHop(
  req: IncomingMessage,
  res: ServerResponse,
  options: {
    peerUrl: string;
    origin: string;
    secret: string;
    body?: Buffer;
    /** A placement (not a session's request): a gone owner means try again shortly (its ownership lapses), not 404. */
    placing?: boolean;
  },
): Promise<void> {
  const path = req.url ?? '/';
  const time = String(Date.now());
  const session = typeof req.headers['mcp-session-id'] === 'string' ? req.headers['mcp-session-id'] : '';
  const method = req.method ?? 'GET';
  const headers: Record<string, string> = {};
  for (const name of KEPT_REQUEST_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  headers[PEER_HEADER] =
    `${options.origin} ${time} ${signature(options.secret, signedParts(method, path, session, options.origin, time))}`;
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  let answer: Awaited<ReturnType<typeof request>>;
  try {
    answer = await request(new URL(path, options.peerUrl), {
      method: method as 'GET',
      headers,
      ...(options.body === undefined ? {} : { body: options.body }),
      signal: abort.signal,
      headersTimeout: 30_000,
      bodyTimeout: 0,
    });
  } catch (error) {
    if (res.headersSent || res.destroyed) return;
    const refused = (error as { code?: string }).code === 'ECONNREFUSED';
    if (refused && options.placing) {
      sendRpcError(
        res,
        503,
        ErrorCode.BackendUnavailable,
        'the replica that ran this server for you is gone; it is placed again within seconds, try again',
        { headers: { 'retry-after': '3' } },
      );
      return;
    }
    if (refused) {
      sendRpcError(
        res,
        404,
        ErrorCode.SessionNotFound,
        'session not found; initialize a new session (its replica is gone)',
      );
      return;
    }
    sendRpcError(
      res,
      503,
      ErrorCode.BackendUnavailable,
      'the replica that owns this session did not answer; try again',
      {
        headers: { 'retry-after': '1' },
      },
    );
    return;
  }
  const responseHeaders: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value !== undefined && !DROPPED_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value;
  }
  res.writeHead(answer.statusCode, responseHeaders);
  res.flushHeaders();
  try {
    for await (const chunk of answer.body) {
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      if (res.destroyed) break;
    }
    res.end();
  } catch {
    res.destroy();
  }
}
