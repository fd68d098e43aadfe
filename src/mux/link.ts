// One session's attachment to a multiplexed backend: what the multiplexer must remember per session
// (subscriptions, log level, capabilities, tasks) to route without guessing. Private to the mux: the
// session holds only the `Upstream` that `Multiplexer.attach` returns.

import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { logLevelRank } from '../protocol/mcp.ts';
import type { Downstream } from '../sessions/types.ts';

export class MuxLink {
  readonly #downstream: Downstream;
  /** The authenticated user of the session. */
  readonly user: string;
  readonly subscriptions = new Set<string>();
  /** Ids of the MCP tasks this session created on the backend: the only ones it may see or touch. */
  readonly tasks = new Set<string>();
  /** The level this session asked for with logging/setLevel; undefined = everything the backend sends. */
  logLevel: string | undefined;
  /** The params of this session's initialize (its capabilities and protocol version). */
  clientInit: Record<string, unknown> | undefined;

  constructor(downstream: Downstream, user: string) {
    this.#downstream = downstream;
    this.user = user;
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
}
