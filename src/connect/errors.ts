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
  /** The answer was not Streamable HTTP (wrong content type, invalid JSON). */
  | 'protocol';

export class GatewayError extends Error {
  readonly kind: GatewayErrorKind;
  readonly status: number | undefined;
  /** True when sending the same message again soon may succeed (connect failures, 5xx, 429). */
  readonly retryable: boolean;
  /** The server's Retry-After, when it sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    kind: GatewayErrorKind,
    message: string,
    options: { status?: number; retryable?: boolean; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'GatewayError';
    this.kind = kind;
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The JSON-RPC code a client sees when a request failed this way. */
export function jsonRpcCodeFor(kind: GatewayErrorKind): number {
  switch (kind) {
    case 'unreachable':
    case 'unavailable':
    case 'stream-lost':
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

/** Server-provided text made safe for a one-line message: no control characters, bounded length. */
export function sanitize(text: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point.
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
