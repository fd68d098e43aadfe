// Server-sent event streams: event ids, a replay log for Last-Event-ID resumption, keep-alive comments.
// A stream outlives its HTTP connection: messages written while detached wait in the log for a resume.
// A connection holds at most `bufferBytes` its client has not read; past that it is closed (the client
// resumes), so a reader that never reads cannot grow the gateway.

import type { ServerResponse } from 'node:http';
import { ErrorCode, type JsonRpcMessage, type JsonRpcResponse } from '../../protocol/jsonrpc.ts';
import { encodeMessage } from '../../protocol/raw-json.ts';
import { type Frame, frameLength, type ReplayEntry, type ReplayLog } from './replay-log.ts';

/** How long a connection over the bound may make no progress when streams send no keep-alives (sse.keepAlive 0). */
const STALL_CHECK_WITHOUT_KEEP_ALIVE_MS = 15_000;

export interface EventStreamOptions {
  /** Unique within the session; event ids are `<id>-<seq>`. */
  id: string;
  keepAliveMs: number;
  /** Events this stream keeps for replay after a reconnect (within the session's `replay` bounds). */
  replayEvents: number;
  /** The session's replay log, shared by its streams. */
  replay: ReplayLog;
  /** Unsent bytes a connection may hold before it is closed as not reading. */
  bufferBytes: number;
  /** Told when a connection is closed for not reading (for the log). */
  onoverflow?: (held: number) => void;
  /** Headers sent when a connection is first attached (session id and the like). */
  headers?: Readonly<Record<string, string>>;
  /** Whether to send the empty priming event the 2025-11-25 spec asks for (older clients choke on it). */
  prime: boolean;
  /** The SSE event type of its messages: none for Streamable HTTP; `message` for the legacy SSE transport. */
  event?: string;
}

/** The last message of a stream, remembered small so a resume can say when it was not kept. */
interface FinalEvent {
  seq: number;
  id: JsonRpcResponse['id'];
  bytes: number;
  entry: ReplayEntry | undefined;
}

