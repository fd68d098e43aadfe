// The replica-to-replica hop: a request that reached a replica other than its session's (or its
// backend's) owner is sent on, once, to the owner's peer listener, and the owner's answer — JSON or
// an SSE stream, event ids and all — is piped back unchanged; a WebSocket upgrade is sent on the same
// way and its two connections then piped byte for byte (tunnelOverHop). The hop is signed with the
// cluster's secret (HMAC over method, path, session, origin, time and the client certificate); the
// original Authorization travels with it, and so does a client certificate this replica's TLS layer
// verified (its DER, in a signed header), and so does the user and groups of a caller of this replica's
// SSH attached-mode socket (in a signed header), so the owner authenticates, applies policy, rate limits
// and audit exactly once, mapping the certificate as if the client had presented it there and the socket
// caller as if it had come in on the owner's own socket.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect as connectTls } from 'node:tls';
import { Agent, request } from 'undici';
import { verifiedCertificate, vouchedPeer } from '../auth/client-cert.ts';
import { SOCKET_GROUPS_HEADER, SOCKET_USER_HEADER, socketIdentity } from '../auth/socket-identity.ts';
import { vouchPeer } from '../http/connection-peer.ts';
import { type Refusal, refuseSocket, sendRefusal } from '../http/refusal.ts';
import { sendRpcError } from '../http/replies.ts';
import { isSocketRequest, vouchSocketCaller } from '../http/ssh-socket.ts';
import { ErrorCode, type JsonRpcId } from '../protocol/jsonrpc.ts';
import { signature, signatureHolds } from './signature.ts';

export const PEER_HEADER = 'mcp-relay-peer';
/**
 * The client certificate (base64 DER) the forwarding replica verified. Never copied from a client's
 * request, and read on the peer listener only when the hop's signature, which covers it, holds.
 */
export const CERTIFICATE_HEADER = 'mcp-relay-client-cert';
/**
 * The caller of the forwarding replica's SSH socket, `<user>` or `<user> <group>,<group>` (names have
 * no spaces or commas). Set only for a request that came in on that socket, from the identity its
 * socket headers gave; never copied from a client's request, and read on the peer listener only when
 * the hop's signature, which covers it, holds.
 */
export const SOCKET_CALLER_HEADER = 'mcp-relay-socket-caller';
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
const PARAM_HEADER_PREFIX = 'mcp-param-';
/** What a forwarded WebSocket upgrade keeps besides those: the handshake, answered by the owner. */
const KEPT_UPGRADE_HEADERS = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol'];
/** How long the owner's peer listener gets to accept a hop's or a tunnel's connection. */
const PEER_CONNECT_MS = 10_000;
/**
 * The hop's connections: bounded while connecting only. Once the request went out, the owner's own
 * bounds (its servers' requestTimeout, its streams' keep-alives) end it; a hop timer of its own would
 * cut a slow call the owner is still running (a 2026-07-28 call sends no headers until its answer)
 * and cancel it there.
 */
const hopAgent = new Agent({ connect: { timeout: PEER_CONNECT_MS }, headersTimeout: 0, bodyTimeout: 0 });
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** Requests that came over the hop (verified): never forwarded again, placed where they arrive. */
const forwarded = new WeakSet<IncomingMessage>();

export function cameOverHop(req: IncomingMessage): boolean {
  return forwarded.has(req);
}

/**
 * What the signature covers. A certificate is appended only when the hop carries one, and a socket
 * caller only when it carries one (after the certificate's place, empty without one), so a hop with
 * neither signs as before (replicas of the previous release still agree); neither adding either header
 * to a signed hop nor taking it off one leaves the signature valid (`time` is digits and no header
 * holds a line break, so no part can shift; the caller's part is tagged, so it cannot pose as a
 * certificate).
 */
