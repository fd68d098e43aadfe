// `subscriptions/listen` (2026-07-28): one long POST whose SSE stream carries the change notifications
// a client asked for, each tagged with the listen request's id; acknowledged first, ended with a
// result when the gateway ends it, keep-alive comments in between.

import type { ServerResponse } from 'node:http';
import type { JsonRpcId, JsonRpcMessage, JsonRpcNotification } from '../../protocol/jsonrpc.ts';
import { Method } from '../../protocol/mcp.ts';
import { Meta } from '../../protocol/modern.ts';

/** What a listen asked for, cut down to what the backend can send. */
export interface ListenFilter {
  toolsListChanged?: true;
  promptsListChanged?: true;
  resourcesListChanged?: true;
  resourceSubscriptions?: string[];
}

const LIST_CHANGED: Readonly<Record<string, keyof ListenFilter>> = {
  [Method.toolsListChanged]: 'toolsListChanged',
  [Method.promptsListChanged]: 'promptsListChanged',
  [Method.resourcesListChanged]: 'resourcesListChanged',
};

/**
 * The part of a client's filter this backend can honour, from its `initialize` capabilities
 * (`listChanged` per list, `resources.subscribe` for resource updates).
 */
export function honoredFilter(asked: unknown, capabilities: Record<string, unknown>): ListenFilter {
  const wanted = (typeof asked === 'object' && asked !== null ? asked : {}) as Record<string, unknown>;
  const can = (name: string, flag: string) => {
    const capability = capabilities[name] as Record<string, unknown> | undefined;
    return capability?.[flag] === true;
  };
  const filter: ListenFilter = {};
  if (wanted.toolsListChanged === true && can('tools', 'listChanged')) filter.toolsListChanged = true;
  if (wanted.promptsListChanged === true && can('prompts', 'listChanged')) filter.promptsListChanged = true;
  if (wanted.resourcesListChanged === true && can('resources', 'listChanged'))
    filter.resourcesListChanged = true;
  const uris = wanted.resourceSubscriptions;
  if (Array.isArray(uris) && can('resources', 'subscribe')) {
    const valid = uris
      .filter((uri): uri is string => typeof uri === 'string' && uri.length <= 2048)
      .slice(0, 256);
    if (valid.length > 0) filter.resourceSubscriptions = [...new Set(valid)];
  }
  return filter;
}

export class ListenStream {
  readonly id: JsonRpcId;
  readonly filter: ListenFilter;
  readonly #res: ServerResponse;
  readonly #bufferBytes: number;
  readonly #keepAlive: NodeJS.Timeout | undefined;

  constructor(
    res: ServerResponse,
    id: JsonRpcId,
    filter: ListenFilter,
    options: { keepAliveMs: number; bufferBytes: number },
  ) {
    this.#res = res;
    this.id = id;
    this.filter = filter;
    this.#bufferBytes = options.bufferBytes;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    this.#write({
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { notifications: filter, _meta: { [Meta.subscriptionId]: id } },
    });
    if (options.keepAliveMs > 0) {
      this.#keepAlive = setInterval(() => this.#raw(': keep-alive\n\n'), options.keepAliveMs);
      this.#keepAlive.unref();
    }
    res.once('close', () => clearInterval(this.#keepAlive));
  }

  get open(): boolean {
    return !this.#res.writableEnded && !this.#res.destroyed;
  }

  onClose(listener: () => void): void {
    this.#res.once('close', listener);
  }

  /** A backend notification: sent, tagged, when this listen asked for it; anything else is not for a listen stream. */
  offer(message: JsonRpcMessage): void {
    if (!('method' in message) || 'id' in message) return;
    const flag = LIST_CHANGED[message.method];
    if (flag !== undefined) {
      if (this.filter[flag]) this.#write(tagged(message, this.id));
      return;
    }
    if (message.method !== Method.resourceUpdated) return;
    const uri = message.params?.uri;
    const uris = this.filter.resourceSubscriptions;
    if (typeof uri === 'string' && uris?.some((listened) => uri === listened || uri.startsWith(listened)))
      this.#write(tagged(message, this.id));
  }

  /** The gateway ends the subscription: the result that says so, then the end of the stream. */
  end(): void {
    clearInterval(this.#keepAlive);
    if (!this.open) return;
    this.#write({
      jsonrpc: '2.0',
      id: this.id,
      result: { resultType: 'complete', _meta: { [Meta.subscriptionId]: this.id } },
    });
    this.#res.end();
  }

  #write(message: JsonRpcMessage): void {
    this.#raw(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }

  #raw(text: string): void {
    if (!this.open) return;
    // A listener that does not read is cut off: it reconnects and re-lists, nothing is buffered for it.
    if (this.#res.writableLength > this.#bufferBytes) {
      this.#res.destroy();
      return;
    }
    this.#res.write(text);
  }
}

function tagged(message: JsonRpcNotification, id: JsonRpcId): JsonRpcNotification {
  const meta = (message.params?._meta ?? {}) as Record<string, unknown>;
  return { ...message, params: { ...message.params, _meta: { ...meta, [Meta.subscriptionId]: id } } };
}
