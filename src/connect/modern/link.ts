// The bridge in the 2026-07-28 era (spec basic/transports/stdio.mdx toward the client, streamable-
// http.mdx toward the server): each stdio request is its own POST, its answer and what precedes it
// written to stdout as it arrives; a `notifications/cancelled` aborts that POST (closing the stream
// is how HTTP cancels); `subscriptions/listen` is a long-lived POST, reopened when it drops. No
// session, no GET stream, no MRTR state: InputRequiredResult and its retry pass through untouched.

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
import { cancelledRequestId } from '../../protocol/mcp.ts';
import { sanitize } from '../../util/sanitize.ts';
import { retryDelay, sleep } from '../delivery.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { GatewayError, jsonRpcCodeFor } from '../errors.ts';
import type { Reply } from '../gateway-client.ts';
import type { MessageText } from '../output.ts';
import { type PendingRequest, PendingRequests } from '../pending.ts';
import { claimedVersion, isListen, routingHeaders } from './envelope.ts';
import { eventMessage, type ModernHttp } from './http.ts';
import { ListenStreams } from './listen.ts';
import { Slots } from './slots.ts';
import { ToolHeaders } from './tool-headers.ts';

export interface ModernLinkOptions {
  http: ModernHttp;
  /** The version of the message that opened the era: the header for anything that claims none. */
  version: string;
  /** Writes one message to stdout; a returned promise holds back reading until the client caught up. */
  write(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined;
  log: BridgeLog;
  requestTimeoutMs: number;
  retryDelaysMs: readonly number[];
  outageWaitMs: number;
  /** Aborted when the bridge closes. */
  signal: AbortSignal;
}

/** POSTs in flight at once (listen streams apart); more wait for a slot rather than fail. */
export const MAX_CONCURRENT_POSTS = 32;
/** Notifications are answered 202 at once; anything slower is a server problem. */
const ONE_WAY_TIMEOUT_MS = 30_000;

export class ModernLink {
  readonly #options: ModernLinkOptions;
  readonly #pending: PendingRequests;
  readonly #slots = new Slots(MAX_CONCURRENT_POSTS);
  readonly #listens: ListenStreams;
  readonly #tools: ToolHeaders;

