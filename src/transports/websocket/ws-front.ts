// The WebSocket front: `/ws/<server>` (and `/ws` when the gateway has one server). An upgrade passes
// the same guards and authentication as `/mcp`, then opens one MCP session through the same
// SessionManager (policy, rate limits, per-user caps, audit), refused as an HTTP status before the
// handshake; after it, one socket is one session (socket-session.ts) until either side closes it. In a
// cluster, an upgrade for a backend another replica owns is tunnelled to it (cluster/routing.ts).

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Identify } from '../../auth/identify.ts';
import type { ClusterRouting } from '../../cluster/routing.ts';
import type { RelayConfig } from '../../config/schema.ts';
import { errorText } from '../../errors.ts';
import { connectionPeer } from '../../http/connection-peer.ts';
import { type Refusal, refuseSocket } from '../../http/refusal.ts';
import { type EdgeRefusal, edgeRefusal } from '../../http/refusal-log.ts';
import type { Guard } from '../../http/request-guards.ts';
import { type Matcher, param } from '../../http/routes.ts';
import type { Logger } from '../../log.ts';
import { ErrorCode } from '../../protocol/jsonrpc.ts';
import type { SessionManager } from '../../sessions/manager.ts';
import type { Session } from '../../sessions/session.ts';
import type { Identity } from '../../sessions/types.ts';
import { sessionRefusal, unavailable } from '../session-refusal.ts';
import { SocketSession } from './socket-session.ts';

/** The subprotocol MCP clients offer (the SDK's WebSocketClientTransport); a client offering none is served too. */
export const MCP_SUBPROTOCOL = 'mcp';
export const WS_PATH = '/ws';

export interface WebSocketFrontOptions {
  /** The running config (a live view): limits and keep-alive are read when a socket opens. */
  config: RelayConfig;
  sessions: SessionManager;
  log: Logger;
  /** Checks before anything else (duplicate headers, Host, Origin), as the `/mcp` row's guards. */
  guards: readonly Guard[];
  /** Hears an upgrade refused by a guard or by authentication (the gateway's refusal log). */
  onRefused?: (refusal: EdgeRefusal) => void;
  identify: Identify;
  /** The server a path's name (or its absence) stands for, as for `/mcp`; null when none. */
  serverNamed(name: string | undefined): string | null;
  /** In a cluster: an upgrade for a backend another replica owns is tunnelled there. */
  routing?: ClusterRouting;
}

const NOT_FOUND: Refusal = {
  status: 404,
  code: ErrorCode.InvalidRequest,
  message: 'no such MCP server on this gateway',
};

export class WebSocketFront {
  readonly #options: WebSocketFrontOptions;
  readonly #match: Matcher;
  readonly #server: WebSocketServer;
  readonly #open = new Set<SocketSession>();
  #pinger: NodeJS.Timeout | undefined;

