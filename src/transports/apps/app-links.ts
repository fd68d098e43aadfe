// How a sign-in link reaches the user: the gateway told each backend its public app address
// (APP_PUBLIC_URL), so when a tool result names that address (the 3D demo's get_viewer_url), the
// gateway appends a fresh ticket for the session's user (and, per-session, for that session). The colleague clicks the link Claude shows
// and is signed in; the backend never sees a ticket, and nothing else in a result changes.

import type { AppSigner, AppTickets } from '../../auth/app-ticket.ts';
import type { IsolationMode } from '../../config/schema.ts';
import type { JsonRpcRequest, JsonRpcResponse } from '../../protocol/jsonrpc.ts';
import type {
  Admission,
  GatedSession,
  Identity,
  Refusal,
  RequestGate,
  RequestTrack,
  SessionClient,
  SessionGates,
} from '../../sessions/types.ts';
import { appBaseUrl } from '../../util/app-url.ts';

/** Tickets minted into one result at most, so a result full of links cannot fill the ticket store. */
const MAX_LINKS_PER_RESULT = 20;

/** Sign-in links to one instance of an app: its clean address, and tickets for it. */
export interface AppLinks {
  base: string;
  mint(): { ticket: string; expiresAt: number };
}

/**
 * The links `signer` gets to `server`'s app: to their own instance (per-user), their session's
 * (per-session: without a session, none), or the shared one; undefined for a server without an app
 * served by the gateway, or while the gateway has no address to put in links.
 */
export type AppLinkSource = (server: string, signer: AppSigner) => AppLinks | undefined;

export function appLinkSource(options: {
  tickets: AppTickets;
  modeOf(server: string): IsolationMode | undefined;
  gatewayUrl(): string | undefined;
}): AppLinkSource {
  return function linksFor(server, { identity, session }) {
    const mode = options.modeOf(server);
    const gatewayUrl = options.gatewayUrl();
    if (mode === undefined || gatewayUrl === undefined) return undefined;
    if (mode !== 'per-session') session = undefined;
    else if (session === undefined) return undefined;
    const signer: AppSigner = session === undefined ? { identity } : { identity, session };
    return {
      base: appBaseUrl(gatewayUrl, server, mode, { user: identity.user, session }),
      mint: () => options.tickets.mint(signer, server),
    };
  };
}

/** The session gates of the gateway, with tool results' app links signed for the session's user. */
export class AppLinkGates implements SessionGates {
  readonly #inner: SessionGates;
  readonly #source: AppLinkSource;

  constructor(inner: SessionGates, source: AppLinkSource) {
    this.#inner = inner;
    this.#source = source;
  }

  admitSession(
    server: string,
    identity: Identity,
    client?: SessionClient,
  ): Refusal | undefined | Promise<Refusal | undefined> {
    return this.#inner.admitSession(server, identity, client);
  }

  admitStream(session: GatedSession): Refusal | undefined | Promise<Refusal | undefined> {
    return this.#inner.admitStream(session);
  }

  open(session: GatedSession): RequestGate {
    const gate = this.#inner.open(session);
    const links = this.#source(session.server, { identity: session.identity, session: session.id });
    if (links === undefined) return gate;
    const pattern = linkPattern(links.base);
    const signing: RequestTrack = {
      settle: (response) => signLinks(response, pattern, () => links.mint().ticket),
    };
    return {
      admit(request: JsonRpcRequest): Admission | Promise<Admission> {
        const admission = gate.admit(request);
        if (request.method !== 'tools/call') return admission;
        return admission instanceof Promise
          ? admission.then((decided) => withTrack(decided, signing))
          : withTrack(admission, signing);
      },
      passes: (notification) => gate.passes(notification),
    };
  }
}

function withTrack(admission: Admission, signing: RequestTrack): Admission {
  if ('refusal' in admission) return admission;
  const first = admission.track;
  if (first === undefined) return { track: signing };
  return { track: { settle: (response, ending) => signing.settle(first.settle(response, ending), ending) } };
}

/** Links below `base`, up to the first character that ends a link in prose, JSON or Markdown. */
function linkPattern(base: string): RegExp {
  return new RegExp(`${escapeRegExp(base)}[^\\s"'<>\`)\\]]*`, 'g');
}

/** `response` with every link `pattern` finds in its result's strings carrying a ticket of its own. */
function signLinks(response: JsonRpcResponse, pattern: RegExp, ticket: () => string): JsonRpcResponse {
  if (!('result' in response) || !isPlain(response.result)) return response;
  let budget = MAX_LINKS_PER_RESULT;
  const sign = (text: string): string =>
    text.replace(pattern, (link) => {
      if (budget <= 0) return link;
      budget--;
      return withTicket(link, ticket());
    });
  const result = mapStrings(response.result, sign) as Record<string, unknown>;
  return { ...response, result };
}

/** The link with `ticket=` added to its query, before any fragment. */
function withTicket(link: string, ticket: string): string {
  const hash = link.indexOf('#');
  const head = hash === -1 ? link : link.slice(0, hash);
  const fragment = hash === -1 ? '' : link.slice(hash);
  return `${head}${head.includes('?') ? '&' : '?'}ticket=${ticket}${fragment}`;
}

/** A copy of plain JSON with `map` applied to every string; anything else (raw results) is kept as is. */
function mapStrings(value: unknown, map: (text: string) => string): unknown {
  if (typeof value === 'string') return map(value);
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, map));
  if (!isPlain(value)) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = mapStrings(item, map);
  return copy;
}

function isPlain(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
