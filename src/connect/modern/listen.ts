// `subscriptions/listen` streams (spec basic/patterns/subscriptions.mdx): one long-lived POST each,
// relayed to stdout as it comes. A stream that drops without its result is reopened with backoff;
// the server acknowledges again, and instead of a second acknowledgement the client gets the
// list_changed (and resources/updated) notifications it subscribed to, so it fetches again whatever
// changed in the gap. When reopening keeps failing, the client gets `notifications/cancelled` for the
// listen id: the one server-sent cancellation the spec allows (basic/patterns/cancellation.mdx).

import { errorText } from '../../errors.ts';
import {
  ErrorCode,
  errorResponse,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../protocol/jsonrpc.ts';
import { idKey } from '../../protocol/mcp.ts';
import { sanitize } from '../../util/sanitize.ts';
import { sleep } from '../delivery.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { GatewayError, jsonRpcCodeFor } from '../errors.ts';
import type { Reply } from '../gateway-client.ts';
import type { MessageText } from '../output.ts';
import { SUBSCRIPTION_ID_META_KEY } from './envelope.ts';
import { eventMessage } from './http.ts';

export interface ListenStreamsOptions {
  post(request: JsonRpcRequest, signal: AbortSignal): Promise<Reply>;
  write(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined;
  log: BridgeLog;
  signal: AbortSignal;
}

/** Open listen streams at once; another gets the in-band error the SDK's servers use for theirs. */
export const MAX_LISTEN_STREAMS = 8;
/** Reopens in a row that brought nothing before the subscription is given up. */
const MAX_FRUITLESS_REOPENS = 5;
const REOPEN_DELAY_MS = 500;
const MAX_REOPEN_DELAY_MS = 8_000;
const ACKNOWLEDGED = 'notifications/subscriptions/acknowledged';

interface Outcome {
  /** The listen request got its result (or an error): the subscription is over. */
  finished: boolean;
  /** Messages that came on this opening. */
  received: number;
  failure: unknown;
}

export class ListenStreams {
  readonly #options: ListenStreamsOptions;
  readonly #open = new Map<string, { id: JsonRpcId; abort: AbortController }>();

  constructor(options: ListenStreamsOptions) {
    this.#options = options;
  }

  cancel(id: JsonRpcId): void {
    const stream = this.#open.get(idKey(id));
    if (!stream) return;
    this.#open.delete(idKey(id));
    stream.abort.abort(new Error('cancelled by the client'));
    this.#options.log.debug(`subscriptions/listen (${String(id)}) cancelled by the client; stream closed`);
  }

  /** Closes every stream and returns their ids. */
  drain(): JsonRpcId[] {
    const ids = [...this.#open.values()].map((stream) => {
      stream.abort.abort(new Error('bridge closed'));
      return stream.id;
    });
    this.#open.clear();
    return ids;
  }

  async open(request: JsonRpcRequest): Promise<void> {
    const key = idKey(request.id);
    if (this.#open.has(key)) {
      this.#options.write(
        errorResponse(request.id, ErrorCode.InvalidRequest, 'Invalid request: this id is already in use'),
      );
      return;
    }
    if (this.#open.size >= MAX_LISTEN_STREAMS) {
      this.#options.write(errorResponse(request.id, ErrorCode.InternalError, 'Subscription limit reached'));
      return;
    }
    const stream = { id: request.id, abort: new AbortController() };
    this.#open.set(key, stream);
    const signal = AbortSignal.any([this.#options.signal, stream.abort.signal]);
    const state: { honored: Record<string, unknown> | undefined } = { honored: undefined };
    try {
      for (let fruitless = 0; ; ) {
        const outcome = await this.#once(request, signal, state);
        if (outcome.finished || signal.aborted) return;
        const why = outcome.failure === undefined ? 'the stream ended' : errorText(outcome.failure);
        if (state.honored === undefined && isFinal(outcome.failure)) {
          const error = outcome.failure as GatewayError;
          this.#options.write(
            errorResponse(request.id, jsonRpcCodeFor(error.kind), `mcp-relay: ${error.message}`),
          );
          return;
        }
        fruitless = outcome.received > 0 ? 0 : fruitless + 1;
        if (fruitless > MAX_FRUITLESS_REOPENS) {
          this.#options.log.warn(
            `subscriptions/listen (${String(request.id)}): ${why}; could not reopen it, giving up`,
          );
          this.#options.write({
            jsonrpc: '2.0',
            method: 'notifications/cancelled',
            params: { requestId: request.id, reason: `mcp-relay: the subscription stream was lost (${why})` },
          });
          return;
        }
        const delay = Math.min(MAX_REOPEN_DELAY_MS, REOPEN_DELAY_MS * 2 ** Math.max(0, fruitless - 1));
        this.#options.log.info(
          `subscriptions/listen (${String(request.id)}): ${why}; reopening in ${delay} ms`,
        );
        await sleep(delay, signal);
      }
    } catch (error) {
      if (!signal.aborted) this.#options.log.error(`subscriptions/listen: ${errorText(error)}`);
    } finally {
      if (this.#open.get(key) === stream) this.#open.delete(key);
    }
  }

  /** One opening of the stream, relayed until it ends, breaks or brings the listen result. */
  async #once(
    request: JsonRpcRequest,
    signal: AbortSignal,
    state: { honored: Record<string, unknown> | undefined },
  ): Promise<Outcome> {
    const outcome: Outcome = { finished: false, received: 0, failure: undefined };
    let reply: Reply;
    try {
      reply = await this.#options.post(request, signal);
    } catch (error) {
      outcome.failure = error;
      return outcome;
    }
    const relay = async (message: JsonRpcMessage, raw?: MessageText) => {
      outcome.received++;
      if (isRequest(message)) {
        this.#options.log.warn(`dropped a request from the server (${sanitize(message.method, 60)})`);
        return;
      }
      if (isResponse(message)) {
        if (message.id !== request.id && message.id !== null) return;
        outcome.finished = true;
        await this.#options.write(message.id === request.id ? message : { ...message, id: request.id }, raw);
        return;
      }
      if (isNotification(message) && message.method === ACKNOWLEDGED) {
        if (state.honored !== undefined) {
          await this.#resync(request.id, state.honored);
          return;
        }
        const honored = message.params?.notifications;
        state.honored =
          typeof honored === 'object' && honored !== null ? (honored as Record<string, unknown>) : {};
      }
      await this.#options.write(message, raw);
    };
    try {
      if (reply.kind === 'json') for (const message of reply.messages) await relay(message);
      else if (reply.kind === 'stream') {
        for await (const event of reply.events) {
          const message = eventMessage(event, this.#options.log);
          if (message) await relay(message, event.data);
          if (outcome.finished) break;
        }
        await reply.events.return(undefined).catch(() => undefined);
      }
    } catch (error) {
      outcome.failure = error;
    }
    return outcome;
  }

  /** After a reopen: what may have changed in the gap, as the notifications the client opted into. */
  async #resync(id: JsonRpcId, honored: Record<string, unknown>): Promise<void> {
    const meta = { _meta: { [SUBSCRIPTION_ID_META_KEY]: id } };
    const changed: [string, string][] = [
      ['toolsListChanged', 'notifications/tools/list_changed'],
      ['promptsListChanged', 'notifications/prompts/list_changed'],
      ['resourcesListChanged', 'notifications/resources/list_changed'],
    ];
    for (const [flag, method] of changed) {
      if (honored[flag] === true) await this.#options.write({ jsonrpc: '2.0', method, params: { ...meta } });
    }
    const uris = honored.resourceSubscriptions;
    for (const uri of Array.isArray(uris) ? uris : []) {
      if (typeof uri !== 'string') continue;
      await this.#options.write({
        jsonrpc: '2.0',
        method: 'notifications/resources/updated',
        params: { uri, ...meta },
      });
    }
  }
}

/** A refusal that will not change by reopening (auth, a 4xx without a JSON-RPC body). */
function isFinal(failure: unknown): boolean {
  return (
    failure instanceof GatewayError &&
    !failure.retryable &&
    !failure.unsent &&
    failure.kind !== 'stream-lost' &&
    failure.kind !== 'protocol'
  );
}
