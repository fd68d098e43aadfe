// The front for browser apps: `/apps/<server>/…` (HTTP, and WebSocket upgrades) forwarded to the
// loopback app port of the requesting user's instance, after the sign-in app-access.ts decides; and
// the authenticated endpoint that mints sign-in links. Bodies stream with backpressure (pipe), bounded
// by limits.maxBodyBytes, as is each WebSocket frame a browser sends; the gateway's cookie and
// Authorization never reach the app.

import { type IncomingHttpHeaders, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Transform } from 'node:stream';
import type { AppTickets } from '../../auth/app-ticket.ts';
import { refuseSocket } from '../../http/refusal.ts';
import { type EdgeRefusal, edgeRefusal } from '../../http/refusal-log.ts';
import { sendJson } from '../../http/replies.ts';
import type { Guard } from '../../http/request-guards.ts';
import type { Logger } from '../../log.ts';
import { type EventOwner, publishApp } from '../../observe/events.ts';
import { ErrorCode } from '../../protocol/jsonrpc.ts';
import type { Identity } from '../../sessions/types.ts';
import { type AppAccessOptions, type AppTarget, decideAppAccess, withoutAppCookie } from './app-access.ts';
import type { AppLinkSource } from './app-links.ts';
import { sendPage } from './app-pages.ts';
import { CLOSE_TOO_BIG, FrameLimit } from './frame-limit.ts';

export interface AppProxyOptions extends AppAccessOptions {
  tickets: AppTickets;
  /** TLS on the listener: cookies get `Secure`, X-Forwarded-Proto says https. */
  secure: boolean;
  /** Where links point and the tickets they carry (app-links.ts, as for tool results). */
  links: AppLinkSource;
  maxBodyBytes(): number;
  /** Checks of an upgrade before anything else (duplicate headers, Host, Origin), as a row's guards. */
  upgradeGuards: readonly Guard[];
  /** Hears an upgrade refused by those guards (the gateway's refusal log). */
  onRefused?: (refusal: EdgeRefusal) => void;
  log: Logger;
  /** The gateway's token in the app events it publishes (observe/events.ts: sign-ins, WebSockets). */
  owner: EventOwner;
}

