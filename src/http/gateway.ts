// `mcp-relay serve`: the HTTP(S) listener, the order of checks on every request
// (host → origin → auth → route), /healthz, and an orderly shutdown.

import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ClientCertificates } from '../auth/client-cert.ts';
import { GatewayAuth } from '../auth/gateway-auth.ts';
import { identifier } from '../auth/identify.ts';
import { BackendLauncher } from '../backends/launcher.ts';
import { type ConfigChange, LiveConfig } from '../config/live.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { BackendPool, CapacityError } from '../mux/pool.ts';
import { Gatekeeper } from '../policy/gatekeeper.ts';
import { RelayError } from '../protocol/errors.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import { SessionManager } from '../sessions/manager.ts';
import { McpEndpoint } from '../transports/streamable-http/endpoint.ts';
import { isLoopbackAddress } from '../util/loopback.ts';
import { VERSION } from '../version.ts';
import { sendJson, sendRpcError } from './replies.ts';
import { duplicatedHeader, hostAllowed, originAllowed } from './request-guards.ts';
import { serverOptions, superviseTls } from './server-options.ts';
import { isSocketRequest, openSshSocket } from './ssh-socket.ts';
import { serveResourceMetadata } from './well-known.ts';

export interface GatewayOptions {
  config: RelayConfig;
  log: Logger;
  /** Environment the backends inherit their allowlisted variables from. */
  env?: NodeJS.ProcessEnv;
}

export interface Gateway {
  /** Starts listening; resolves with the bound TCP address (undefined with `listen: false`: the SSH socket only). */
  listen(): Promise<AddressInfo | undefined>;
  /** The base URL (scheme, host, port) once listening on TCP. */
  readonly url: string;
  /**
   * Stops accepting, refuses new sessions and requests (`503`), lets calls in flight finish for up to
   * `drainMs` (default 0: none), then ends every session (what is left gets an error) and backend. Idempotent.
   */
  close(options?: { drainMs?: number }): Promise<void>;
  /** Applies a new config to the running gateway: what may change live at once, the rest after a restart. */
  reload(next: RelayConfig): ConfigChange;
}

