// The client's requests still waiting for an answer, each with an idle timeout that progress
// notifications push back: a long tool call that reports progress stays alive, a silent one does not.

import type { JsonRpcId, JsonRpcRequest } from '../protocol/jsonrpc.ts';
import { idKey, isRequestId, type ProgressToken, progressTokenOf } from '../protocol/mcp.ts';

export interface PendingRequest {
  readonly id: JsonRpcId;
  readonly method: string;
  readonly progressToken: ProgressToken | undefined;
  /** Aborted when the request times out, is cancelled, or the bridge closes. */
  readonly abort: AbortController;
}

interface Entry {
  request: PendingRequest;
  timer: NodeJS.Timeout;
}

export class PendingRequests {
  readonly #timeoutMs: number;
  readonly #onTimeout: (request: PendingRequest) => void;
  readonly #byId = new Map<string, Entry>();
  readonly #byToken = new Map<string, string>();

  constructor(timeoutMs: number, onTimeout: (request: PendingRequest) => void) {
    this.#timeoutMs = timeoutMs;
    this.#onTimeout = onTimeout;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Starts tracking a request; undefined when one with the same id is already waiting. */
  add(message: JsonRpcRequest): PendingRequest | undefined {
    const key = idKey(message.id);
    if (this.#byId.has(key)) return undefined;
    const request: PendingRequest = {
      id: message.id,
      method: message.method,
      progressToken: progressTokenOf(message.params),
      abort: new AbortController(),
    };
    this.#byId.set(key, { request, timer: this.#startTimer(key) });
    if (request.progressToken !== undefined) this.#byToken.set(idKey(request.progressToken), key);
    return request;
  }

  has(request: PendingRequest): boolean {
    return this.#byId.get(idKey(request.id))?.request === request;
  }

  /** Stops tracking the request with this id and returns it; undefined when none waits. */
  take(id: JsonRpcId): PendingRequest | undefined {
    const key = idKey(id);
    const entry = this.#byId.get(key);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.#byId.delete(key);
    if (entry.request.progressToken !== undefined) this.#byToken.delete(idKey(entry.request.progressToken));
    return entry.request;
  }

  /** Restarts the idle timeout of a request that showed signs of life. */
  touch(request: PendingRequest): void {
    const key = idKey(request.id);
    const entry = this.#byId.get(key);
    if (!entry || entry.request !== request) return;
    clearTimeout(entry.timer);
    entry.timer = this.#startTimer(key);
  }

  /** Restarts the idle timeout of the request a progress notification belongs to. */
  touchByProgressToken(token: unknown): void {
    if (!isRequestId(token)) return;
    const key = this.#byToken.get(idKey(token));
    const entry = key === undefined ? undefined : this.#byId.get(key);
    if (entry) this.touch(entry.request);
  }

  /** Removes every request (bridge shutdown) and returns them. */
  drain(): PendingRequest[] {
    const all = [...this.#byId.values()].map((entry) => entry.request);
    for (const request of all) this.take(request.id);
    return all;
  }

  #startTimer(key: string): NodeJS.Timeout {
    return setTimeout(() => {
      const entry = this.#byId.get(key);
      if (!entry) return;
      this.take(entry.request.id);
      this.#onTimeout(entry.request);
    }, this.#timeoutMs);
  }
}
