// The request headers of the Streamable HTTP front: their names, the first value of one, and Accept
// matching with a small cache (the same Accept value arrives with every POST of a client).

import type { IncomingMessage } from 'node:http';

export const SESSION_HEADER = 'mcp-session-id';
export const VERSION_HEADER = 'mcp-protocol-version';
/**
 * On every reply to a POSTed request: how long (seconds) this gateway keeps a finished answer for a
 * retry of the same request (same session, id, method and params), and how often (seconds) its event
 * streams carry keep-alive comments. `connect` re-sends a request whose answer was lost only when it
 * saw the first, and declares a silent stream dead after a few intervals of the second.
 */
export const RETRIES_HEADER = 'mcp-relay-retries';
export const KEEP_ALIVE_HEADER = 'mcp-relay-keep-alive';

/** One value of a request header (the first, should node have kept a list). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Whether the Accept header lists `type` (or a wildcard that covers it). */
export function accepts(req: IncomingMessage, type: string): boolean {
  const accept = req.headers.accept;
  if (!accept) return false;
  const media = mediaTypes(accept);
  return media.has(type) || media.has('*/*') || media.has(`${type.slice(0, type.indexOf('/'))}/*`);
}

/**
 * Recently seen Accept values → the media types they list. A client sends the same value on every POST,
 * and splitting it twice per request showed in the gateway's CPU profile; bounded, as values are the client's.
 */
const ACCEPT_CACHE = new Map<string, ReadonlySet<string>>();
const ACCEPT_CACHE_SIZE = 64;

function mediaTypes(accept: string): ReadonlySet<string> {
  let media = ACCEPT_CACHE.get(accept);
  if (!media) {
    media = new Set(accept.split(',').map((part) => (part.split(';')[0] ?? '').trim().toLowerCase()));
    if (ACCEPT_CACHE.size >= ACCEPT_CACHE_SIZE) ACCEPT_CACHE.clear();
    ACCEPT_CACHE.set(accept, media);
  }
  return media;
}
