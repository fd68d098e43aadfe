// The seam between the bridge and a transport: what the bridge's recovery rules (bridge.ts,
// reinitialize.ts) need from any way of reaching an MCP server — Streamable HTTP, the legacy HTTP+SSE
// transport, a WebSocket. Each transport says what it knows about a message that failed, in the
// GatewayError it throws: `unsent` (the server certainly never saw it: it may go again),
// 'session-expired' (the session is gone and this was not sent: re-initialize, then send it),
// 'outcome-unknown' (it may have run: the client gets an honest error, it is never sent again).

import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import type { BridgeLog } from './diagnostics.ts';
import type { MessageText } from './output.ts';

export type TransportKind = 'http' | 'sse' | 'ws';

export interface DeliveryHooks {
  /**
   * Every message the gateway sends back while this one is delivered, the answer included, with its
   * text as received when there is one. A returned promise holds back reading until it settles (the
   * client reads slowly), so the gateway's stream waits instead of the bridge buffering it.
   */
  onMessage(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined | void;
  /** True once nobody waits for the answer any more (answered, timed out, cancelled). */
  answered(): boolean;
  signal: AbortSignal;
  log: BridgeLog;
  /** Waits before each quick retry of a message that was certainly not sent; its length is the number of quick retries. */
  retryDelaysMs: readonly number[];
  /**
   * How long to keep retrying (at the last of `retryDelaysMs`) while no connection can be made at all,
   * so a gateway restart is waited out. Default: no longer than the quick retries.
   */
  outageWaitMs?: number;
}

export interface EventStreamHooks {
  /** A returned promise holds back reading until the client has taken the message. */
  onMessage(message: JsonRpcMessage, raw: string): Promise<void> | undefined | void;
  /** Re-initializes after the session ended; the bridge then listens again and aborts this listener. */
  onSessionExpired(): Promise<void>;
  /** Aborted when the session is replaced or the bridge closes. */
  signal: AbortSignal;
  log: BridgeLog;
}

/** One way of reaching an MCP server, in the terms the bridge's recovery rules speak. */
export interface GatewayConnection {
  readonly transport: TransportKind;
  /** The endpoint without credentials or query, safe to show in messages. */
  readonly displayUrl: string;
  /** The current session's id (the server's, or one made up for a WebSocket); undefined before initialize. */
  readonly sessionId: string | undefined;
  readonly protocolVersion: string | undefined;
  /** Noted from the answer to initialize (Streamable HTTP sends it as MCP-Protocol-Version). */
  setProtocolVersion(version: string): void;
  /** Forgets the session, so the next message must be an initialize that starts a new one. */
  resetSession(): void;
  /**
   * Sends one message and, for a request, reads what the server sends for it until `hooks.answered()`.
   * Rejects with a GatewayError that says whether the server may have seen it (see above).
   */
  deliver(message: JsonRpcMessage, hooks: DeliveryHooks): Promise<void>;
  /**
   * Passes on what the server sends outside any request (list_changed, logging, its own requests)
   * until the signal aborts; calls `onSessionExpired` when the session ends under it. Never throws.
   */
  listen(hooks: EventStreamHooks): Promise<void>;
  /** Ends the session at the server, best-effort and bounded; never throws. */
  terminate(timeoutMs: number): Promise<void>;
  /** Drops every connection; idempotent. */
  close(): Promise<void>;
}