function signedParts(
  method: string,
  path: string,
  session: string,
  origin: string,
  time: string,
  certificate: string | undefined,
  caller: string | undefined,
): string[] {
  const parts = [method, path, session, origin, time];
  if (caller !== undefined) return [...parts, certificate ?? '', `socket-caller ${caller}`];
  return certificate === undefined ? parts : [...parts, certificate];
}

/** The socket caller of `req` as the hop carries it; undefined unless it came in on this replica's socket. */
function socketCallerOf(req: IncomingMessage): string | undefined {
  if (!isSocketRequest(req)) return undefined;
  const identity = socketIdentity(req.headers);
  if (!identity) return undefined; // refused here already (401): never forwarded
  return identity.groups.length === 0 ? identity.user : `${identity.user} ${identity.groups.join(',')}`;
}

/** The socket headers a hop's caller stands for, as ssh-entry would have sent them; undefined if malformed. */
function headersOfCaller(caller: string): Record<string, string> | undefined {
  const [user = '', groups = '', ...rest] = caller.split(' ');
  if (rest.length > 0) return undefined;
  const headers = { [SOCKET_USER_HEADER]: user, [SOCKET_GROUPS_HEADER]: groups };
  return socketIdentity(headers) ? headers : undefined;
}

/** Checks a request on the peer listener; marks it as forwarded when its signature holds. */
export function verifyHop(req: IncomingMessage, secret: string, now = Date.now()): boolean {
  const value = req.headers[PEER_HEADER];
  if (typeof value !== 'string') return false;
  const [origin = '', time = '', mac = ''] = value.split(' ');
  if (!/^\d+$/.test(time) || Math.abs(now - Number(time)) > MAX_SKEW_MS) return false;
  const session = typeof req.headers['mcp-session-id'] === 'string' ? req.headers['mcp-session-id'] : '';
  const certificate = req.headers[CERTIFICATE_HEADER];
  const caller = req.headers[SOCKET_CALLER_HEADER];
  if (Array.isArray(certificate) || Array.isArray(caller)) return false;
  const parts = signedParts(req.method ?? '', req.url ?? '', session, origin, time, certificate, caller);
  if (!signatureHolds(secret, parts, mac)) return false;
  if (certificate !== undefined) {
    const peer = vouchedPeer(Buffer.from(certificate, 'base64'));
    if (!peer) return false;
    vouchPeer(req, peer);
  }
  if (caller !== undefined) {
    const headers = headersOfCaller(caller);
    if (!headers) return false;
    vouchSocketCaller(req, headers);
  }
  forwarded.add(req);
  return true;
}

/** Where the hop goes and how it is signed. */
export interface HopTarget {
  peerUrl: string;
  /** This replica's id, named in the signature. */
  origin: string;
  secret: string;
}

/** The owner of a backend being placed is gone: its ownership lapses within seconds, then it is placed again. */
export const OWNER_GONE: Refusal = {
  status: 503,
  code: ErrorCode.BackendUnavailable,
  message: 'the replica that ran this server for you is gone; it is placed again within seconds, try again',
  headers: { 'retry-after': '3' },
};

/**
 * The owner could not be reached (no connection was made), or a request that runs nothing (a GET's
 * stream, a DELETE) got no answer: nothing ran there, so trying again is safe.
 */
export const OWNER_SILENT: Refusal = {
  status: 503,
  code: ErrorCode.BackendUnavailable,
  message: 'the replica that owns this session did not answer; try again',
  headers: { 'retry-after': '1' },
};

/**
 * A POST reached the owner and the connection broke before its answer (the owner died, the network
 * cut): it may have run there. 502, not 503, and no Retry-After: `connect` reads a 503 as refused at
 * the door and sends the message again, but a 502 as "may have run" (never re-sent into another
 * session), as a backend that dies mid-call answers (-32000, "may have run").
 */