  constructor(options: WebSocketFrontOptions) {
    this.#options = options;
    this.#match = param(`${WS_PATH}/:server`, options.serverNamed);
    this.#server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      // One JSON-RPC message per frame, bounded as a POST body is.
      maxPayload: options.config.limits.maxBodyBytes,
      perMessageDeflate: false,
      // The offer was checked before the session was made (#subprotocolRefusal): `mcp` or nothing.
      handleProtocols: (offered) => (offered.has(MCP_SUBPROTOCOL) ? MCP_SUBPROTOCOL : false),
    });
  }

  /** Whether an upgrade's path is this front's (`/ws`, `/ws/…`). */
  serves(url: string | undefined): boolean {
    return this.#match(pathOf(url)) !== undefined;
  }

  /** Open MCP sessions over WebSocket (for /healthz). */
  get openSockets(): number {
    return this.#open.size;
  }

  /** An upgrade request below `/ws`: refused with an HTTP status, or a session on a WebSocket. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    this.#upgrade(req, socket, head).catch((error: unknown) => {
      this.#options.log.error({ err: errorText(error) }, 'WebSocket upgrade failed');
      refuseSocket(socket, { status: 500, code: ErrorCode.InternalError, message: 'internal error' });
    });
  }

  /**
   * Shutdown, after the sessions ended (their sockets were sent 1001): waits up to a second for those
   * close handshakes, then cuts what is left, and the pings stop. Idempotent.
   */
  async close(): Promise<void> {
    clearInterval(this.#pinger);
    this.#pinger = undefined;
    const deadline = Date.now() + 1_000;
    while (this.#open.size > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    for (const open of this.#open) open.terminate();
    this.#open.clear();
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { guards, identify, onRefused } = this.#options;
    for (const guard of guards) {
      const refusal = guard(req);
      if (refusal !== undefined) {
        onRefused?.(edgeRefusal(req, refusal.status, refusal.message));
        return refuseSocket(socket, refusal);
      }
    }
    const path = pathOf(req.url);
    const server = this.#match(path);
    if (server === undefined) return refuseSocket(socket, NOT_FOUND);
    const outcome = identify({
      viaSocket: false,
      headers: req.headers,
      peer: connectionPeer(req),
      authorization: req.headers.authorization,
      server,
      // The same OAuth resource as the server's /mcp endpoint: one token serves both fronts.
      path: path.replace(/^\/ws/, '/mcp'),
    });
    const auth = outcome instanceof Promise ? await outcome : outcome;
    if (!auth.ok) {
      onRefused?.(edgeRefusal(req, auth.status, auth.message));
      return refuseSocket(socket, {
        status: auth.status,
        code: ErrorCode.Refused,
        message: auth.message,
        headers: auth.headers,
      });
    }
    if (server === null) return refuseSocket(socket, NOT_FOUND);
    const handshake = handshakeRefusal(req);
    if (handshake) return refuseSocket(socket, handshake);
    if (await this.#options.routing?.upgradeElsewhere(req, socket, head, server, auth.identity.user)) return;
    const session = await this.#createSession(socket, server, auth.identity);
    if (!session) return;
    if (socket.destroyed) {
      await session.close('client left during the WebSocket handshake');
      return;
    }
    let upgraded = false;
    this.#server.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      this.#attach(ws, session);
    });
    // ws completes synchronously here (no compression, no verifyClient), or has destroyed the socket.
    if (!upgraded) await session.close('WebSocket handshake failed');
  }

  /** The session the socket will carry, or the refusal already answered (403, 429, 503). */
  async #createSession(socket: Duplex, server: string, identity: Identity): Promise<Session | undefined> {
    let created: Awaited<ReturnType<SessionManager['create']>>;
    try {
      created = await this.#options.sessions.create(server, identity, {}, { resends: false });
    } catch (error) {
      this.#options.log.error({ err: errorText(error), server }, 'could not start a session');
      refuseSocket(socket, unavailable('the session could not be started; see the gateway log', 30));
      return undefined;
    }
    if (created.ok) return created.session;
    // No room for another backend is the expected refusal, logged as before.
    if (created.reason === 'capacity')
      this.#options.log.error({ err: created.message, server }, 'could not start a session');
    refuseSocket(socket, sessionRefusal(created));
    return undefined;
  }

  #attach(ws: WebSocket, session: Session): void {
    const { config, sessions, log } = this.#options;
    const expiresAt = acceptedUntil(session.identity, config);
    const open = new SocketSession(ws, session, {
      bufferBytes: config.limits.streamBufferBytes,
      draining: () => sessions.draining,
      log,
      ...(expiresAt === undefined ? {} : { expiresAt }),
    });
    this.#open.add(open);
    ws.once('close', () => {
      this.#open.delete(open);
      if (this.#open.size === 0) {
        clearInterval(this.#pinger);
        this.#pinger = undefined;
      }
    });
    this.#startPings();
  }

  /**
   * One timer for every socket, at the SSE keep-alive interval: each is pinged, one that has not
   * answered our pings for two intervals is cut (its session ends with it), and one that holds more
   * than limits.streamBufferBytes unsent, no less than at the last tick, is closed as a peer that does
   * not read (SocketSession.closeIfStalled).
   */
  #startPings(): void {
    const interval = this.#options.config.sse.keepAlive;
    if (this.#pinger !== undefined || interval <= 0) return;
    this.#pinger = setInterval(() => {
      const silentSince = Date.now() - 2 * interval;
      for (const open of this.#open) {
        if (open.lastPong < silentSince) {
          this.#options.log.info({ session: open.session.id }, 'WebSocket peer stopped answering pings; cut');
          open.terminate();
        } else if (!open.closeIfStalled()) open.ping();
      }
    }, interval);
    this.#pinger.unref();
  }
}

/**
 * Until when the upgrade's credential would still be accepted on a request: an API key's expiry, an
 * OAuth token's `exp` plus the clock tolerance its check allows (so a socket never outlives what a
 * POST with the same token could do, nor ends before it); undefined for one that does not expire.
 */
function acceptedUntil(identity: Identity, config: RelayConfig): number | undefined {
  if (identity.expiresAt === undefined) return undefined;
  const tolerance = identity.method === 'oidc' ? (config.auth.oidc?.clockTolerance ?? 0) : 0;
  return identity.expiresAt + tolerance;
}

function pathOf(url: string | undefined): string {
  const value = url ?? '/';
  const query = value.indexOf('?');
  return query === -1 ? value : value.slice(0, query);
}

/**
 * What `ws` would refuse with a bare 400 after the session was made, refused before it with a reason:
 * not a WebSocket handshake, a version other than 13, or subprotocols offered without `mcp`.
 */
export function handshakeRefusal(req: Pick<IncomingMessage, 'method' | 'headers'>): Refusal | undefined {
  const bad = (status: number, message: string, headers?: Record<string, string>): Refusal => ({
    status,
    code: ErrorCode.InvalidRequest,
    message,
    ...(headers ? { headers } : {}),
  });
  if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket')
    return bad(400, 'not a WebSocket handshake');
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim()))
    return bad(400, 'missing or invalid Sec-WebSocket-Key');
  const version = req.headers['sec-websocket-version'];
  if (version !== '13')
    return bad(426, 'Sec-WebSocket-Version must be 13', { 'sec-websocket-version': '13' });
  const offered = req.headers['sec-websocket-protocol'];
  if (offered !== undefined) {
    const protocols = offered.split(',').map((protocol) => protocol.trim());
    if (!protocols.includes(MCP_SUBPROTOCOL))
      return bad(400, `subprotocol "${MCP_SUBPROTOCOL}" required when any is offered`);
  }
  return undefined;
}
