// `mcp-relay serve`: the HTTP(S) listener, the order of checks on every request
// (host → origin → auth → route), /healthz, and an orderly shutdown.

import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { authenticate, bearerChallenge, type TokenVerifier } from '../auth/authenticate.ts';
import { KeyStore } from '../auth/keys.ts';
import { BackendLauncher } from '../backends/launcher.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { RelayError } from '../protocol/errors.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import { Router } from '../router/router.ts';
import { SessionManager } from '../sessions/manager.ts';
import { VERSION } from '../version.ts';
import { McpEndpoint } from './mcp-endpoint.ts';
import { sendJson, sendRpcError } from './replies.ts';
import { hostAllowed, isLoopbackAddress, originAllowed } from './request-guards.ts';

/** Refuses every token: auth is configured but the store is not open (never reached after listen()). */
const NO_KEYS: TokenVerifier = { authenticate: () => undefined };

export interface GatewayOptions {
  config: RelayConfig;
  log: Logger;
  /** Environment the backends inherit their allowlisted variables from. */
  env?: NodeJS.ProcessEnv;
}

export interface Gateway {
  /** Starts listening; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** The base URL (scheme, host, port) once listening. */
  readonly url: string;
  /** Stops accepting, ends every session and backend. Idempotent. */
  close(): Promise<void>;
}

export function createGateway({ config, log, env = process.env }: GatewayOptions): Gateway {
  const { host, port, tls } = config.listen;
  const loopback = isLoopbackAddress(host);
  const authConfigured = config.auth.apiKeys !== undefined;
  if (!loopback && !authConfigured) {
    throw new RelayError(
      'LISTEN_REFUSED',
      `refusing to listen on ${host} without authentication: configure auth.apiKeys, or listen on 127.0.0.1`,
    );
  }
  // Opened by listen(): reading the keys file is async, and nothing authenticates before then.
  let keys: KeyStore | undefined;
  const router = new Router(config, new BackendLauncher(config.servers, log, env), log);
  const sessions = new SessionManager(config, log, (server, session) =>
    router.attach(server, session, session),
  );
  const endpoint = new McpEndpoint(config, sessions, log);
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
    if (!hostAllowed(req.headers.host, loopback, publicUrl?.hostname)) {
      sendRpcError(res, 421, ErrorCode.Refused, 'Host header does not name this gateway');
      return;
    }
    if (path === '/healthz') {
      sendJson(res, 200, {
        status: 'ok',
        version: VERSION,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        sessions: sessions.size,
        backends: router.size,
        servers: router.stats(),
      });
      return;
    }
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
        config.allowedOrigins,
        publicUrl?.origin,
      )
    ) {
      sendRpcError(res, 403, ErrorCode.Refused, 'Origin not allowed');
      return;
    }
    const auth = authenticate(req.headers.authorization, authConfigured ? (keys ?? NO_KEYS) : undefined);
    if (!auth.ok) {
      sendRpcError(
        res,
        401,
        ErrorCode.Refused,
        'authentication required: send Authorization: Bearer <API key>',
        {
          headers: { 'www-authenticate': bearerChallenge(auth.reason) },
        },
      );
      return;
    }
    if (server === null || !config.servers[server]) {
      sendRpcError(res, 404, ErrorCode.InvalidRequest, 'no such MCP server on this gateway');
      return;
    }
    await endpoint.handle(req, res, server, auth.identity);
  }

  /** "/mcp/<name>" → name; "/mcp" → the only server; null for an /mcp path naming nothing; undefined elsewhere. */
  function routeServer(path: string): string | null | undefined {
    if (path === '/mcp' || path === '/mcp/')
      return serverNames.length === 1 ? (serverNames[0] ?? null) : null;
    if (!path.startsWith('/mcp/')) return undefined;
    const name = decodeURIComponent(path.slice('/mcp/'.length).replace(/\/$/, ''));
    return config.servers[name] ? name : null;
  }

  const server: Server = tls
    ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler)
    : createHttpServer(handler);
  // Slow-body (slowloris) clients are cut off; long SSE responses are not affected by these.
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;

  let address: AddressInfo | undefined;
  let closing: Promise<void> | undefined;

  function gatewayUrl(): string {
    if (!address) throw new Error('gateway is not listening');
    const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${scheme}://${hostPart}:${address.port}`;
  }

  return {
    get url() {
      return gatewayUrl();
    },
    async listen() {
      if (config.auth.apiKeys) keys = await KeyStore.open(config.auth.apiKeys.file, log);
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          address = server.address() as AddressInfo;
          log.info(
            { url: gatewayUrl(), servers: serverNames, auth: authConfigured ? 'api-keys' : 'none' },
            'gateway listening',
          );
          resolve(address);
        });
      });
    },
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await sessions.closeAll('gateway shutting down');
        await router.stopAll();
        server.closeAllConnections();
        await stopped;
        keys?.close();
        log.info('gateway stopped');
      })();
      return closing;
    },
  };
}