export const OWNER_LOST: Refusal = {
  status: 502,
  code: ErrorCode.BackendUnavailable,
  message:
    'the replica that owns this session stopped answering after the request was sent: the outcome is unknown and it may have run; it was not retried',
};

/**
 * Error codes of a hop that made no connection, so the owner cannot have seen the request. Anything
 * else (a reset, `other side closed`, a timeout after the request went out) may come after it ran.
 */
const NOT_CONNECTED_CODES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  // An https peer URL whose certificate is not trusted: refused at the handshake.
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The failure's refusal when the owner was not refused outright: SILENT if nothing can have run, else LOST. */
function unansweredRefusal(req: IncomingMessage, code: string | undefined): Refusal {
  if (code !== undefined && NOT_CONNECTED_CODES.has(code)) return OWNER_SILENT;
  // A GET opens or resumes a stream and a DELETE ends a session: neither runs a tool, so both may go again.
  return req.method === 'POST' ? OWNER_LOST : OWNER_SILENT;
}

/** The JSON-RPC id of a POST's body, when it was read into a buffer and names one (else null). */
function requestIdOf(body: Buffer | Readable | undefined): JsonRpcId | null {
  if (!Buffer.isBuffer(body)) return null;
  try {
    const id = (JSON.parse(body.toString('utf8')) as { id?: unknown } | null)?.id;
    return typeof id === 'string' || typeof id === 'number' ? id : null;
  } catch {
    return null;
  }
}

/** The headers `req` keeps on the hop (`also`: more of its own), and the hop's signature. */
function hopHeaders(
  req: IncomingMessage,
  target: HopTarget,
  also: readonly string[] = [],
): Record<string, string> {
  const path = req.url ?? '/';
  const time = String(Date.now());
  const session = typeof req.headers['mcp-session-id'] === 'string' ? req.headers['mcp-session-id'] : '';
  const headers: Record<string, string> = {};
  for (const name of [...KEPT_REQUEST_HEADERS, ...also]) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  // 2026-07-28 Mcp-Param-* headers: the owner checks them against the arguments they mirror.
  for (const [name, value] of Object.entries(req.headers))
    if (name.startsWith(PARAM_HEADER_PREFIX) && typeof value === 'string') headers[name] = value;
  // The client's own copy of the header is not among those kept: only a certificate verified here travels.
  const certificate = verifiedCertificate(req.socket)?.toString('base64');
  if (certificate !== undefined) headers[CERTIFICATE_HEADER] = certificate;
  // Likewise the socket caller: named by this replica's socket, never by a header a TCP client sent.
  const caller = socketCallerOf(req);
  if (caller !== undefined) headers[SOCKET_CALLER_HEADER] = caller;
  const parts = signedParts(req.method ?? 'GET', path, session, target.origin, time, certificate, caller);
  headers[PEER_HEADER] = `${target.origin} ${time} ${signature(target.secret, parts)}`;
  return headers;
}

/**
 * Sends `req` (whose body, if it had one, was read into `body`, or is streamed from it) to the peer at
 * `peerUrl` and pipes the answer into `res`. A peer that cannot be reached gets the client a 503 with
 * Retry-After (the request never ran there), or 404 when the connection was refused (the owner is
 * gone, and its sessions with it); a POST whose connection broke after it was sent gets 502 "may have
 * run" (OWNER_LOST), never an invitation to send it again.
 */
