// One session's attachment to a multiplexed backend: what the multiplexer must remember per session
// (its ids in flight, subscriptions, log level, capabilities) to route without guessing.

import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { logLevelRank } from '../protocol/mcp.ts';
import type { Downstream, Upstream } from '../sessions/types.ts';
import type { Multiplexer } from './multiplexer.ts';

export class MuxLink implements Upstream {
  readonly #mux: Multiplexer;
  readonly #downstream: Downstream;
  /** The session's request ids in flight (by idKey) → the id the backend saw. */
  readonly backendIds = new Map<string, number>();
  readonly subscriptions = new Set<string>();
  /** Ids of the MCP tasks this session created on the backend: the only ones it may see or touch. */
  readonly tasks = new Set<string>();
  /** The level this session asked for with logging/setLevel; undefined = everything the backend sends. */
  logLevel: string | undefined;
  /** The params of this session's initialize (its capabilities and protocol version). */
  clientInit: Record<string, unknown> | undefined;
  #closing: Promise<void> | undefined;

  /** The authenticated user of the session. */
  readonly user: string;

  constructor(mux: Multiplexer, downstream: Downstream, user: string) {
    this.#mux = mux;
    this.user = user;
    this.#downstream = downstream;
  }

  send(message: JsonRpcMessage): void {
    if (!this.#closing) this.#mux.fromClient(this, message);
  }

  deliver(message: JsonRpcMessage): void {
    this.#downstream.deliver(message);
  }

  hasCapability(name: string): boolean {
    const capabilities = this.clientInit?.capabilities as Record<string, unknown> | undefined;
    return capabilities?.[name] !== undefined;
  }

  wantsLog(level: unknown): boolean {
    if (this.logLevel === undefined) return true;
    return (logLevelRank(level) ?? Number.POSITIVE_INFINITY) >= (logLevelRank(this.logLevel) ?? 0);
  }

  close(): Promise<void> {
    this.#closing ??= this.#mux.detach(this);
    return this.#closing;
  }
}
