// What the client told the server that a new session would not know: its log level and its resource
// subscriptions. Learned from the client's successful requests, replayed after a transparent
// re-initialize, so a restarted gateway keeps filtering logs and sending updates as the client asked.

import { isResponse, type JsonRpcMessage, type JsonRpcRequest } from '../protocol/jsonrpc.ts';

/** Ids of replayed requests: a prefix no client uses, so their answers are never taken for the client's. */
const REPLAY_ID_PREFIX = 'mcp-relay-replay-';

export class SessionState {
  #logLevel: string | undefined;
  readonly #subscriptions = new Set<string>();
  #nextReplayId = 1;

  /** Notes `request` once its own successful answer arrives; anything else passes unnoticed. */
  observe(request: JsonRpcRequest, message: JsonRpcMessage): void {
    if (!isResponse(message) || message.id !== request.id || !('result' in message)) return;
    const params = request.params ?? {};
    if (request.method === 'logging/setLevel' && typeof params.level === 'string') {
      this.#logLevel = params.level;
    } else if (request.method === 'resources/subscribe' && typeof params.uri === 'string') {
      this.#subscriptions.add(params.uri);
    } else if (request.method === 'resources/unsubscribe' && typeof params.uri === 'string') {
      this.#subscriptions.delete(params.uri);
    }
  }

  /** The requests that bring a new session to the same state, with ids of their own. */
  replay(): JsonRpcRequest[] {
    const requests: JsonRpcRequest[] = [];
    const next = (method: string, params: Record<string, unknown>): JsonRpcRequest => ({
      jsonrpc: '2.0',
      id: `${REPLAY_ID_PREFIX}${this.#nextReplayId++}`,
      method,
      params,
    });
    if (this.#logLevel !== undefined) requests.push(next('logging/setLevel', { level: this.#logLevel }));
    for (const uri of this.#subscriptions) requests.push(next('resources/subscribe', { uri }));
    return requests;
  }
}
