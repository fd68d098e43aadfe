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
