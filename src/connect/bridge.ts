// The `connect` bridge: newline-delimited JSON-RPC on a stdio pair (Claude Desktop) on one side, an MCP
// server on the other through a GatewayConnection (connection.ts: Streamable HTTP, legacy SSE or a
// WebSocket). Every client request gets exactly one answer, in time; the recovery rules live here.
// The client's first message decides the era for the life of the process: `initialize` (or anything
// without a 2026-07-28 claim) keeps this path; a request claiming a version in `_meta` hands every
// message to modern/link.ts. A `server/discover` before that decides nothing (modern/probe.ts).

import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { formatDuration } from '../config/units.ts';
import { errorText } from '../errors.ts';
import {
  ErrorCode,
  errorResponse,
  isInvalid,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  validateMessage,
} from '../protocol/jsonrpc.ts';
import { cancelledRequestId } from '../protocol/mcp.ts';
import { sanitize } from '../util/sanitize.ts';
import { VERSION } from '../version.ts';
import type { AuthProvider } from './auth.ts';
import type { DeliveryHooks, GatewayConnection, TransportKind } from './connection.ts';
import { type BridgeLog, silentBridgeLog } from './diagnostics.ts';
import type { ClientCertificate, ProxySettings } from './dispatcher.ts';
import { GatewayError, jsonRpcCodeFor } from './errors.ts';
import type { GatewayClientOptions } from './gateway-client.ts';
import { EraGate } from './modern/era.ts';
import { MessageOutput, type MessageText } from './output.ts';
import { type PendingRequest, PendingRequests } from './pending.ts';
import { reinitialize } from './reinitialize.ts';
import { SessionState } from './session-state.ts';
import { createConnection, type TransportChoice } from './transports.ts';

export interface BridgeOptions {
  /** The MCP endpoint, e.g. https://mcp.example.com/mcp/3d, http://host:8000/sse or wss://host/ws/3d. */
  url: URL | string;
  /** How to speak to it (transports.ts); default auto: WebSocket for ws(s)://, else Streamable HTTP falling back to legacy SSE. */
  transport?: TransportChoice | undefined;
  /** Extra headers for every HTTP request (already expanded); they win over `auth`. */
  headers?: Readonly<Record<string, string>>;
  auth?: AuthProvider;
  /** PEM text of CA certificates to trust besides the system's. */
  ca?: string;
  /** Reach the gateway through this Unix socket (SSH attached mode); the URL then only names the path. */
  socketPath?: string;
  /** Client certificate and key (PEM text) for gateways that require mTLS. */
  clientCert?: ClientCertificate | undefined;
  /** Proxy settings; without them the bridge connects directly (it never reads the environment itself). */
  proxy?: ProxySettings | undefined;
  input: Readable;
  output: Writable;
  log?: BridgeLog;
  /** A request with no answer and no progress for this long gets an error. Default 5 minutes. */
  requestTimeoutMs?: number;
  /** Bound on the best-effort DELETE, and on waiting for in-flight requests when input ends. Default 2 s. */
  closeTimeoutMs?: number;
  /** Waits before each quick retry of a POST the gateway could not take. Default 200, 500, 1000 ms. */
  retryDelaysMs?: readonly number[];
  /** How long a message waits for a gateway that refuses connections (a restart) before failing. Default 15 s. */
  outageWaitMs?: number;
  /**
   * A connection or stream silent this long is dead (no headers, no event, no keep-alive comment).
   * Default: 3 × the keep-alive interval the gateway advertises, none for servers that advertise none; 0: never.
   */
  idleTimeoutMs?: number | undefined;
}

