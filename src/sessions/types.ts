// The contracts between the HTTP front, sessions and the mux, so that none imports the others' internals.

import type {
  JsonRpcMessage,
  JsonRpcNotification,
  JsonRpcRequest,
  JsonRpcResponse,
} from '../protocol/jsonrpc.ts';

/** Who is calling, as established by authentication. Sessions are bound to it. */
export interface Identity {
  user: string;
  groups: readonly string[];
  /** How the user authenticated: 'api-key', 'oidc', 'mtls', 'ssh', 'none' (loopback without auth). */
  method: string;
  /**
   * The credential itself (an API key's id, a token's subject, a certificate's fingerprint): a session
   * answers only to the credential it was opened with, so another key of the same user cannot use it.
   */
  credential: string;
  /**
   * When the credential stops being valid (an OAuth token's `exp`, an API key's `expires`), in ms since
   * the epoch; absent when it lasts until revoked. What the credential grants beyond one request (an
   * app's cookie, a WebSocket) ends then.
   */
  expiresAt?: number;
}

/** What a front knows of the client behind a session, for an admin page: never used to decide anything. */
export interface SessionClient {
  /** The peer's address as the front sees it (the TCP peer; a proxy's when behind one). */
  readonly address?: string;
  /** `clientInfo` of its initialize, bounded and made one line. */
  readonly name?: string;
  readonly version?: string;
}

/** Where the messages that belong to one client request go: the POST's reply (JSON or SSE). */
export interface ReplyTarget {
  /** A message sent before the response (progress, a server→client request); switches the reply to SSE. */
  send(message: JsonRpcMessage): void;
  /**
   * The response; ends the reply. May return the JSON text it wrote, so the session keeps that for a
   * retry instead of serializing the response a second time.
   */
  finish(response: JsonRpcResponse): string | undefined;
  /** Optional: a refused request answered with the refusal's HTTP status (a front without statuses omits it). */
  refuse?(refusal: Refusal, response: JsonRpcResponse): void;
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

/** No room for another backend (a per-server or total cap, or shutdown): an expected refusal, not a fault. */
export type AtCapacity = { ok: false; reason: 'capacity'; message: string };

/**
 * Where a new session's backend is: `attach` makes the session's upstream there (called once, from the
 * session's constructor, so a session never exists without one), or no room for another backend.
 */
export type Placement = { ok: true; attach(downstream: Downstream): Upstream } | AtCapacity;

/**
 * The gateway refused a request before it reached the backend (policy, rate limit). `status` is the
 * HTTP status a front that has one should answer with (403, 429); without it the refusal is an
 * ordinary JSON-RPC error response.
 */
export interface Refusal {
  status?: number;
  code: number;
  message: string;
  retryAfterSeconds?: number;
}

/** How a request that reached the backend ended, for its `RequestTrack`. */
export type RequestEnding = 'response' | 'timeout' | 'cancelled' | 'closed';

/** Follows one admitted request to its end: may rewrite the response (filtered lists), or learn from it (tasks). */
export interface RequestTrack {
  settle(response: JsonRpcResponse, ending: RequestEnding): JsonRpcResponse;
}

export type Admission = { refusal: Refusal } | { track: RequestTrack | undefined };

/**
 * Policy and limits around one session (policy/gatekeeper.ts), in every front (HTTP, SSH):
 * the session asks it about each client request and each unsolicited backend notification.
 */
export interface RequestGate {
  /** Synchronous when no asynchronous check (a rate limit) applies. Never rejects. */
  admit(request: JsonRpcRequest): Admission | Promise<Admission>;
  /** Whether a backend notification not tied to a request may reach the session. */
  passes(notification: JsonRpcNotification): boolean;
}

/** Who may open a session, and the gate each session gets. */
export interface SessionGates {
  /** Checked before a session (and perhaps a backend) is created. Never rejects. */
  /** `client`: what the front knows of the client, for the record of a refusal. */
  admitSession(
    server: string,
    identity: Identity,
    client?: SessionClient,
  ): Refusal | undefined | Promise<Refusal | undefined>;
  /** Checked (and counted like a request) before a session's SSE stream is resumed or replaced. Never rejects. */
  admitStream(session: GatedSession): Refusal | undefined | Promise<Refusal | undefined>;
  /** The gate of a session that has just started; it learns of the session's end through `onClose`. */
  open(session: GatedSession): RequestGate;
}

/** What the gates see of a session. */
export interface GatedSession {
  readonly id: string;
  readonly server: string;
  readonly identity: Identity;
  readonly client?: SessionClient;
  onClose(listener: (session: GatedSession, reason: string) => void): void;
}