export function createGateway({ config, log, env = process.env }: GatewayOptions): Gateway {
  // listen: false: no TCP listener, the SSH attached-mode socket is the only way in (the schema insists on it).
  const tcp = config.listen === false ? undefined : config.listen;
  const tls = tcp?.tls;
  // The socket's clients (ssh-entry) address the gateway as localhost, so the Host guard stays on.
  const loopback = tcp === undefined || isLoopbackAddress(tcp.host);
  // Client certificates (listen.tls.clientCa) count as authentication too.
  const clientCerts = ClientCertificates.enabled(config) ? new ClientCertificates(config) : undefined;
  // API keys and OAuth; its base URL for OAuth resource identifiers is publicUrl, else where we listen.
  const gatewayAuth = new GatewayAuth(config, log, () => config.publicUrl ?? gatewayUrl());
  const authConfigured = gatewayAuth.configured || clientCerts !== undefined;
  const identify = identifier({ certificates: clientCerts, tokens: gatewayAuth });
  if (tcp && !loopback && !authConfigured) {
    throw new RelayError(
      'LISTEN_REFUSED',
      `refusing to listen on ${tcp.host} without authentication: configure auth.apiKeys, auth.oidc or listen.tls.clientCa, or listen on 127.0.0.1`,
    );
  }
  // Unauthenticated loopback makes every local account user "local". Fine for one person's machine,
  // not next to an SSH socket whose file permissions were chosen to keep other accounts out.
  if (tcp && config.ssh?.mode === 'attached' && !authConfigured && config.auth.none !== true) {
    throw new RelayError(
      'LISTEN_REFUSED',
      `refusing to start: ssh.mode attached without authentication would let every local account in over TCP ${tcp.host}:${tcp.port} as user "local"; set listen: false to serve only the SSH socket, or auth: { none: true } to allow that on purpose`,
    );
  }
  // Policy, limits, origins and audit are read per request from `live`, so a reload applies at once.
  const live = new LiveConfig(config);
  const gatekeeper = new Gatekeeper(config, log);
  live.onChange((next) => {
    gatekeeper.update(next);
    // A user who lost access keeps no session (nor its backend): their client's next request gets 404,
    // and its re-initialize the 403 that explains why.
    void sessions
      .closeWhere((session) => !gatekeeper.allows(session.server, session.identity), 'access withdrawn')
      .then((closed) => {
        if (closed > 0) log.info({ sessions: closed }, 'closed sessions whose user lost access in a reload');
      });
  });
  // A revoked (or edited) API key ends its sessions at once, rather than at their next request.
  gatewayAuth.onKeysChanged(() => {
    void sessions
      .closeWhere((session) => !gatewayAuth.stillValid(session.identity), 'API key revoked or changed')
      .then((closed) => {
        if (closed > 0) log.info({ sessions: closed }, 'closed sessions of revoked or changed API keys');
      });
  });
  const router = new BackendPool(
    config,
    new BackendLauncher(config.servers, log, env, { maxMessageBytes: config.limits.maxBackendMessageBytes }),
    log,
  );
  const sessions = new SessionManager(
    live.view,
    log,
    async (server, session) => {
      try {
        return { ok: true, upstream: await router.attach(server, session, session) };
      } catch (error) {
        // The pool says "no room" by throwing; sessions and fronts see it as a result.
        if (error instanceof CapacityError) return { ok: false, reason: 'capacity', message: error.message };
        throw error;
      }
    },
    gatekeeper,
  );
  const endpoint = new McpEndpoint(live.view, sessions, log);
  const serverNames = Object.keys(config.servers);
  const publicUrl = config.publicUrl ? new URL(config.publicUrl) : undefined;
  const scheme = tls ? 'https' : 'http';
  const startedAt = Date.now();

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      log.error({ err: (error as Error).message, stack: (error as Error).stack }, 'request failed');
      if (!res.headersSent) sendRpcError(res, 500, ErrorCode.InternalError, 'internal error');
      else res.end();
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const duplicate = duplicatedHeader(req.rawHeaders);
    if (duplicate !== undefined) {
      sendRpcError(res, 400, ErrorCode.InvalidRequest, `the ${duplicate} header may appear only once`);
      return;
    }
    if (!hostAllowed(req.headers.host, loopback, publicUrl?.hostname)) {
      sendRpcError(res, 421, ErrorCode.Refused, 'Host header does not name this gateway');
      return;
    }
    if (path === '/healthz') {
      sendHealth(res);
      return;
    }
    if (serveResourceMetadata(req, res, path, gatewayAuth.resource)) return;
    const server = routeServer(path);
    if (server === undefined) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const origin = req.headers.origin;
    if (
      !originAllowed(
        origin,
        `${scheme}://${req.headers.host ?? ''}`,
        live.current.allowedOrigins,
        publicUrl?.origin,
      )
    ) {
      sendRpcError(res, 403, ErrorCode.Refused, 'Origin not allowed');
      return;
    }
    // SSH attached mode: on the gateway's Unix socket, ssh-entry names the user (see ssh-socket.ts).
    const outcome = identify({
      viaSocket: isSocketRequest(req),
      headers: req.headers,
      peer: req.socket,
      authorization: req.headers.authorization,
      server,
      path,
    });
    const auth = outcome instanceof Promise ? await outcome : outcome;
    if (!auth.ok) {
      sendRpcError(res, auth.status, ErrorCode.Refused, auth.message, { headers: auth.headers });
      return;
    }
    if (server === null || !Object.hasOwn(config.servers, server)) {
      sendRpcError(res, 404, ErrorCode.InvalidRequest, 'no such MCP server on this gateway');
      return;
    }
    await endpoint.handle(req, res, server, auth.identity);
  }

  /**
   * 200 with `ok`, or `degraded` naming the unhealthy (crash-looping) servers: the gateway still serves
   * the others, so a load balancer must keep it (every replica runs the same broken server) while a
   * monitor alerts. 503 `stopping` once shutdown began, so a load balancer takes it out of rotation.
   */
  function sendHealth(res: ServerResponse): void {
    const servers = router.stats();
    const unhealthy = Object.keys(servers).filter((name) => servers[name]?.healthy === false);
    const status = closing ? 'stopping' : unhealthy.length > 0 ? 'degraded' : 'ok';
    sendJson(
      res,
      closing ? 503 : 200,
      {
        status,
        ...(unhealthy.length > 0 ? { unhealthy } : {}),
        version: VERSION,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        sessions: sessions.size,
        backends: router.size,
        servers,
      },
      closing ? { connection: 'close' } : {},
    );
  }

  /** "/mcp/<name>" → name; "/mcp" → the only server; null for an /mcp path naming nothing; undefined elsewhere. */
  function routeServer(path: string): string | null | undefined {
    if (path === '/mcp' || path === '/mcp/')
      return serverNames.length === 1 ? (serverNames[0] ?? null) : null;
    if (!path.startsWith('/mcp/')) return undefined;
    let name: string;
    try {
      name = decodeURIComponent(path.slice('/mcp/'.length).replace(/\/$/, ''));
    } catch {
      return null; // malformed %-escapes name no server
    }
    // Own keys only: "constructor" or "__proto__" must not name a server.
    return Object.hasOwn(config.servers, name) ? name : null;
  }

  // Slow (slowloris) clients are cut off by limits.headersTimeout/receiveTimeout; SSE responses are not.
  const httpsServer = tls ? createHttpsServer(serverOptions(config), handler) : undefined;
  const server: Server | undefined = tcp
    ? (httpsServer ?? createHttpServer(serverOptions(config), handler))
    : undefined;
  const tlsFiles = httpsServer ? superviseTls(httpsServer, config, log) : undefined;

  let address: AddressInfo | undefined;
  let closing: Promise<void> | undefined;
  let sshSocket: Awaited<ReturnType<typeof openSshSocket>>;

  function gatewayUrl(): string {
    if (!tcp) throw new Error('the gateway has no TCP listener (listen: false)');
    if (!address) throw new Error('gateway is not listening');
    const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${scheme}://${hostPart}:${address.port}`;
  }

  return {
    get url() {
      return gatewayUrl();
    },
    reload(next) {
      return live.apply(next);
    },
    async listen() {
      await gatewayAuth.open();
      sshSocket = await openSshSocket(config, handler, log);
      if (!server || !tcp) {
        log.info({ servers: serverNames, tcp: false }, 'gateway listening on the SSH socket only');
        return undefined;
      }
      const { host, port } = tcp;
      return new Promise((resolve, reject) => {
        // The SSH socket opened above must not keep a gateway that failed to start alive.
        const failed = (error: Error) =>
          void (sshSocket?.close() ?? Promise.resolve()).then(() => reject(error));
        server.once('error', failed);
        server.listen(port, host, () => {
          server.off('error', failed);
          address = server.address() as AddressInfo;
          log.info(
            { url: gatewayUrl(), servers: serverNames, auth: gatewayAuth.describe },
            'gateway listening',
          );
          resolve(address);
        });
      });
    },
    close({ drainMs = 0 } = {}) {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
        server?.closeIdleConnections();
        // At once: an ssh-entry bridge would otherwise re-initialize here while sessions are closing.
        const socketClosed = sshSocket?.close();
        // From here a bridge's re-initialize (on a kept-alive connection) gets 503, not a new backend.
        const left = await sessions.drain(drainMs);
        if (drainMs > 0) log.info({ drainMs, unfinished: left }, 'drained calls in flight');
        await sessions.closeAll(
          left > 0
            ? 'gateway shut down before the answer came; the request may have run'
            : 'gateway shutting down',
        );
        await router.stopAll();
        server?.closeAllConnections();
        await stopped;
        await socketClosed;
        gatewayAuth.close();
        tlsFiles?.close();
        gatekeeper.close();
        log.info('gateway stopped');
      })();
      return closing;
    },
  };
}