export interface Bridge {
  /** Resolves once the bridge has stopped (input ended or close()) and its connections are released. */
  readonly closed: Promise<void>;
  /** Stops the bridge: pending requests get an error, the session is deleted (bounded). Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;
const DEFAULT_RETRY_DELAYS_MS = [200, 500, 1_000];
/** A gateway restart takes 0.5–6 s; waiting this long for it keeps the restart invisible to the user. */
const DEFAULT_OUTAGE_WAIT_MS = 15_000;
/** Notifications and responses are answered 202 at once; anything slower is a gateway problem. */
const ONE_WAY_TIMEOUT_MS = 30_000;

export function createBridge(options: BridgeOptions): Bridge {
  return new StdioHttpBridge(options);
}

class StdioHttpBridge implements Bridge {
  readonly closed: Promise<void>;
  readonly #client: GatewayConnection;
  readonly #log: BridgeLog;
  readonly #output: Writable;
  readonly #messages: MessageOutput;
  readonly #lines: Interface;
  readonly #pending: PendingRequests;
  readonly #requestTimeoutMs: number;
  readonly #closeTimeoutMs: number;
  readonly #retryDelaysMs: readonly number[];
  readonly #outageWaitMs: number;
  /** Aborted when the bridge closes: every HTTP exchange listens to it. */
  readonly #root = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  #resolveClosed: () => void = () => {};
  #closing: Promise<void> | undefined;
  #outputBroken = false;
  /** Lifecycle messages (initialize, notifications/initialized) go out alone; the rest wait for them. */
  #barrier: Promise<void> = Promise.resolve();
  /** The client's initialize, kept to replay when the gateway forgets the session. */
  #initialize: JsonRpcRequest | undefined;
  /** The client's log level and subscriptions, restored in a replacement session. */
  readonly #state = new SessionState();
  /** Counts sessions; a 404 from an older one needs no new recovery. */
  #generation = 0;
  #sessionLost = false;
  #recovering: Promise<void> | undefined;
  #eventStream: AbortController | undefined;
  /** Which era the client speaks (modern/era.ts): decided by its first message other than a probe. */
  readonly #era: EraGate;
  constructor(options: BridgeOptions) {
    const url = typeof options.url === 'string' ? new URL(options.url) : options.url;
    this.#log = options.log ?? silentBridgeLog;
    this.#output = options.output;
    this.#messages = new MessageOutput(options.output);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#retryDelaysMs = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.#outageWaitMs = options.outageWaitMs ?? DEFAULT_OUTAGE_WAIT_MS;
    const httpOptions: GatewayClientOptions = {
      url,
      headers: options.headers ?? {},
      auth: options.auth,
      ca: options.ca,
      socketPath: options.socketPath,
      clientCert: options.clientCert,
      proxy: options.proxy,
      idleTimeoutMs: options.idleTimeoutMs,
      userAgent: `mcp-relay/${VERSION} (connect)`,
    };
    const transport = options.transport ?? 'auto';
    this.#client = createConnection({
      ...httpOptions,
      transport,
      log: this.#log,
    });
    this.#pending = new PendingRequests(this.#requestTimeoutMs, (request) => this.#onTimeout(request));
    this.#era = new EraGate({
      http: httpOptions,
      // 2026-07-28 is Streamable HTTP only: not for ws:// URLs nor --transport sse|ws.
      modernPossible:
        (url.protocol === 'http:' || url.protocol === 'https:') &&
        (transport === 'auto' || transport === 'http'),
      displayUrl: this.#client.displayUrl,
      write: (message, raw) => this.#write(message, raw),
      track: (work) => this.#track(work),
      log: this.#log,
      requestTimeoutMs: this.#requestTimeoutMs,
      retryDelaysMs: this.#retryDelaysMs,
      outageWaitMs: this.#outageWaitMs,
      signal: this.#root.signal,
    });
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#output.on('error', (error: Error) => {
      this.#outputBroken = true;
      this.#log.debug(`stdout closed (${error.message}); stopping`);
      void this.#shutdown(false);
    });
    this.#lines = createInterface({
      input: options.input,
      crlfDelay: Number.POSITIVE_INFINITY,
      terminal: false,
    });
    this.#lines.on('line', (line) => this.#onLine(line));
    this.#lines.on('close', () => void this.#shutdown(true));
    this.#log.debug(`bridging stdio to ${this.#client.displayUrl}`);
  }

  close(): Promise<void> {
    return this.#shutdown(false);
  }

  #onLine(line: string): void {
    if (this.#closing || line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // The line itself is not echoed: it may hold anything, secrets included.
      this.#log.warn('a line on stdin is not JSON; answered with a parse error');
      this.#write(errorResponse(null, ErrorCode.ParseError, 'Parse error: the line is not valid JSON'));
      return;
    }
    if (Array.isArray(value)) {
      this.#write(
        errorResponse(null, ErrorCode.InvalidRequest, 'Invalid request: JSON-RPC batches are not supported'),
      );
      return;
    }
    const message = validateMessage(value);
    if (isInvalid(message)) {
      this.#write(errorResponse(message.id, ErrorCode.InvalidRequest, `Invalid request: ${message.reason}`));
      return;
    }
    if (this.#era.handledBefore(message)) return;
    const modern = this.#era.modern;
    if (modern) {
      this.#track(modern.handle(message));
      return;
    }
    this.#track(isRequest(message) ? this.#sendRequest(message) : this.#sendOneWay(message));
  }

  async #sendRequest(request: JsonRpcRequest): Promise<void> {
    const entry = this.#pending.add(request);
    if (!entry) {
      this.#write(
        errorResponse(request.id, ErrorCode.InvalidRequest, 'Invalid request: this id is already in use'),
      );
      return;
    }
    const isInitialize = request.method === 'initialize';
    if (isInitialize) this.#initialize = request;
    this.#log.debug(`→ ${request.method} (${String(request.id)})`);
    const hooks = {
      onMessage: (message: JsonRpcMessage, raw?: MessageText) => {
        this.#pending.touch(entry);
        if (isInitialize) this.#noteInitializeAnswer(request, message);
        this.#state.observe(request, message);
        return this.#route(message, raw);
      },
      answered: () => !this.#pending.has(entry),
      signal: AbortSignal.any([this.#root.signal, entry.abort.signal]),
    };
    try {
      await this.#transmit(request, hooks, isInitialize);
    } catch (error) {
      if (!this.#pending.has(entry)) return; // answered, timed out, cancelled or shutting down
      this.#pending.take(request.id);
      const code = error instanceof GatewayError ? jsonRpcCodeFor(error.kind) : ErrorCode.InternalError;
      const reason = error instanceof GatewayError ? error.message : `internal error: ${errorText(error)}`;
      this.#log.warn(`${request.method} failed: ${reason}`);
      this.#write(errorResponse(request.id, code, `mcp-relay: ${reason}`));
    }
  }

  async #sendOneWay(message: JsonRpcMessage): Promise<void> {
    const isInitialized = isNotification(message) && message.method === 'notifications/initialized';
    if (isNotification(message) && message.method === 'notifications/cancelled') {
      const requestId = cancelledRequestId(message.params);
      if (requestId !== undefined) this.#pending.take(requestId)?.abort.abort();
    }
    const hooks = {
      onMessage: (reply: JsonRpcMessage, raw?: MessageText) => this.#route(reply, raw),
      answered: () => true,
      signal: AbortSignal.any([this.#root.signal, AbortSignal.timeout(ONE_WAY_TIMEOUT_MS)]),
    };
    try {
      await this.#transmit(message, hooks, isInitialized);
      if (isInitialized) this.#openEventStream();
    } catch (error) {
      if (this.#closing) return;
      this.#log.warn(`could not deliver ${describeMessage(message)}: ${errorText(error)}`);
    }
  }

  /**
   * Sends after the lifecycle barrier. A message the gateway refused for an unknown session (404, or
   * 400 "no valid session") never reached a backend: it waits for one re-initialize and is sent again.
   */
  async #transmit(
    message: JsonRpcMessage,
    partial: Pick<DeliveryHooks, 'onMessage' | 'answered' | 'signal'>,
    isBarrier: boolean,
  ): Promise<void> {
    const hooks: DeliveryHooks = {
      ...partial,
      log: this.#log,
      retryDelaysMs: this.#retryDelaysMs,
      outageWaitMs: this.#outageWaitMs,
    };
    const isInitialize = isRequest(message) && message.method === 'initialize';
    const run = async () => {
      // A second initialize from the client starts over rather than reusing the old session id.
      if (isInitialize) {
        // The old session's event stream must not start a recovery of its own meanwhile.
        this.#eventStream?.abort();
        this.#client.resetSession();
      } else if (this.#sessionLost) await this.#recoverBeforeSending(this.#generation);
      const generation = this.#generation;
      try {
        await this.#client.deliver(message, hooks);
      } catch (error) {
        if (isInitialize || !(error instanceof GatewayError) || error.kind !== 'session-expired') throw error;
        await this.#recoverBeforeSending(generation);
        await this.#client.deliver(message, hooks);
      }
    };
    if (!isBarrier) {
      await this.#barrier;
      return run();
    }
    const work = this.#barrier.then(run);
    this.#barrier = work.then(
      () => undefined,
      () => undefined,
    );
    return work;
  }

  /** Recovery for a message not sent yet: its failure must not read as if this message had been sent. */
  async #recoverBeforeSending(generation: number): Promise<void> {
    try {
      await this.#recover(generation);
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      const kind = error.kind === 'outcome-unknown' ? 'unreachable' : error.kind;
      throw new GatewayError(
        kind,
        `could not start a new gateway session, so this was not sent: ${error.message}`,
        {
          unsent: true,
          ...(error.status === undefined ? {} : { status: error.status }),
          cause: error,
        },
      );
    }
  }

  /** Replaces an ended session; concurrent callers share one attempt. */
  #recover(generation: number): Promise<void> {
    if (generation !== this.#generation && !this.#sessionLost) return Promise.resolve();
    if (this.#recovering) return this.#recovering;
    const initialize = this.#initialize;
    if (!initialize) {
      return Promise.reject(
        new GatewayError('session-expired', 'the gateway session ended before initialize'),
      );
    }
    this.#sessionLost = true;
    this.#eventStream?.abort();
    const previousVersion = this.#client.protocolVersion;
    this.#log.info('the gateway no longer knows this session (restart or expiry); starting a new one');
    const attempt = reinitialize({
      client: this.#client,
      initialize,
      previousVersion,
      replay: this.#state.replay(),
      forward: (message) => this.#route(message),
      signal: this.#root.signal,
      log: this.#log,
      retryDelaysMs: this.#retryDelaysMs,
      outageWaitMs: this.#outageWaitMs,
    }).then(() => {
      this.#generation++;
      this.#sessionLost = false;
      this.#log.info(`new gateway session ${shortId(this.#client.sessionId)} ready`);
      this.#openEventStream();
    });
    this.#recovering = attempt.finally(() => {
      this.#recovering = undefined;
    });
    return this.#recovering;
  }

  #noteInitializeAnswer(request: JsonRpcRequest, message: JsonRpcMessage): void {
    if (!isResponse(message) || message.id !== request.id || !('result' in message)) return;
    const version = message.result.protocolVersion;
    if (typeof version === 'string') this.#client.setProtocolVersion(version);
    this.#generation++;
    this.#sessionLost = false;
    const protocol = typeof version === 'string' ? `, protocol ${sanitize(version, 40)}` : '';
    const over = TRANSPORT_NAMES[this.#client.transport];
    this.#log.info(
      `connected to ${this.#client.displayUrl}${over} (session ${shortId(this.#client.sessionId)}${protocol})`,
    );
  }

  #openEventStream(): void {
    this.#eventStream?.abort();
    if (this.#closing) return;
    const stream = new AbortController();
    this.#eventStream = stream;
    const generation = this.#generation;
    void this.#client.listen({
      onMessage: (message, raw) => this.#route(message, raw),
      onSessionExpired: () => this.#recover(generation),
      signal: AbortSignal.any([this.#root.signal, stream.signal]),
      log: this.#log,
    });
  }

  /**
   * Passes a gateway message to the client; an answer only while someone still waits for it. `raw` is
   * the message's text as the gateway sent it. Returns a promise while the client is behind in reading.
   */
  #route(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined {
    if (isResponse(message)) {
      if (message.id === null) {
        this.#log.warn(
          `the gateway reported: ${'error' in message ? sanitize(message.error.message) : 'an error'}`,
        );
        return undefined;
      }
      if (!this.#pending.take(message.id)) {
        this.#log.debug(`dropped an answer for ${String(message.id)}: nobody waits for it any more`);
        return undefined;
      }
    } else if (isNotification(message) && message.method === 'notifications/progress') {
      this.#pending.touchByProgressToken(message.params?.progressToken);
    }
    return this.#write(message, raw);
  }

  #onTimeout(request: PendingRequest): void {
    request.abort.abort();
    const after = formatDuration(this.#requestTimeoutMs);
    this.#log.warn(`${request.method} (${String(request.id)}) got no answer or progress within ${after}`);
    this.#write(
      errorResponse(
        request.id,
        ErrorCode.RequestTimeout,
        `mcp-relay: no answer from ${this.#client.displayUrl} within ${after} (raise it with --timeout)`,
      ),
    );
    this.#track(this.#sendOneWay(cancelled(request.id, 'mcp-relay: request timed out')));
  }

  /** One write per message; the bridge's own short answers do not wait, gateway streams do. */
  #write(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined {
    if (this.#outputBroken) return undefined;
    return this.#messages.write(message, raw);
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    const done = () => {
      this.#inFlight.delete(work);
    };
    work.then(done, (error: unknown) => {
      done();
      this.#log.error(`internal error: ${errorText(error)}`);
    });
  }

  #shutdown(drain: boolean): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      this.#lines.close();
      this.#log.debug(drain ? 'stdin ended; closing' : 'closing');
      const shutting = (id: JsonRpcId) =>
        this.#write(
          errorResponse(id, ErrorCode.BackendUnavailable, 'mcp-relay: the bridge is shutting down'),
        );
      for (const id of this.#era.modern?.endListens() ?? []) shutting(id);
      if (drain && this.#inFlight.size > 0) await settleWithin([...this.#inFlight], this.#closeTimeoutMs);
      for (const id of this.#era.modern?.drain() ?? []) shutting(id);
      for (const request of this.#pending.drain()) {
        request.abort.abort();
        this.#write(
          errorResponse(request.id, ErrorCode.BackendUnavailable, 'mcp-relay: the bridge is shutting down'),
        );
      }
      this.#eventStream?.abort();
      this.#root.abort(new Error('bridge closed'));
      this.#messages.release();
      await this.#client.terminate(this.#closeTimeoutMs);
      await this.#client.close();
      await this.#era.close();
      this.#log.debug('bridge closed');
    })().catch((error: unknown) => {
      this.#log.error(`error while closing: ${errorText(error)}`);
    });
    this.#closing.then(
      () => this.#resolveClosed(),
      () => this.#resolveClosed(),
    );
    return this.#closing;
  }
}

/** How the log names a transport after the URL; Streamable HTTP, the usual one, goes unnamed. */
const TRANSPORT_NAMES: Readonly<Record<TransportKind, string>> = {
  http: '',
  sse: ' over legacy HTTP+SSE',
  ws: ' over WebSocket',
};

function cancelled(requestId: JsonRpcId, reason: string): JsonRpcMessage {
  return { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason } };
}

function describeMessage(message: JsonRpcMessage): string {
  return 'method' in message ? sanitize(message.method, 60) : `the answer to ${String(message.id)}`;
}

/** The first characters of a session id: enough to match log lines, not enough to reuse it. */
function shortId(id: string | undefined): string {
  return id === undefined ? '(none)' : `${sanitize(id, 8).slice(0, 8)}…`;
}

async function settleWithin(work: Promise<void>[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(work),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
