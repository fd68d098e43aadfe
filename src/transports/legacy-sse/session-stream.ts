// The one SSE stream of a legacy (2024-11-05) session: every message for the client goes on it — replies
// to its POSTed requests, progress, server→client requests, notifications — as `message` events. It is
// both the session's ReplyTarget for each request and its MessageSink for the rest, so the Session routes
// exactly as it does for Streamable HTTP and only the last hop differs.

import type { ServerResponse } from 'node:http';
import type { JsonRpcMessage, JsonRpcResponse } from '../../protocol/jsonrpc.ts';
import type { MessageSink, ReplyTarget } from '../../sessions/types.ts';
import { EventStream } from '../streamable-http/event-stream.ts';
import { ReplayLog } from '../streamable-http/replay-log.ts';

export interface SessionStreamOptions {
  keepAliveMs: number;
  /** Unsent bytes the client may leave unread before its connection (and so its session) is ended. */
  bufferBytes: number;
  /** Told when the client left more than `bufferBytes` unread. */
  onoverflow(held: number): void;
  /** Told once when the connection went away (the client left, or was cut): the session ends. */
  onclose(): void;
}

/** Nothing is replayed: a legacy client cannot resume a stream, its session ends with the connection. */
const NO_REPLAY = new ReplayLog({ maxBytes: 0, maxAgeMs: 0 });

export class SessionStream implements ReplyTarget, MessageSink {
  readonly #events: EventStream;

  constructor(options: SessionStreamOptions) {
    this.#events = new EventStream({
      id: 'm',
      keepAliveMs: options.keepAliveMs,
      replayEvents: 0,
      replay: NO_REPLAY,
      bufferBytes: options.bufferBytes,
      onoverflow: options.onoverflow,
      prime: false,
      event: 'message',
    });
    this.#events.ondetach = options.onclose;
  }

  /** Sends the stream's headers on `res` and, first of all events, the `endpoint` the client POSTs to. */
  open(res: ServerResponse, endpoint: string): void {
    this.#events.attach(res);
    this.#events.announce('endpoint', endpoint);
  }

  send(message: JsonRpcMessage): void {
    this.#events.send(message);
  }

  /** A response ends its request, not the stream: the stream carries the session's every reply. */
  finish(response: JsonRpcResponse): undefined {
    this.#events.send(response);
  }

  /** Ends the connection (the session ended). Idempotent. */
  close(retryAfterMs?: number): void {
    this.#events.close(retryAfterMs);
  }
}
