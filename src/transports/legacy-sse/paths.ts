// Where the legacy HTTP+SSE transport (MCP 2024-11-05) lives on the gateway: `/mcp/<server>/sse` opens
// a session's stream, `/mcp/<server>/messages?sessionId=…` takes its POSTs; `/mcp/sse` and `/mcp/messages`
// for the single server of the `/mcp` alias. A GET of the Streamable HTTP URL itself with no session
// opens one too, which is where a client falls back after its POSTed initialize got a 4xx (2025-03-26).

import type { IncomingMessage } from 'node:http';
import type { Matcher } from '../../http/routes.ts';
import { header, SESSION_HEADER, VERSION_HEADER } from '../streamable-http/request-headers.ts';

export const STREAM_SUFFIX = 'sse';
export const MESSAGES_SUFFIX = 'messages';
export const SESSION_PARAM = 'sessionId';

/**
 * `/mcp/<server>/<suffix>` (one trailing slash allowed) → the server, or null when it names none;
 * `/mcp/<suffix>` → the single server, unless a server has that very name (then the path is that
 * server's Streamable HTTP endpoint and this row does not match it).
 */
export function legacyPath(
  suffix: string,
  serverNamed: (name: string | undefined) => string | null,
): Matcher {
  const alias = `/mcp/${suffix}`;
  const tail = `/${suffix}`;
  return function matchLegacyPath(candidate) {
    const path = candidate.length > 1 && candidate.endsWith('/') ? candidate.slice(0, -1) : candidate;
    if (path === alias) return serverNamed(suffix) === null ? serverNamed(undefined) : undefined;
    if (!path.startsWith('/mcp/') || !path.endsWith(tail)) return undefined;
    const encoded = path.slice('/mcp/'.length, -tail.length);
    // `/mcp/a/b/sse` is no server's (names have no slash): left to the rows below, which answer 404.
    if (encoded === '' || encoded.includes('/')) return undefined;
    try {
      return serverNamed(decodeURIComponent(encoded));
    } catch {
      return null;
    }
  };
}

/**
 * Whether a request to the Streamable HTTP URL is a legacy client's GET: it asks for an event stream and
 * names neither a session nor a protocol version. A Streamable HTTP client's GET carries the
 * Mcp-Session-Id it was given, and from 2025-06-18 on its MCP-Protocol-Version too: one that lost its
 * session id (after a DELETE, say) and still reconnects its GET stream gets Streamable HTTP's 400, not a
 * legacy session that nobody reads.
 */
export function opensLegacyStream(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' &&
    header(req, SESSION_HEADER) === undefined &&
    header(req, VERSION_HEADER) === undefined &&
    namesEventStream(req.headers.accept)
  );
}

/** Whether Accept names text/event-stream itself: a wildcard (curl's default, a browser's) opens no session here. */
function namesEventStream(accept: string | undefined): boolean {
  return (accept ?? '')
    .split(',')
    .some((part) => (part.split(';')[0] ?? '').trim().toLowerCase() === 'text/event-stream');
}

/** The URL the `endpoint` event names: an absolute path (below publicUrl's own path, if it has one). */
export function messagesUrl(base: string, server: string, sessionId: string): string {
  return `${base}/mcp/${encodeURIComponent(server)}/${MESSAGES_SUFFIX}?${SESSION_PARAM}=${encodeURIComponent(sessionId)}`;
}

/** The `sessionId` query parameter of a request, if it has exactly one. */
export function sessionIdOf(req: IncomingMessage): string | undefined {
  const url = req.url ?? '';
  const query = url.indexOf('?');
  if (query === -1) return undefined;
  const values = new URLSearchParams(url.slice(query + 1)).getAll(SESSION_PARAM);
  return values.length === 1 ? values[0] : undefined;
}
