// Why a message could not reach the gateway: one typed error the bridge turns into a JSON-RPC error
// response for the client (requests) or a stderr line (notifications). Never carries a credential.

import { ErrorCode } from '../protocol/jsonrpc.ts';

export type GatewayErrorKind =
  /** No HTTP answer at all: connection refused, DNS, TLS, reset. */
  | 'unreachable'
  /** 5xx or 429: the gateway is there but cannot serve now. */
  | 'unavailable'
  /** 404 for a request that carried a session id: the session ended (gateway restart, expiry). */
  | 'session-expired'
  | 'unauthorized'
  | 'forbidden'
  /** Any other 4xx: the request itself was refused. */
  | 'rejected'
  /** 405 on GET: the server offers no standalone event stream (allowed by the spec). */
  | 'not-supported'
  /** The response stream ended before the answer and could not be resumed. */
  | 'stream-lost'
  /**
   * A request that may have reached the server got no answer (connection reset, stream lost, a 5xx
   * after the body was sent): it may have run, so it is never sent again.
   */
  | 'outcome-unknown'
  /** The answer was not Streamable HTTP (wrong content type, invalid JSON). */
  | 'protocol';

export class GatewayError extends Error {
  readonly kind: GatewayErrorKind;
  readonly status: number | undefined;
  /** True when sending the same message again soon may succeed (connect failures, 5xx, 429). */
  readonly retryable: boolean;
  /** The server's Retry-After, when it sent one. */
  readonly retryAfterMs: number | undefined;
  /**
   * True when the server certainly did not act on the message: no connection was made (refused,
   * DNS, TLS), or it refused it at admission (429, 503). Only such a request may be sent again.
   */
  readonly unsent: boolean;

  constructor(
    kind: GatewayErrorKind,
    message: string,
    options: {
      status?: number;
      retryable?: boolean;
      retryAfterMs?: number;
      unsent?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'GatewayError';
    this.kind = kind;
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.unsent = options.unsent ?? false;
  }
}

/** How a transport's refusal reads, and what a 429 or 5xx proves (see `statusError`). */
export interface RefusalContext {
  /** Who answered, as messages name it: connect's own gateway, or any MCP server. */
  peer: 'gateway' | 'server';
  displayUrl: string;
  /** The error text the answer carried, if any. */
  detail?: string;
  /** The Retry-After header, if any. */
  retryAfter?: string | undefined;
  /**
   * Whether a 429 or 5xx proves the message never reached the server (a refused WebSocket upgrade, a
   * GET that opens a stream). Default: for 429 and 503 only, refusals at the door; any other 5xx may
   * come after the request ran.
   */
  unsent?: boolean;
  /** What a 404 did not find (default "MCP endpoint"). */
  endpoint?: string;
  /** What any other status refused (default "the request"). */
  refused?: string;
}

/**
 * The error for an HTTP status every transport reads alike: 401 and 403 are the credential's, 404 a
 * wrong URL, 429 and 5xx worth trying again (sent again only when `unsent`), anything else a refusal.
 * A transport answers its own cases first (a redirect, an expired session, 405 on GET).
 */
export function statusError(status: number, context: RefusalContext): GatewayError {
  const suffix = context.detail ? `: ${context.detail}` : '';
  const peer = `the ${context.peer}`;
  if (status === 401)
    return new GatewayError('unauthorized', `${peer} requires authentication (401)${suffix}`, { status });
  if (status === 403)
    return new GatewayError('forbidden', `${peer} refused access (403)${suffix}`, { status });
  if (status === 404) {
    const endpoint = context.endpoint ?? 'MCP endpoint';
    return new GatewayError('rejected', `no ${endpoint} at ${context.displayUrl} (404): check the URL`, {
      status,
    });
  }
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(context.retryAfter);
    const what = status === 429 ? 'is rate limiting this client' : 'failed';
    return new GatewayError('unavailable', `${peer} at ${context.displayUrl} ${what} (${status})${suffix}`, {
      status,
      retryable: true,
      unsent: context.unsent ?? (status === 429 || status === 503),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  const refused = context.refused ?? 'the request';
  return new GatewayError('rejected', `${peer} refused ${refused} (${status})${suffix}`, { status });
}

/** A Retry-After header (seconds or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The JSON-RPC code a client sees when a request failed this way. */
export function jsonRpcCodeFor(kind: GatewayErrorKind): number {
  switch (kind) {
    case 'unreachable':
    case 'unavailable':
    case 'stream-lost':
    case 'outcome-unknown':
      return ErrorCode.BackendUnavailable;
    case 'session-expired':
      return ErrorCode.SessionNotFound;
    case 'unauthorized':
    case 'forbidden':
    case 'rejected':
      return ErrorCode.Refused;
    case 'not-supported':
    case 'protocol':
      return ErrorCode.InternalError;
  }
}