/** Request headers that belong to one hop, or to the gateway, and are not forwarded. */
const DROPPED = new Set([
  'authorization',
  'connection',
  // Answered by the gateway's own server already; the app's 100 Continue would be a second one.
  'expect',
  'keep-alive',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'cookie',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-prefix',
]);
/** Response headers of one hop. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'trailer',
  'upgrade',
  'proxy-connection',
]);

export class AppProxy {
  readonly #options: AppProxyOptions;
  readonly #sockets = new Set<{ server: string; socket: Duplex; upstream: Socket }>();

  constructor(options: AppProxyOptions) {
    this.#options = options;
  }

  /**
   * `POST /app-links/<server>`: a sign-in link for the caller, valid once within minutes; for a server
   * with an app per MCP session, to the app of the session its Mcp-Session-Id header names.
   */
  mintLink(res: ServerResponse, server: string, identity: Identity, session: string | undefined): void {
    if (!this.#options.allowed(server, identity)) {
      sendJson(res, 403, { error: `user ${JSON.stringify(identity.user)} may not use server "${server}"` });
      return;
    }
    if (this.#options.modeOf(server) === 'per-session') {
      if (session === undefined || !this.#options.hasSession(server, identity, session)) {
        sendJson(res, 400, {
          error: `server "${server}" runs an app per MCP session: send the Mcp-Session-Id header of an open session of yours`,
        });
        return;
      }
    }
    const links = this.#options.links(server, session === undefined ? { identity } : { identity, session });
    if (links === undefined) {
      sendJson(res, 404, { error: `server "${server}" has no app served by the gateway` });
      return;
    }
    const { ticket, expiresAt } = links.mint();
    sendJson(res, 200, {
      url: `${links.base}?ticket=${ticket}`,
      expiresAt: new Date(expiresAt).toISOString(),
    });
  }

  /** A plain HTTP request below `/apps/`. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const decision = decideAppAccess(this.#options, req.url ?? '/', req.headers.cookie, {
      upgrade: false,
      secure: this.#options.secure,
    });
    if (decision.kind === 'refuse') {
      sendPage(res, decision.status, decision.title, decision.text);
      return;
    }
    if (decision.kind === 'redirect') {
      const headers: Record<string, string> = { location: decision.location, 'cache-control': 'no-store' };
      if (decision.cookie !== undefined) headers['set-cookie'] = decision.cookie;
      if (decision.signedIn !== undefined)
        publishApp(this.#options.owner, decision.signedIn.server, decision.signedIn.identity, 'sign-in');
      res.writeHead(decision.status, headers).end();
      return;
    }
    const limit = this.#options.maxBodyBytes();
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      sendPage(res, 413, 'Too large', `The request body exceeds ${limit} bytes.`, { connection: 'close' });
      req.resume();
      return;
    }
    this.#forward(req, res, decision.target, limit);
  }

  /** A WebSocket (or other) upgrade below `/apps/`: refused on the socket, or piped both ways. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    for (const guard of this.#options.upgradeGuards) {
      const refusal = guard(req);
      if (refusal !== undefined) {
        this.#options.onRefused?.(edgeRefusal(req, refusal.status, refusal.message));
        refuseSocket(socket, refusal);
        return;
      }
    }
    const decision = decideAppAccess(this.#options, req.url ?? '/', req.headers.cookie, {
      upgrade: true,
      secure: this.#options.secure,
    });
    if (decision.kind !== 'forward') {
      const status = decision.kind === 'refuse' ? decision.status : 400;
      const message = decision.kind === 'refuse' ? decision.text : 'open the page first, then its WebSocket';
      refuseSocket(socket, { status, code: ErrorCode.Refused, message });
      return;
    }
    const { target } = decision;
    const upstream = connect(target.port, '127.0.0.1');
    const open = { server: target.server, socket, upstream };
    this.#sockets.add(open);
    let connected = false;
    upstream.on('error', (error) => {
      this.#options.log.debug({ server: target.server, err: error.message }, 'app connection failed');
      if (connected) socket.destroy();
      else refuseSocket(socket, { status: 502, code: ErrorCode.Refused, message: 'the app did not answer' });
    });
    const openedAt = Date.now();
    socket.on('close', () => {
      this.#sockets.delete(open);
      upstream.destroy();
      if (connected) publishApp(this.#options.owner, target.server, target.identity, 'close', openedAt);
    });
    upstream.on('close', () => socket.destroy());
    upstream.on('connect', () => {
      connected = true;
      publishApp(this.#options.owner, target.server, target.identity, 'open');
      const lines = [`${req.method ?? 'GET'} ${target.path} HTTP/1.1`];
      for (const [name, value] of Object.entries(this.#headers(req, target, true)))
        for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      // What the browser sends is frames from the first byte (`head` included): each bounded in size.
      const frames = new FrameLimit(this.#options.maxBodyBytes());
      const bounded = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          if (frames.take(chunk)) done(null, chunk);
          else done(new Error('frame too large'));
        },
      });
      bounded.on('error', () => {
        upstream.destroy();
        socket.end(CLOSE_TOO_BIG);
      });
      if (head.length > 0) bounded.write(head);
      socket.pipe(bounded).pipe(upstream);
      upstream.pipe(socket);
    });
  }

  /** Open app WebSockets per server (for /healthz). */
  openSockets(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const { server } of this.#sockets) counts[server] = (counts[server] ?? 0) + 1;
    return counts;
  }

  /** Ends every app WebSocket: upgraded connections are no longer the HTTP server's to close. */
  close(): void {
    for (const { socket, upstream } of this.#sockets) {
      upstream.destroy();
      socket.destroy();
    }
    this.#sockets.clear();
  }

  #forward(req: IncomingMessage, res: ServerResponse, target: AppTarget, limit: number): void {
    const upstream = request({
      host: '127.0.0.1',
      port: target.port,
      method: req.method,
      path: target.path,
      headers: this.#headers(req, target, false),
    });
    upstream.on('response', (answer) => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers))
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
      answer.pipe(res);
    });
    upstream.on('error', (error) => {
      this.#options.log.debug({ server: target.server, err: error.message }, 'app request failed');
      if (!res.headersSent)
        sendPage(
          res,
          502,
          'App not answering',
          'The app did not answer; it may be restarting. Try again in a few seconds.',
        );
      else res.destroy();
    });
    // A browser that leaves stops the request to the app too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    let size = 0;
    const bounded = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > limit) done(new Error('body too large'));
        else done(null, chunk);
      },
    });
    bounded.on('error', () => {
      upstream.destroy();
      if (!res.headersSent)
        sendPage(res, 413, 'Too large', `The request body exceeds ${limit} bytes.`, { connection: 'close' });
      else res.destroy();
    });
    req.pipe(bounded).pipe(upstream);
  }

  /** What the app gets: the request's own headers, less the gateway's, plus X-Forwarded-*. */
  #headers(req: IncomingMessage, target: AppTarget, upgrade: boolean): IncomingHttpHeaders {
    const headers: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers))
      if (value !== undefined && !DROPPED.has(name)) headers[name] = value;
    const cookie = withoutAppCookie(req.headers.cookie);
    if (cookie !== undefined) headers.cookie = cookie;
    if (upgrade) {
      headers.connection = 'Upgrade';
      if (req.headers.upgrade !== undefined) headers.upgrade = req.headers.upgrade;
    }
    const peer = req.socket.remoteAddress;
    if (peer !== undefined) headers['x-forwarded-for'] = peer;
    headers['x-forwarded-proto'] = this.#options.secure ? 'https' : 'http';
    if (req.headers.host !== undefined) headers['x-forwarded-host'] = req.headers.host;
    headers['x-forwarded-prefix'] = target.prefix;
    return headers;
  }
}
