// Who a request below `/apps/` is and where it may go: a ticket becomes a cookie, a cookie names the
// user (and, per-session, their MCP session), and that instance (the user's own with per-user
// isolation, the session's with per-session, the one with shared) gives the loopback port, read at
// each request so a restarted backend is reached at its new port.

import type { AppSigner, AppTickets } from '../../auth/app-ticket.ts';
import type { IsolationMode } from '../../config/schema.ts';
import type { Identity } from '../../sessions/types.ts';
import { appFolder, appPath, sessionTag } from '../../util/app-url.ts';
import { parseAppPath } from './app-path.ts';

export interface AppAccessOptions {
  tickets: AppTickets;
  /** The isolation mode of `server` when it has an app, else undefined. */
  modeOf(server: string): IsolationMode | undefined;
  /** Whether the identity may still use the server (policy, and its API key not revoked). */
  allowed(server: string, identity: Identity): boolean;
  /** Whether `identity`'s MCP session `session` on `server` is still open (per-session apps end with it). */
  hasSession(server: string, identity: Identity, session: string): boolean;
  /** The app port of the instance `user` (per-session: `session`) reaches on `server`, while one runs. */
  portFor(server: string, user: string, session?: string): number | undefined;
}

/** Where the app's instance is and what the request becomes there. */
export interface AppTarget {
  server: string;
  /** Who the cookie names (the instance's owner with per-user and per-session isolation). */
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

/** Path segments below `/apps/<server>/` that name the instance: its user, then (per-session) its session's tag. */
const OWNER_SEGMENTS: Record<IsolationMode, number> = { shared: 0, 'per-user': 1, 'per-session': 2 };

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
    const { identity, session } = redeemed;
    params.delete('ticket');
    const rest = params.toString();
    // A per-session cookie is scoped to its session's folder, so the apps of two sessions sign in apart.
    const cookiePath =
      session === undefined ? base : `/${appFolder(server, mode, { user: identity.user, session })}`;
    return {
      kind: 'redirect',
      status: 303,
      location: `${rawPath}${rest === '' ? '' : `?${rest}`}`,
      cookie: cookieLine(options.tickets.cookie({ identity, session }, server), cookiePath, flags.secure),
      signedIn: { server, identity },
    };
  }

  const owner = ownerSegments(parsed.path, OWNER_SEGMENTS[mode]);
  if (mode === 'per-session' && owner.segments.length < 2)
    return refuse(
      404,
      'Not found',
      `Each MCP session has an app of its own at an address of its own. ${NEW_LINK}`,
    );
  const tag = owner.segments[1];
  const signer = cookieSigner(options.tickets, cookieHeader, server, tag);
  if (signer === undefined) return refuse(401, 'Sign in', `You are not signed in to this app. ${NEW_LINK}`);
  const { identity, session } = signer;
  if (!options.allowed(server, identity))
    return refuse(403, 'Not allowed', `User ${identity.user} may not use this app (any more).`);

  const own = `/${appFolder(server, mode, { user: identity.user, session })}`;
  if (mode === 'per-user' && owner.segments.length === 0)
    return { kind: 'redirect', status: 303, location: own };
  if (mode !== 'shared' && owner.segments[0] !== identity.user)
    return refuse(
      403,
      'Not your app',
      `This is another user's app. Yours is at ${mode === 'per-user' ? own : 'the link Claude gives you'}`,
    );
  if (session !== undefined && !options.hasSession(server, identity, session))
    return refuse(
      410,
      'Session ended',
      `This app belonged to an MCP session that has ended, and ended with it. ${NEW_LINK}`,
    );
  if (owner.rest === undefined) return { kind: 'redirect', status: 308, location: `${own}${query}` };

  const port = options.portFor(server, identity.user, session);
  if (port === undefined)
    return refuse(
      503,
      'App not running',
      'The app has no running instance right now: it starts with an MCP session (open Claude with this server), or it is restarting. Try again in a few seconds.',
    );
  const prefix = `${base.slice(0, -1)}${parsed.path.slice(0, parsed.path.length - owner.rest.length)}`;
  return { kind: 'forward', target: { server, identity, port, path: `${owner.rest}${query}`, prefix } };
}

/**
 * The first `count` segments of `path` (decoded; fewer when the path has fewer), and the path after
 * them from its slash on: undefined when the last owner segment has no slash after it (a folder
 * address without its slash).
 */
function ownerSegments(
  path: string,
  count: number,
): { segments: (string | undefined)[]; rest: string | undefined } {
  const segments: (string | undefined)[] = [];
  let at = 0;
  while (segments.length < count) {
    const end = path.indexOf('/', at + 1);
    const segment = end === -1 ? path.slice(at + 1) : path.slice(at + 1, end);
    if (segment === '') break;
    segments.push(safeDecode(segment));
    if (end === -1) return { segments, rest: undefined };
    at = end;
  }
  return { segments, rest: path.slice(at) };
}

/**
 * Who the first valid app cookie for `server` in a Cookie header stands for; with `tag`, only a
 * per-session cookie of the session with that tag counts.
 */
export function cookieSigner(
  tickets: AppTickets,
  header: string | undefined,
  server: string,
  tag?: string,
): AppSigner | undefined {
  for (const value of cookieValues(header, APP_COOKIE)) {
    const signer = tickets.readCookie(value, server);
    if (signer === undefined) continue;
    if (tag === undefined || (signer.session !== undefined && sessionTag(signer.session) === tag))
      return signer;
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

function cookieLine(cookie: { value: string; maxAge: number }, path: string, secure: boolean): string {
  return `${APP_COOKIE}=${cookie.value}; Path=${path}; Max-Age=${cookie.maxAge}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
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
