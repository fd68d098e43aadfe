// The contracts between the HTTP front, sessions and the router, so that none imports the others' internals.

import type { JsonRpcMessage, JsonRpcResponse } from '../protocol/jsonrpc.ts';

/** Who is calling, as established by authentication. Sessions are bound to it. */
export interface Identity {
  user: string;
  groups: readonly string[];
  /** How the user authenticated: 'api-key', 'none' (loopback without auth), later 'oidc', 'mtls', 'ssh'. */
  method: string;
}

/** Where the messages that belong to one client request go: the POST's reply (JSON or SSE). */
export interface ReplyTarget {
  /** A message sent before the response (progress, a server→client request); switches the reply to SSE. */
  send(message: JsonRpcMessage): void;
  /** The response; ends the reply. */
  finish(response: JsonRpcResponse): void;
}

/** A stream for messages not tied to a request (the GET stream). */
export interface MessageSink {
  send(message: JsonRpcMessage): void;
}

/**
 * The session's view of its backend: a link into the multiplexer that owns the backend process
 * (in every isolation mode; per-session is the case of a single link).
 */
export interface Upstream {
  /** Forwards one client message. Failures come back as error responses through the session. */
  send(message: JsonRpcMessage): void;
  /** Detaches the session; the upstream cancels what the session still had in flight. Idempotent. */
  close(): Promise<void>;
}

/** What an upstream calls on the session it serves. */
export interface Downstream {
  deliver(message: JsonRpcMessage): void;
}