export class EventStream {
  readonly id: string;
  readonly #options: EventStreamOptions;
  /** This stream's kept events, oldest first (the session's log may have evicted some at the front). */
  #log: ReplayEntry[] = [];
  #seq = 0;
  #res: ServerResponse | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  /** The connection being watched for a client that stopped reading. */
  #watched: ServerResponse | undefined;
  #final: FinalEvent | undefined;
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
    // One connection per stream: a newer one replaces the old, which is ended rather than left open.
    const previous = this.#res;
    this.#detach();
    if (previous && previous !== res) previous.end();
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
      for (const event of this.#log) if (event.live && event.seq > afterSeq) this.#write(event.frame);
      const final = this.#final;
      if (final && final.seq > afterSeq && !final.entry?.live) this.#write(lostFinalFrame(this.id, final));
    }
    if (this.#res !== res) return;
    if (this.#ended) {
      this.#finishConnection();
      return;
    }
    // sse.keepAlive 0 means none (as the endpoint's Mcp-Relay-Keep-Alive header says), not a 1 ms timer.
    if (this.#options.keepAliveMs <= 0) return;
    this.#keepAlive = setInterval(() => this.#write(': keep-alive\n\n'), this.#options.keepAliveMs);
    this.#keepAlive.unref();
  }

  send(message: JsonRpcMessage): void {
    if (this.#ended) return;
    this.#write(this.#record(encodeMessage(message)));
  }

  /**
   * An event outside the sequence (not kept for replay), through the same bound as messages: the legacy
   * transport's `endpoint` event. `data` must be one line.
   */
  announce(event: string, data: string): void {
    if (this.#ended) return;
    this.#write(`event: ${event}\ndata: ${data}\n\n`);
  }

  /** Sends the last message of the stream and closes the connection (the POST stream's final response). */
  finish(message?: JsonRpcMessage): void {
    if (this.#ended) return;
    if (message) {
      const frame = this.#record(encodeMessage(message));
      this.#final = {
        seq: this.#seq,
        id: 'id' in message ? (message.id as JsonRpcResponse['id']) : null,
        bytes: frameLength(frame),
        entry: this.#log.at(-1)?.seq === this.#seq ? this.#log.at(-1) : undefined,
      };
      this.#write(frame);
    }
    this.#ended = true;
    this.#finishConnection();
  }

  /** Ends the stream and its connection, and forgets its kept events. Idempotent. */
  close(retryAfterMs?: number): void {
    // A last word to a connected client (the gateway is going away): wait this long before reconnecting.
    if (retryAfterMs !== undefined && !this.#ended) this.#write(`retry: ${retryAfterMs}\n\n`);
    this.#ended = true;
    this.#finishConnection();
    for (const event of this.#log) this.#options.replay.remove(event);
    this.#log = [];
  }

  #record(data: string | readonly Buffer[]): Frame {
    const seq = ++this.#seq;
    const head = `${this.#options.event ? `event: ${this.#options.event}\n` : ''}id: ${this.id}-${seq}\ndata: `;
    const frame: Frame =
      typeof data === 'string' ? `${head}${data}\n\n` : [Buffer.from(head), ...data, Buffer.from('\n\n')];
    if (this.#options.replayEvents > 0) {
      // Events the session's log evicted (bytes, age) are at the front: drop their husks first.
      while (this.#log[0] && !this.#log[0].live) this.#log.shift();
      const entry = this.#options.replay.add(seq, frame);
      if (entry) this.#log.push(entry);
      if (this.#log.length > this.#options.replayEvents) {
        const oldest = this.#log.shift();
        if (oldest) this.#options.replay.remove(oldest);
      }
    }
    return frame;
  }

  /** Writes to the connection unless its client has left more than the bound unread: then closes it. */
  #write(frame: Frame): void {
    const res = this.#res;
    if (!res) return;
    if (res.writableLength > this.#options.bufferBytes) {
      this.#cut(res);
      return;
    }
    if (typeof frame === 'string') res.write(frame);
    else {
      res.cork();
      for (const part of frame) res.write(part);
      res.uncork();
    }
    if (res.writableLength > this.#options.bufferBytes) this.#watchStall(res);
  }

  /**
   * A connection over the bound that makes no progress for a keep-alive interval is closed, even when
   * nothing more is written to it (a big last message to a client that stopped reading).
   */
  #watchStall(res: ServerResponse): void {
    if (this.#watched === res) return;
    this.#watched = res;
    let held = res.writableLength;
    const stop = () => {
      clearInterval(timer);
      if (this.#watched === res) this.#watched = undefined;
    };
    const interval =
      this.#options.keepAliveMs > 0 ? this.#options.keepAliveMs : STALL_CHECK_WITHOUT_KEEP_ALIVE_MS;
    const timer = setInterval(() => {
      const now = res.writableLength;
      if (res.destroyed || now <= this.#options.bufferBytes) stop();
      else if (now >= held) {
        stop();
        this.#cut(res);
      } else held = now;
    }, interval);
    timer.unref();
    res.once('close', stop);
  }

  /** Closes a connection whose client does not read; the stream stays open for a resume. */
  #cut(res: ServerResponse): void {
    this.#options.onoverflow?.(res.writableLength);
    const current = this.#res === res;
    if (current) this.#detach();
    res.destroy();
    if (current && !this.#ended) this.ondetach();
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

/**
 * What a resumed stream says in place of a last message it did not keep (too big for the replay log,
 * or older than it): the request ran, and its answer is gone — never silence the client would wait on.
 */
function lostFinalFrame(stream: string, final: FinalEvent): string {
  const response: JsonRpcResponse = {
    jsonrpc: '2.0',
    id: final.id,
    error: {
      code: ErrorCode.InternalError,
      message: `the response (${final.bytes} bytes) was sent on a connection that was lost and is no longer kept for resumption (sse.replayBytes, sse.replayAge); the request did run`,
    },
  };
  return `id: ${stream}-${final.seq}\ndata: ${JSON.stringify(response)}\n\n`;
}