  constructor(options: ModernLinkOptions) {
    this.#options = options;
    this.#tools = new ToolHeaders(options.log);
    this.#pending = new PendingRequests(options.requestTimeoutMs, (request) => this.#onTimeout(request));
    this.#listens = new ListenStreams({
      post: (request, signal) => this.#post(request, signal),
      write: options.write,
      log: options.log,
      signal: options.signal,
    });
  }

  /** One message from the client; the promise settles when its exchange is over. */
  handle(message: JsonRpcMessage): Promise<void> {
    if (isRequest(message)) return isListen(message) ? this.#listens.open(message) : this.#request(message);
    if (isResponse(message)) {
      // A 2026 server sends no requests, so there is nothing a client could be answering.
      this.#options.log.warn(
        `dropped a response from the client (${String(message.id)}): nothing asked for it`,
      );
      return Promise.resolve();
    }
    if (message.method === 'notifications/cancelled') {
      const requestId = cancelledRequestId(message.params);
      if (requestId !== undefined) this.#cancel(requestId);
      return Promise.resolve();
    }
    return this.#oneWay(message);
  }

  /** Closes the listen streams (input ended: they would never end by themselves); returns their ids. */
  endListens(): JsonRpcId[] {
    return this.#listens.drain();
  }

  /** Every request still waiting (the bridge is closing): their exchanges are aborted. */
  drain(): JsonRpcId[] {
    const ids = this.#pending.drain().map((request) => {
      request.abort.abort();
      return request.id;
    });
    return [...ids, ...this.#listens.drain()];
  }

  /** Over HTTP, closing the stream is the cancellation; the server is sent no notification. */
  #cancel(requestId: JsonRpcId): void {
    const request = this.#pending.take(requestId);
    if (request) {
      this.#options.log.debug(
        `${request.method} (${String(requestId)}) cancelled by the client; POST aborted`,
      );
      request.abort.abort(new Error('cancelled by the client'));
      return;
    }
    this.#listens.cancel(requestId);
  }

  async #request(request: JsonRpcRequest): Promise<void> {
    const entry = this.#pending.add(request);
    if (!entry) {
      this.#options.write(
        errorResponse(request.id, ErrorCode.InvalidRequest, 'Invalid request: this id is already in use'),
      );
      return;
    }
    const signal = AbortSignal.any([this.#options.signal, entry.abort.signal]);
    let sent = false;
    try {
      await this.#slots.acquire(signal);
      try {
        const reply = await this.#post(request, signal);
        sent = true;
        await this.#forward(reply, entry);
      } finally {
        this.#slots.release();
      }
      if (this.#pending.has(entry)) {
        throw new GatewayError(
          'stream-lost',
          'the server ended its answer without a response to this request',
        );
      }
    } catch (error) {
      if (!this.#pending.has(entry)) return; // answered, timed out, cancelled or closing
      this.#pending.take(request.id);
      const lost = sent || mayHaveRun(error);
      const code = lost ? ErrorCode.BackendUnavailable : codeFor(error);
      this.#options.write(errorResponse(request.id, code, messageFor(request, error, lost)));
    }
  }

  /** POSTs one message, trying again only while the server certainly has not seen it. */
  async #post(message: JsonRpcMessage, signal: AbortSignal): Promise<Reply> {
    const version = claimedVersion(message) ?? this.#options.version;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const headers = { ...routingHeaders(message, version), ...this.#tools.headersFor(message) };
        return await this.#options.http.post(message, headers, {
          signal,
          interactive: true,
        });
      } catch (error) {
        if (!(error instanceof GatewayError) || !error.unsent || !error.retryable || signal.aborted)
          throw error;
        const delay = retryDelay(error, attempt, Date.now() - started, this.#options);
        if (delay === undefined) throw error;
        this.#options.log.debug(`${error.message}; retrying (attempt ${attempt + 1})`);
        await sleep(Math.max(delay, error.retryAfterMs ?? 0), signal);
      }
    }
  }

  /** Passes on what the server sends for one request until its answer; a broken stream throws. */
  async #forward(reply: Reply, entry: PendingRequest): Promise<void> {
    if (reply.kind === 'accepted') return;
    if (reply.kind === 'json') {
      const [only] = reply.messages;
      for (const message of reply.messages) {
        await this.#fromServer(
          message,
          entry,
          reply.messages.length === 1 && only === message ? reply.raw : undefined,
        );
      }
      return;
    }
    try {
      for await (const event of reply.events) {
        const message = eventMessage(event, this.#options.log);
        if (message) await this.#fromServer(message, entry, event.data);
        if (!this.#pending.has(entry)) break;
      }
    } finally {
      await reply.events.return(undefined).catch(() => undefined);
    }
  }

  #fromServer(message: JsonRpcMessage, entry: PendingRequest, raw?: MessageText): Promise<void> | undefined {
    if (isRequest(message)) {
      // spec stdio.mdx: a server MUST NOT write requests to stdout; a 2026 server sends none.
      this.#options.log.warn(
        `dropped a request from the server (${sanitize(message.method, 60)}): 2026-07-28 servers send none`,
      );
      return undefined;
    }
    if (isNotification(message)) {
      this.#pending.touch(entry);
      return this.#options.write(message, raw);
    }
    // An error with no id (or another id) on this request's own exchange is about this request.
    if (message.id !== entry.id && !('error' in message && message.id === null)) {
      this.#options.log.debug(
        `dropped an answer for ${String(message.id)} on the stream of ${String(entry.id)}`,
      );
      return undefined;
    }
    if (!this.#pending.take(entry.id)) return undefined;
    if (message.id !== entry.id) return this.#options.write({ ...message, id: entry.id });
    const filtered = entry.method === 'tools/list' ? this.#tools.filterList(message) : undefined;
    return filtered ? this.#options.write(filtered) : this.#options.write(message, raw);
  }

  async #oneWay(message: JsonRpcMessage): Promise<void> {
    const signal = AbortSignal.any([this.#options.signal, AbortSignal.timeout(ONE_WAY_TIMEOUT_MS)]);
    try {
      const reply = await this.#post(message, signal);
      if (reply.kind === 'stream') await reply.events.return(undefined);
    } catch (error) {
      if (this.#options.signal.aborted) return;
      const what = 'method' in message ? sanitize(message.method, 60) : 'a message';
      this.#options.log.warn(`could not deliver ${what}: ${errorText(error)}`);
    }
  }

  #onTimeout(request: PendingRequest): void {
    request.abort.abort(new Error('timed out'));
    this.#options.log.warn(`${request.method} (${String(request.id)}) got no answer or progress in time`);
    this.#options.write(
      errorResponse(
        request.id,
        ErrorCode.RequestTimeout,
        `mcp-relay: no answer from ${this.#options.http.displayUrl} in time (raise it with --timeout)`,
      ),
    );
  }
}

function codeFor(error: unknown): number {
  return error instanceof GatewayError ? jsonRpcCodeFor(error.kind) : ErrorCode.InternalError;
}

/** A POST that failed without an answer may still have reached the server, unless it certainly did not. */
function mayHaveRun(error: unknown): boolean {
  if (!(error instanceof GatewayError)) return false;
  if (error.unsent) return false;
  return error.kind === 'unreachable' || error.kind === 'unavailable' || error.kind === 'protocol';
}

/** Honest about what may have happened: once the POST was taken, the request may have run. */
function messageFor(request: JsonRpcRequest, error: unknown, sent: boolean): string {
  const reason = error instanceof GatewayError ? error.message : `internal error: ${errorText(error)}`;
  if (!sent) return `mcp-relay: ${reason}`;
  const what = request.method === 'tools/call' ? 'the tool' : sanitize(request.method, 60);
  return `mcp-relay: the answer was lost after the request was sent (${reason}): ${what} may have run; not sent again, so send it again with a new id if it is safe to`;
}
