// Who a request below `/apps/` is and where it may go: a ticket becomes a cookie, a cookie names the
// user, and the user's instance (their own with per-user isolation, the one with shared) gives the
// loopback port, read at each request so a restarted backend is reached at its new port.

import { type AppTickets, COOKIE_TTL_MS } from '../../auth/app-ticket.ts';
import type { IsolationMode } from '../../config/schema.ts';
import type { Identity } from '../../sessions/types.ts';
import { appPath } from '../../util/app-url.ts';
import { parseAppPath } from './app-path.ts';

export interface AppAccessOptions {
  tickets: AppTickets;
  /** The isolation mode of `server` when it has an app, else undefined. */
  modeOf(server: string): IsolationMode | undefined;
  /** Whether the identity may still use the server (policy, and its API key not revoked). */
  allowed(server: string, identity: Identity): boolean;
  /** The app port of the instance `user` reaches on `server`, while one runs. */
  portFor(server: string, user: string): number | undefined;
}

/** Where the app's instance is and what the request becomes there. */
export interface AppTarget {
  server: string;
  /** Who the cookie names (the instance's owner with per-user isolation). */
  identity: Identity;
  port: number;
  /** The path (and query) the app sees: below the prefix. */
  path: string;
  /** The part of the gateway's path the app does not see (X-Forwarded-Prefix). */
  prefix: string;
}

export type AppDecision =
  | { kind: 'forward'; target: AppTarget }
  /** `signedIn`: a ticket was just redeemed for that identity, and `cookie` is its cookie. */
  | {
      kind: 'redirect';
      status: 303 | 308;
      location: string;
      cookie?: string;
      signedIn?: { server: string; identity: Identity };
    }
  | { kind: 'refuse'; status: number; title: string; text: string };

export const APP_COOKIE = 'mcp-relay-app';

const NEW_LINK =
  'Ask Claude for the viewer URL again (for the 3D demo: "get_viewer_url"); the link it gives signs you in for a few minutes.';

/** What to do with a request for `url` carrying `cookieHeader`; an upgrade cannot redeem a ticket. */
export function decideAppAccess(
  options: AppAccessOptions,
  url: string,
  cookieHeader: string | undefined,
  flags: { upgrade: boolean; secure: boolean },
): AppDecision {
  const mark = url.indexOf('?');
  const rawPath = mark === -1 ? url : url.slice(0, mark);
  const query = mark === -1 ? '' : url.slice(mark);
  const parsed = parseAppPath(rawPath);
  if (parsed === undefined) return refuse(404, 'Not found', 'No app is served at this address.');
  if (parsed.kind === 'bad')
    return refuse(400, 'Bad request', `This address is not allowed: ${parsed.reason}.`);
  const { server } = parsed;
  const mode = options.modeOf(server);
  if (mode === undefined) return refuse(404, 'Not found', 'No app is served at this address.');
  if (mode === 'per-session')
    return refuse(
      409,
      'Not served here',
      'This server runs one app per MCP session; the gateway does not serve those yet.',
    );
  const base = `/${appPath(server)}`;
  if (parsed.kind === 'folder') return { kind: 'redirect', status: 308, location: `${base}${query}` };

  const params = new URLSearchParams(query);
  const ticket = params.get('ticket');
  if (ticket !== null && !flags.upgrade) {
    const redeemed = options.tickets.redeem(ticket, server);
    if (!redeemed.ok) {
      const why =
        redeemed.reason === 'invalid'
          ? 'is not valid'
          : `was ${redeemed.reason === 'used' ? 'already used' : 'too old'}`;
      return refuse(401, 'Sign-in link expired', `This sign-in link ${why}. ${NEW_LINK}`);
    }
    params.delete('ticket');
    const rest = params.toString();
    return {
      kind: 'redirect',
      status: 303,
      location: `${rawPath}${rest === '' ? '' : `?${rest}`}`,
      cookie: cookieLine(options.tickets.cookie(redeemed.identity, server), base, flags.secure),
      signedIn: { server, identity: redeemed.identity },
    };
  }

  const identity = cookieIdentity(options.tickets, cookieHeader, server);
  if (identity === undefined) return refuse(401, 'Sign in', `You are not signed in to this app. ${NEW_LINK}`);
  if (!options.allowed(server, identity))
    return refuse(403, 'Not allowed', `User ${identity.user} may not use this app (any more).`);

  let path = parsed.path;
  let prefix = base.slice(0, -1);
  if (mode === 'per-user') {
    const own = `${base}${encodeURIComponent(identity.user)}/`;
    if (path === '/') return { kind: 'redirect', status: 303, location: own };
    const end = path.indexOf('/', 1);
    const owner = safeDecode(end === -1 ? path.slice(1) : path.slice(1, end));
    if (owner !== identity.user)
      return refuse(403, 'Not your app', `This is another user's app. Yours is at ${own}`);
    if (end === -1) return { kind: 'redirect', status: 308, location: `${own}${query}` };
    prefix = `${prefix}${path.slice(0, end)}`;
    path = path.slice(end);
  }
  const port = options.portFor(server, identity.user);
  if (port === undefined)
    return refuse(
      503,
      'App not running',
      'The app has no running instance right now: it starts with an MCP session (open Claude with this server), or it is restarting. Try again in a few seconds.',
    );
  return { kind: 'forward', target: { server, identity, port, path: `${path}${query}`, prefix } };
}

/** The identity of the first valid app cookie for `server` in a Cookie header. */
export function cookieIdentity(
  tickets: AppTickets,
  header: string | undefined,
  server: string,
): Identity | undefined {
  for (const value of cookieValues(header, APP_COOKIE)) {
    const identity = tickets.readCookie(value, server);
    if (identity !== undefined) return identity;
  }
  return undefined;
}

/** The Cookie header without the gateway's own cookie (undefined when nothing is left). */
export function withoutAppCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const kept = header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && !part.startsWith(`${APP_COOKIE}=`));
  return kept.length === 0 ? undefined : kept.join('; ');
}

function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  return header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part.startsWith(`${name}=`))
    .map((part) => part.slice(name.length + 1));
}

function cookieLine(value: string, path: string, secure: boolean): string {
  const maxAge = Math.floor(COOKIE_TTL_MS / 1000);
  return `${APP_COOKIE}=${value}; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function refuse(status: number, title: string, text: string): AppDecision {
  return { kind: 'refuse', status, title, text };
}
