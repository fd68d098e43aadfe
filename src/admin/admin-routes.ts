// The admin surface of the gateway: /metrics for Prometheus, the /admin/ page, its JSON
// (/admin/api/status) and the sign-in link for browsers (POST /admin/link). Everything answers only a
// user in one of `admin.groups`: a bearer credential checked as for /mcp (auth/identify.ts, gateway-wide:
// no server's scopes), or, for the page, a cookie a single-use link set. Never over the SSH socket,
// whose callers name themselves.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppTickets } from '../auth/app-ticket.ts';
import type { Identify } from '../auth/identify.ts';
import type { AdminConfig } from '../config/schema.ts';
import { connectionPeer } from '../http/connection-peer.ts';
import { sendJson, sendRpcError } from '../http/replies.ts';
import { isSocketRequest } from '../http/ssh-socket.ts';
import { METRICS_CONTENT_TYPE, type Metrics } from '../observe/metrics.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { Identity } from '../sessions/types.ts';
import { ADMIN_CSP, ADMIN_CSS, ADMIN_HTML, ADMIN_JS } from './page.ts';
import type { StatusReport } from './status.ts';

export const ADMIN_COOKIE = 'mcp_relay_admin';
/** The name tickets and cookies are scoped to; admin tickets have a secret of their own besides. */
const TICKET_SCOPE = 'admin';

export interface AdminOptions {
  config: AdminConfig;
  identify: Identify;
  /** Whether a credential a cookie was made from is still good (a revoked API key is not). */
  stillValid(identity: Identity): boolean;
  metrics: Metrics;
  status(): Promise<StatusReport>;
  /** A graceful restart of `server`'s backends (only `user`'s when given): what happened to each. */
  restart(server: string, options: { user?: string }): Promise<unknown>;
  /** Where browsers reach the gateway: publicUrl, else the address the admin's request was sent to. */
  baseUrl(req: IncomingMessage): string;
  /** Browsers reach the gateway over https: cookies get `Secure`. */
  secure: boolean;
}

const PAGE_HEADERS = {
  'content-security-policy': ADMIN_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
};

export class AdminRoutes {
  readonly #options: AdminOptions;
  readonly #groups: ReadonlySet<string>;
  readonly #tickets = new AppTickets();

  constructor(options: AdminOptions) {
    this.#options = options;
    this.#groups = new Set(options.config.groups);
  }

  /** GET /metrics with an admin's bearer credential. */
  readonly metrics = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!(await this.#admin(req, res, false))) return;
    await sendMetrics(res, this.#options.metrics);
  };

  /** POST /admin/link: a single-use sign-in link for the admin's browser. */
  readonly link = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const identity = await this.#admin(req, res, false);
    if (!identity) return;
    const { ticket, expiresAt } = this.#tickets.mint({ identity }, TICKET_SCOPE);
    const url = `${this.#options.baseUrl(req)}/admin/?ticket=${encodeURIComponent(ticket)}`;
    sendJson(
      res,
      200,
      { url, expiresAt: new Date(expiresAt).toISOString() },
      { 'cache-control': 'no-store' },
    );
  };