export async function forwardOverHop(
  req: IncomingMessage,
  res: ServerResponse,
  options: HopTarget & {
    body?: Buffer | Readable;
    /** A placement (not a session's request): a gone owner means try again shortly (its ownership lapses), not 404. */
    placing?: boolean;
    /** What the client is told when the peer refused the connection (it is gone), instead of 404 or 503. */
    gone?: (res: ServerResponse) => void;
  },
): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  let answer: Awaited<ReturnType<typeof request>>;
  try {
    answer = await request(new URL(req.url ?? '/', options.peerUrl), {
      method: (req.method ?? 'GET') as 'GET',
      headers: hopHeaders(req, options),
      ...(options.body === undefined ? {} : { body: options.body }),
      signal: abort.signal,
      dispatcher: hopAgent,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (error) {
    if (res.headersSent || res.destroyed) return;
    const code = (error as { code?: string }).code;
    const refused = code === 'ECONNREFUSED';
    if (refused && options.gone) options.gone(res);
    else if (refused && !options.placing)
      sendRpcError(
        res,
        404,
        ErrorCode.SessionNotFound,
        'session not found; initialize a new session (its replica is gone)',
      );
    else if (refused) sendRefusal(res, OWNER_GONE);
    else {
      const refusal = unansweredRefusal(req, code);
      sendRpcError(res, refusal.status, refusal.code, refusal.message, {
        ...(refusal === OWNER_LOST ? { id: requestIdOf(options.body) } : {}),
        ...(refusal.headers ? { headers: refusal.headers } : {}),
      });
    }
    return;
  }
  const responseHeaders: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value !== undefined && !DROPPED_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value;
  }
  res.writeHead(answer.statusCode, responseHeaders);
  res.flushHeaders();
  try {
    // Backpressure both ways, and a client gone while its writes wait to drain ends it too: the owner's
    // body is destroyed (its connection let go of) and this returns, where waiting for 'drain' never would.
    await pipeline(answer.body, res);
  } catch {
    res.destroy();
    answer.body.destroy();
  }
}

/**
 * Sends an upgrade request (a WebSocket handshake that places a backend) to the peer at `peerUrl`, then
 * pipes the two connections byte for byte: the owner answers the handshake (or refuses it) and serves
 * the session; this replica only carries its frames. A peer that cannot be reached gets the client a
 * 503 with Retry-After, and one that answers 503 itself (it no longer owns the backend) is passed on;
 * `onfailed` hears either, so a stale placement is forgotten.
 */
export function tunnelOverHop(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: HopTarget & { onfailed?: () => void },
): void {
  const url = new URL(options.peerUrl);
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const upstream: Socket =
    url.protocol === 'https:'
      ? connectTls({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}) })
      : connectTcp(port, host);
  const ready = url.protocol === 'https:' ? 'secureConnect' : 'connect';
  let connected = false;
  upstream.setTimeout(PEER_CONNECT_MS, () => upstream.destroy(new Error('timed out')));
  upstream.once(ready, () => {
    connected = true;
    upstream.setTimeout(0);
    const headers = hopHeaders(req, options, KEPT_UPGRADE_HEADERS);
    // The front checked the handshake (ws-front.ts handshakeRefusal): a GET upgrading to websocket.
    const lines = [`GET ${req.url ?? '/'} HTTP/1.1`, 'connection: Upgrade', 'upgrade: websocket'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.once('data', (chunk: Buffer) => {
      if (/^HTTP\/1\.[01] 503 /.test(chunk.toString('latin1', 0, 13))) options.onfailed?.();
    });
    socket.pipe(upstream);
    upstream.pipe(socket);
  });
  upstream.on('error', (error: Error & { code?: string }) => {
    if (connected) return;
    options.onfailed?.();
    refuseSocket(socket, error.code === 'ECONNREFUSED' ? OWNER_GONE : OWNER_SILENT);
  });
  upstream.on('close', (hadError) => {
    if (connected) closeAfter(socket, hadError);
  });
  socket.on('close', (hadError: boolean) => closeAfter(upstream, hadError));
}

/**
 * One side of a tunnel closed: the other is cut at once after an error, else ended (what it still holds,
 * a WebSocket close frame say, is written first) and cut if its peer has not closed within a second.
 */
function closeAfter(other: Duplex, hadError: boolean): void {
  if (hadError || other.destroyed) {
    other.destroy();
    return;
  }
  other.end();
  setTimeout(() => other.destroy(), 1_000).unref();
}
