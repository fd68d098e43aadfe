// Server-sent event streams: event ids, a replay log for Last-Event-ID resumption, keep-alive comments.
// A stream outlives its HTTP connection: messages written while detached wait in the log for a resume.

import type { ServerResponse } from 'node:http';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { encodeMessage } from '../protocol/raw-json.ts';

export interface EventStreamOptions {
  /** Unique within the session; event ids are `<id>-<seq>`. */
  id: string;
  keepAliveMs: number;
  /** Events kept for replay after a reconnect. */
  replayEvents: number;
  /** Headers sent when a connection is first attached (session id and the like). */
  headers?: Readonly<Record<string, string>>;
  /** Whether to send the empty priming event the 2025-11-25 spec asks for (older clients choke on it). */
  prime: boolean;
}

/** One event as written: text, or pieces when it carries a passed-through result (see raw-json.ts). */
type Frame = string | readonly Buffer[];

interface LoggedEvent {
  seq: number;
  frame: Frame;
}

export class EventStream {
  readonly id: string;
  readonly #options: EventStreamOptions;
  readonly #log: LoggedEvent[] = [];
  #seq = 0;
  #res: ServerResponse | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #ended = false;
  /** Called when the attached connection goes away before the stream ended. */
  ondetach: () => void = () => {};

  constructor(options: EventStreamOptions) {
    this.id = options.id;
    this.#options = options;
  }

  get attached(): boolean {
    return this.#res !== undefined;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Parses `<stream>-<seq>` from a Last-Event-ID header. */
  static parseEventId(value: string): { stream: string; seq: number } | undefined {
    const dash = value.lastIndexOf('-');
    if (dash <= 0) return undefined;
    const seq = Number(value.slice(dash + 1));
    return Number.isSafeInteger(seq) && seq >= 0 ? { stream: value.slice(0, dash), seq } : undefined;
  }

  /** Sends headers on `res`, replays what came after `afterSeq`, then streams live. */
  attach(res: ServerResponse, afterSeq?: number): void {
    this.#detach();
    this.#res = res;
    if (!res.headersSent) {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        ...this.#options.headers,
      });
      res.flushHeaders();
    }
    res.once('close', () => {
      if (this.#res === res) {
        this.#detach();
        if (!this.#ended) this.ondetach();
      }
    });
    if (afterSeq === undefined) {
      if (this.#options.prime && this.#seq === 0) this.#write(this.#record(''));
    } else {
      for (const event of this.#log) if (event.seq > afterSeq) writeFrame(res, event.frame);
    }
    if (this.#ended) {
      this.#finishConnection();
      return;
    }
    this.#keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.#options.keepAliveMs);
    this.#keepAlive.unref();
  }

  send(message: JsonRpcMessage): void {
    if (this.#ended) return;
    this.#write(this.#record(encodeMessage(message)));
  }

  /** Sends the last message of the stream and closes the connection (the POST stream's final response). */
  finish(message?: JsonRpcMessage): void {
    if (this.#ended) return;
    if (message) this.send(message);
    this.#ended = true;
    this.#finishConnection();
  }

  /** Closes the connection without ending the stream (the client may resume). Idempotent. */
  close(): void {
    this.#ended = true;
    this.#finishConnection();
  }

  #record(data: string | readonly Buffer[]): Frame {
    const seq = ++this.#seq;
    const frame =
      typeof data === 'string'
        ? `id: ${this.id}-${seq}\ndata: ${data}\n\n`
        : [Buffer.from(`id: ${this.id}-${seq}\ndata: `), ...data, Buffer.from('\n\n')];
    if (this.#options.replayEvents > 0) {
      this.#log.push({ seq, frame });
      if (this.#log.length > this.#options.replayEvents) this.#log.shift();
    }
    return frame;
  }

  #write(frame: Frame): void {
    if (this.#res) writeFrame(this.#res, frame);
  }

  #finishConnection(): void {
    const res = this.#res;
    this.#detach();
    res?.end();
  }

  #detach(): void {
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    this.#res = undefined;
  }
}

function writeFrame(res: ServerResponse, frame: Frame): void {
  if (typeof frame === 'string') {
    res.write(frame);
    return;
  }
  res.cork();
  for (const part of frame) res.write(part);
  res.uncork();
}
