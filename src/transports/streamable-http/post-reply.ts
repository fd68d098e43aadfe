// The reply to one POSTed request: plain JSON when the response comes quickly and alone, upgraded to
// an SSE stream as soon as anything else must go first (progress, sampling) or the answer takes a while.

import type { ServerResponse } from 'node:http';
import { sendJson } from '../../http/replies.ts';
import type { JsonRpcMessage, JsonRpcResponse } from '../../protocol/jsonrpc.ts';
import type { Refusal, ReplyTarget } from '../../sessions/types.ts';
import type { EventStream } from './event-stream.ts';

/**
 * How long a reply may stay silent before it becomes an SSE stream: long enough that ordinary calls
 * are answered as cheap JSON, short enough that slow calls get keep-alives and become resumable.
 */
export const JSON_REPLY_WINDOW_MS = 1_000;

export class PostReply implements ReplyTarget {
  readonly #res: ServerResponse;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #openStream: () => EventStream;
  #stream: EventStream | undefined;
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  /** `openStream` creates (and registers for resumption) the SSE stream when one is needed. */
  constructor(res: ServerResponse, headers: Readonly<Record<string, string>>, openStream: () => EventStream) {
    this.#res = res;
    this.#headers = headers;
    this.#openStream = openStream;
    this.#timer = setTimeout(() => this.#upgrade(), JSON_REPLY_WINDOW_MS);
    this.#timer.unref();
  }

  send(message: JsonRpcMessage): void {
    if (this.#done) return;
    this.#upgrade().send(message);
  }

  finish(response: JsonRpcResponse): string | undefined {
    if (this.#done) return undefined;
    this.#done = true;
    clearTimeout(this.#timer);
    if (this.#stream) this.#stream.finish(response);
    else if (!this.#res.writableEnded && !this.#res.destroyed)
      return sendJson(this.#res, 200, response, this.#headers);
    return undefined;
  }

  /** A request the gateway refused (policy 403, rate limit 429): the status says so while it still can. */
  refuse(refusal: Refusal, response: JsonRpcResponse): void {
    if (this.#done || this.#stream || refusal.status === undefined) {
      this.finish(response);
      return;
    }
    this.#done = true;
    clearTimeout(this.#timer);
    if (this.#res.writableEnded || this.#res.destroyed) return;
    const retryAfter: Record<string, string> =
      refusal.retryAfterSeconds === undefined ? {} : { 'retry-after': String(refusal.retryAfterSeconds) };
    sendJson(this.#res, refusal.status, response, { ...this.#headers, ...retryAfter });
  }

  #upgrade(): EventStream {
    clearTimeout(this.#timer);
    if (!this.#stream) {
      this.#stream = this.#openStream();
      if (!this.#res.destroyed) this.#stream.attach(this.#res);
    }
    return this.#stream;
  }
}