  /** GET /admin/api/status: the page's data, for its cookie or a bearer credential (`mcp-relay status`). */
  readonly status = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!(await this.#admin(req, res, true))) return;
    sendJson(res, 200, await this.#options.status(), { 'cache-control': 'no-store' });
  };

  /**
   * POST /admin/api/restart/<server>[?user=U]: a graceful restart of its backends (`mcp-relay backends
   * restart`), answered when every old process is stopped. A bearer credential only: no cookie, so no
   * page elsewhere can make an admin's browser ask for it.
   */
  readonly restart = async (req: IncomingMessage, res: ServerResponse, server: string): Promise<void> => {
    if (!(await this.#admin(req, res, false))) return;
    const user = new URL(req.url ?? '/', 'http://admin.invalid').searchParams.get('user');
    const result = await this.#options.restart(server, user === null || user === '' ? {} : { user });
    sendJson(res, 200, result, { 'cache-control': 'no-store' });
  };

  /** /admin/…: the page (signing in with a ticket first), its script and stylesheet. */
  readonly page = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendRpcError(res, 405, ErrorCode.InvalidRequest, 'method not allowed', { headers: { allow: 'GET' } });
      return;
    }
    if (path === '/admin/admin.js') return sendText(res, 'text/javascript; charset=utf-8', ADMIN_JS);
    if (path === '/admin/admin.css') return sendText(res, 'text/css; charset=utf-8', ADMIN_CSS);
    if (path === '/admin') return redirect(res, '/admin/');
    if (path !== '/admin/') {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const ticket = new URL(req.url ?? '/', 'http://admin.invalid').searchParams.get('ticket');
    if (ticket !== null) {
      this.#redeem(res, ticket);
      return;
    }
    if (!(await this.#admin(req, res, true, true))) return;
    sendText(res, 'text/html; charset=utf-8', ADMIN_HTML);
  };

  /** A ticket becomes the cookie, then the page loads without it in its address (or history). */
  #redeem(res: ServerResponse, ticket: string): void {
    const redeemed = this.#tickets.redeem(ticket, TICKET_SCOPE);
    if (!redeemed.ok || !this.#options.stillValid(redeemed.identity) || !this.#isAdmin(redeemed.identity)) {
      const reason = redeemed.ok
        ? 'the credential behind it is no longer an admin'
        : `it is ${redeemed.reason}`;
      signInPage(
        res,
        403,
        `This sign-in link cannot be used: ${reason}. Get a new one with mcp-relay status --open.`,
      );
      return;
    }
    const cookie = this.#tickets.cookie({ identity: redeemed.identity }, TICKET_SCOPE);
    const secure = this.#options.secure ? '; Secure' : '';
    redirect(res, '/admin/', {
      'set-cookie': `${ADMIN_COOKIE}=${cookie.value}; Path=/admin/; Max-Age=${cookie.maxAge}; HttpOnly; SameSite=Strict${secure}`,
    });
  }

  /**
   * The admin behind the request, or undefined once it has been answered (401, 403, 404). `cookie`: the
   * page's cookie counts; `html`: a browser without one gets a page that says how to sign in.
   */
  async #admin(
    req: IncomingMessage,
    res: ServerResponse,
    cookie: boolean,
    html = false,
  ): Promise<Identity | undefined> {
    if (isSocketRequest(req)) {
      sendJson(res, 404, { error: 'not found' });
      return undefined;
    }
    if (cookie) {
      const signer = cookieValue(req.headers.cookie, ADMIN_COOKIE)
        .map((value) => this.#tickets.readCookie(value, TICKET_SCOPE))
        .find((found) => found !== undefined);
      if (signer && this.#options.stillValid(signer.identity) && this.#isAdmin(signer.identity))
        return signer.identity;
    }
    // A bearer credential, or a client certificate (a browser with an admin's certificate needs no link).
    const outcome = this.#options.identify({
      viaSocket: false,
      headers: req.headers,
      peer: connectionPeer(req),
      authorization: req.headers.authorization,
      server: null,
      path: '/',
    });
    const auth = outcome instanceof Promise ? await outcome : outcome;
    if (!auth.ok && html) {
      signInPage(
        res,
        401,
        'Sign in with a link from mcp-relay status --open (or POST /admin/link with an admin API key).',
      );
      return undefined;
    }
    if (!auth.ok) {
      sendRpcError(res, auth.status, ErrorCode.Refused, auth.message, { headers: auth.headers });
      return undefined;
    }
    if (!this.#isAdmin(auth.identity)) {
      sendRpcError(res, 403, ErrorCode.Refused, 'only users in an admin group (admin.groups) may see this');
      return undefined;
    }
    return auth.identity;
  }

  #isAdmin(identity: Identity): boolean {
    return identity.groups.some((group) => this.#groups.has(group));
  }
}

/** The exposition text, gauges read now. */
export async function sendMetrics(res: ServerResponse, metrics: Metrics): Promise<void> {
  const text = await metrics.scrape();
  res.writeHead(200, {
    'content-type': METRICS_CONTENT_TYPE,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function sendText(res: ServerResponse, contentType: string, text: string): void {
  res.writeHead(200, {
    ...PAGE_HEADERS,
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { ...PAGE_HEADERS, location, 'content-length': 0, ...headers });
  res.end();
}

/** A tiny page for a browser that is not signed in; `message` is our own text. */
function signInPage(res: ServerResponse, status: number, message: string): void {
  const escaped = message.replace(/[&<>"]/g, (char) => `&#${char.charCodeAt(0)};`);
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mcp-relay status</title></head><body><h1>mcp-relay status</h1><p>${escaped}</p></body></html>`;
  res.writeHead(status, {
    ...PAGE_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

/** Every value of cookie `name` in a Cookie header. */
function cookieValue(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}
