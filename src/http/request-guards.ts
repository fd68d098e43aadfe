// Checks that run before authentication: repeated headers, Host (DNS rebinding), Origin and what other
// sites' pages cause (browsers), pure over headers. Each guard returns the refusal to send, or undefined to let the request on.

import type { IncomingMessage } from 'node:http';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import { isLoopbackAddress } from '../util/loopback.ts';
import { sanitize } from '../util/sanitize.ts';
import type { Refusal } from './refusal.ts';

/** What a guard reads: what every request has, a plain one or an upgrade. */
export type GuardedRequest = Pick<IncomingMessage, 'headers' | 'rawHeaders'>;

/** A check of one request before its route's handler runs. */
export type Guard = (req: GuardedRequest) => Refusal | undefined;

/** Refuses a request that repeats a header that must come once (see SINGLE_HEADERS). */
export function singleHeaders(req: GuardedRequest): Refusal | undefined {
  const duplicate = duplicatedHeader(req.rawHeaders);
  if (duplicate === undefined) return undefined;
  return {
    status: 400,
    code: ErrorCode.InvalidRequest,
    message: `the ${duplicate} header may appear only once`,
  };
}

/** The most of a refused Host header a message or log line quotes. */
const QUOTED_HOST_CHARS = 100;

/**
 * The Host guard of a gateway (see hostAllowed). A refusal names `publicUrl`, since a proxy that does not
 * pass the Host clients used, or a publicUrl that is not that address, is the usual cause.
 */
export function hostGuard(boundToLoopback: boolean, publicUrl?: string): Guard {
  const publicHost = publicUrl === undefined ? undefined : new URL(publicUrl).hostname.toLowerCase();
  return function checkHost(req) {
    const { host } = req.headers;
    if (hostAllowed(host, boundToLoopback, publicHost)) return undefined;
    const quoted = host === undefined ? undefined : quoteHost(host);
    return { status: 421, code: ErrorCode.Refused, message: wrongHostMessage(quoted, publicUrl) };
  };
}

/** A Host header as messages (and the refusal log) quote it: one line, bounded, no quotes of its own. */
export function quoteHost(host: string): string {
  return sanitize(host.replace(/["\\]/g, '?'), QUOTED_HOST_CHARS);
}

/** What a client told 421 reads: the Host it sent, what the gateway expected, and the two ways to fix it. */
function wrongHostMessage(quotedHost: string | undefined, publicUrl: string | undefined): string {
  const fix = "set publicUrl to the address clients use, or fix the proxy's Host header";
  const sent = quotedHost === undefined ? 'a request without a Host header' : `Host "${quotedHost}"`;
  if (publicUrl === undefined)
    return `${sent} does not name this gateway (it listens on loopback and has no publicUrl) — ${fix}`;
  return `${sent} is not this gateway's publicUrl ${publicUrl} — ${fix}`;
}

const WRONG_ORIGIN: Refusal = Object.freeze({
  status: 403,
  code: ErrorCode.Refused,
  message: 'Origin not allowed',
});

/**
 * The Origin guard of a gateway (see originAllowed): its own origin is the scheme and the Host the
 * request named; `allowedOrigins` is read per request, so a reload applies at once.
 */
export function originGuard(
  scheme: 'http' | 'https',
  allowedOrigins: () => readonly string[],
  publicOrigin?: string,
): Guard {
  return function checkOrigin(req) {
    const { origin } = req.headers;
    // No Origin (not a browser): nothing to compare, and no string to build.
    if (origin === undefined) return undefined;
    const own = `${scheme}://${req.headers.host ?? ''}`;
    return originAllowed(origin, own, allowedOrigins(), publicOrigin) ? undefined : WRONG_ORIGIN;
  };
}

const FOREIGN_PAGE: Refusal = Object.freeze({
  status: 403,
  code: ErrorCode.Refused,
  message:
    "another site's web page made this request in your browser (Sec-Fetch-Site without Origin); MCP clients are not web pages",
});

/**
 * Refuses what a browser says another site's page caused without naming an Origin: a navigation, an
 * iframe, a form or a no-cors fetch. Such a page cannot read the answer, but a GET that opens a legacy
 * SSE stream would still open a session (and start a backend) in the user's name on a gateway that
 * trusts loopback or a client certificate in the browser, crowding out the user's real clients. A
 * page that names an Origin is the Origin guard's; clients outside browsers send no Sec-Fetch-Site.
 * For MCP routes only: links to /apps are followed from anywhere.
 */
export function foreignPageGuard(req: GuardedRequest): Refusal | undefined {
  if (req.headers.origin !== undefined) return undefined;
  const site = req.headers['sec-fetch-site'];
  return site === 'cross-site' || site === 'same-site' ? FOREIGN_PAGE : undefined;
}

/** The hostname part of a Host header ("[::1]:8787" → "[::1]", "a.b:80" → "a.b"). */
function hostname(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1).toLowerCase();
  return (hostHeader.split(':')[0] ?? '').toLowerCase();
}

/**
 * A gateway bound to loopback only answers requests addressed to loopback names (or its public URL),
 * so a web page on another domain cannot reach it through DNS rebinding.
 */
export function hostAllowed(
  hostHeader: string | undefined,
  boundToLoopback: boolean,
  publicHost?: string,
): boolean {
  if (!boundToLoopback) return true;
  if (!hostHeader) return false;
  const name = hostname(hostHeader);
  return isLoopbackAddress(name) || (publicHost !== undefined && name === publicHost);
}

/** No Origin (not a browser) is fine; otherwise it must be the gateway's own origin or on the allowlist. */
export function originAllowed(
  origin: string | undefined,
  ownOrigin: string,
  allowed: readonly string[],
  publicOrigin?: string,
): boolean {
  if (origin === undefined) return true;
  const normalized = origin.toLowerCase();
  return (
    normalized === ownOrigin.toLowerCase() ||
    (publicOrigin !== undefined && normalized === publicOrigin.toLowerCase()) ||
    allowed.some((entry) => entry.toLowerCase() === normalized || entry === '*')
  );
}

/**
 * Headers that must come once. node keeps only the first Authorization, Host or Content-Type and joins
 * other repeats with commas, so a second copy means different things to different hops (a proxy may
 * check the last one): such requests are refused rather than guessed.
 */
const SINGLE_HEADERS = new Set([
  'authorization',
  'host',
  'origin',
  'content-type',
  'content-length',
  'content-encoding',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);

/** The first header of SINGLE_HEADERS that `rawHeaders` (name, value, name, value, …) repeats. */
export function duplicatedHeader(rawHeaders: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = (rawHeaders[index] ?? '').toLowerCase();
    if (!SINGLE_HEADERS.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}
