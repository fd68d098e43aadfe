// The gateway's routes as rows: which paths a row serves, the guards that run first (in order), whether
// the caller must be established (auth/identify.ts), and the handler. A new front or admin surface is
// one more row; the order of checks is read off its row instead of an if-chain.

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Identify } from '../auth/identify.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { Identity } from '../sessions/types.ts';
import { connectionPeer } from './connection-peer.ts';
import { type Refusal, sendRefusal } from './refusal.ts';
import { type EdgeRefusal, edgeRefusal } from './refusal-log.ts';
import { sendJson, sendRpcError } from './replies.ts';
import type { Guard } from './request-guards.ts';
import { socketCallerHeaders } from './ssh-socket.ts';

/**
 * Whether a path is a row's: undefined when not; else the value it captured (the path itself for rows
 * without a parameter), or null when the path is the row's but its parameter names nothing.
 */
export type Matcher = (path: string) => string | null | undefined;

interface RouteBase {
  match: Matcher;
  /** The methods the row serves; a request with another falls through to the rows below. */
  methods?: readonly string[];
  /** Run in order after the match; the first refusal is the answer. */
  guards: readonly Guard[];
  /** Sent when the parameter names nothing; after the guards and the caller, so strangers learn no names. */
  unknown?: Refusal;
}

/** A row that serves anyone its guards let through. */
export interface OpenRoute extends RouteBase {
  caller?: false;
  handle(req: IncomingMessage, res: ServerResponse, param: string): void | Promise<void>;
}

/** A row for callers only: after the guards, who is calling is established, or the request is refused. */
export interface CallerRoute extends RouteBase {
  caller: true;
  /** `param` is also the server the caller asks for (its audiences and scopes in the token check). */
  handle(req: IncomingMessage, res: ServerResponse, param: string, identity: Identity): Promise<void>;
}

export type Route = OpenRoute | CallerRoute;

/** `/healthz`: that path only. */
export function exact(path: string): Matcher {
  return function matchExact(candidate) {
    return candidate === path ? candidate : undefined;
  };
}

/** `/.well-known/x`: that path and every path below it (not `/.well-known/xy`). */
export function prefix(path: string): Matcher {
  const below = `${path}/`;
  return function matchPrefix(candidate) {
    return candidate === path || candidate.startsWith(below) ? candidate : undefined;
  };
}

/**
 * `/mcp/:server`: the base (`/mcp`, `/mcp/`) or anything below it. The rest of the path, percent-decoded
 * and without one trailing slash, goes through `resolve` (undefined for the bare base), which returns
 * what the row serves or null; a malformed escape names nothing.
 */
export function param(pattern: string, resolve: (value: string | undefined) => string | null): Matcher {
  const base = pattern.slice(0, pattern.lastIndexOf('/:'));
  const below = `${base}/`;
  return function matchParam(candidate) {
    if (candidate === base || candidate === below) return resolve(undefined);
    if (!candidate.startsWith(below)) return undefined;
    let value: string;
    try {
      value = decodeURIComponent(candidate.slice(below.length).replace(/\/$/, ''));
    } catch {
      return null;
    }
    return resolve(value);
  };
}

/** Every path: the last row, so the guards above the 404 still run for unknown paths. */
export function anyPath(candidate: string): string {
  return candidate;
}

const UNKNOWN: Refusal = Object.freeze({ status: 404, code: ErrorCode.InvalidRequest, message: 'not found' });

/**
 * The request handler for a route table; a handler that throws gets a 500 (or its connection ended).
 * `onRefused` hears each refusal by a guard or by authentication, with the client's address (the log).
 */
export function routeRequests(
  routes: readonly Route[],
  identify: Identify,
  log: Logger,
  onRefused?: (refusal: EdgeRefusal) => void,
): RequestListener {
  const refused = (req: IncomingMessage, status: number, message: string): void =>
    onRefused?.(edgeRefusal(req, status, message));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    let route: Route | undefined;
    let captured: string | null | undefined;
    for (const row of routes) {
      if (row.methods !== undefined && !row.methods.includes(req.method ?? '')) continue;
      captured = row.match(path);
      if (captured !== undefined) {
        route = row;
        break;
      }
    }
    if (route === undefined || captured === undefined) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    for (const guard of route.guards) {
      const refusal = guard(req);
      if (refusal !== undefined) {
        refused(req, refusal.status, refusal.message);
        sendRefusal(res, refusal);
        return;
      }
    }
    if (!route.caller) {
      if (captured === null) sendRefusal(res, route.unknown ?? UNKNOWN);
      else await route.handle(req, res, captured);
      return;
    }
    const socketHeaders = socketCallerHeaders(req);
    const outcome = identify({
      viaSocket: socketHeaders !== undefined,
      headers: socketHeaders ?? req.headers,
      peer: connectionPeer(req),
      authorization: req.headers.authorization,
      server: captured,
      path,
    });
    // Only a token check is asynchronous; the socket and a certificate decide without waiting.
    const auth = outcome instanceof Promise ? await outcome : outcome;
    if (!auth.ok) {
      refused(req, auth.status, auth.message);
      sendRpcError(res, auth.status, ErrorCode.Refused, auth.message, { headers: auth.headers });
      return;
    }
    if (captured === null) {
      sendRefusal(res, route.unknown ?? UNKNOWN);
      return;
    }
    await route.handle(req, res, captured, auth.identity);
  }

  return function handler(req, res) {
    handle(req, res).catch((error: unknown) => {
      log.error({ err: errorText(error), stack: (error as Error).stack }, 'request failed');
      if (!res.headersSent) sendRpcError(res, 500, ErrorCode.InternalError, 'internal error');
      else res.end();
    });
  };
}
