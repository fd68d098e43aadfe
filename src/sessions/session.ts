// One MCP session of one authenticated user: tracks the client's requests in flight, routes each
// backend message to the reply or stream it belongs to, and never to another session.

import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  type EventOwner,
  publishRequestSettled,
  type RequestWatch,
  UNOWNED,
  watchRequest,
} from '../observe/events.ts';
import {
  ErrorCode,
  errorResponse,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import {
  cancelledRequestId,
  idKey,
  isRequestId,
  Method,
  type ProgressToken,
  progressTokenOf,
} from '../protocol/mcp.ts';
import { JoinedReply, RecentAnswers, type RetryLimits, requestFingerprint } from './retries.ts';
import type {
  Admission,
  Downstream,
  Identity,
  MessageSink,
  ReplyTarget,
  RequestEnding,
  RequestGate,
  RequestTrack,
  SessionClient,
  Upstream,
} from './types.ts';

export interface SessionOptions {
  id: string;
  identity: Identity;
  server: string;
  requestTimeoutMs: number;
  /** What the session remembers to answer a retried request without the backend. */
  retries: RetryLimits;
  log: Logger;
  /** The gateway the session belongs to, named in its events (observe/events.ts). */
  owner?: EventOwner;
  /** Who the client is, as its front saw it (shown on the admin page). */
  client?: SessionClient;
  /**
   * A 2026-07-28 client's stand-in session (transports/streamable-http/modern-endpoint.ts): its requests
   * have gateway-made ids, so no answer is kept for a retry; a server→client request or log line goes
   * to the one request in flight or nowhere (never guessed); nothing waits for a GET stream.
   */
  stateless?: boolean;
}

/**
 * What a session is built with besides its options, each called once from the constructor with the
 * session itself: its link to a backend (may throw, e.g. no room for another backend: then there is
 * no session), and its gate (policy, limits, audit), which learns of the session's end through `onClose`.
 */
export interface SessionParts {
  connect(session: Session): Upstream;
  gate(session: Session): RequestGate;
}

interface InFlight {
  id: JsonRpcId;
  /** The first POST's reply; a `JoinedReply` once a retry of the same request joined it. */
  reply: ReplyTarget;
  request: JsonRpcRequest;
  /**
   * Method and params, to tell a retry from another request reusing the id; computed up front only
   * when the session keeps answers for retries (see `fingerprintOf`), never for initialize.
   */
  fingerprint: string | undefined;
  timer: NodeJS.Timeout;
  progressToken: ProgressToken | undefined;
  isInitialize: boolean;
  /** Set by the gate when it wants to see (and may rewrite) the response. */
  track?: RequestTrack | undefined;
  /** Set when forwarded while someone observes settled requests (observe/events.ts). */
  watch: RequestWatch | undefined;
}

/** Unsolicited messages kept for a GET stream that is not open yet. */
const MAX_QUEUED = 256;
/** The notifications a client may send (MCP 2025-11-25 `ClientNotification`); others never reach a backend. */
const CLIENT_NOTIFICATIONS = new Set([
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
  'notifications/tasks/status',
]);
/** The LSP code for a cancelled request; MCP clients drop such responses anyway. */
const REQUEST_CANCELLED = -32800;

/** Why a request (or a session) is refused during shutdown; it never reached a backend. */
export const SHUTTING_DOWN =
  'the gateway is shutting down; this request was not run, send it again once it is back';

export class Session implements Downstream {
  readonly id: string;
  readonly identity: Identity;
  readonly server: string;
  readonly owner: EventOwner;
  readonly client: SessionClient;
  readonly createdAt = Date.now();
  lastActivity = Date.now();
  /** The protocol version agreed at initialize; undefined until the initialize result arrived. */
  protocolVersion: string | undefined;

  readonly #log: Logger;
  readonly #requestTimeoutMs: number;
  readonly #inFlight = new Map<string, InFlight>();
  /** Answers of finished requests, for a retry of the same id (never sent to the backend again). */
  readonly #answers: RecentAnswers;
  /** Whether finished answers are kept for retries (none for a stand-in session, or with retryAnswers 0). */
  readonly #keepsAnswers: boolean;
  /**
   * Server→client requests not answered yet, and where they were sent (their cancellation follows;
   * undefined: queued for the GET stream). Only these may be answered by the client.
   */
  readonly #serverRequests = new Map<string, MessageSink | ReplyTarget | undefined>();
  readonly #queued: JsonRpcMessage[] = [];
  readonly #onclose: Array<(session: Session, reason: string) => void> = [];
  readonly #upstream: Upstream;
  readonly #gate: RequestGate;
  /** Admissions still being decided; while any is, later requests queue behind it to keep their order. */
  #admitting = 0;
  #admissions: Promise<void> = Promise.resolve();
  #standalone: MessageSink | undefined;
  #closed = false;
  /** Requests that reached admission (initialize included), for the session's end in the audit log. */
  #requests = 0;
  /** Set when the gateway shuts down: calls in flight may finish, new ones are refused. */
  #draining = false;
  readonly stateless: boolean;

  /** Complete once constructed: connected to its backend, behind its gate. */
  constructor(options: SessionOptions, parts: SessionParts) {
    this.id = options.id;
    this.identity = options.identity;
    this.server = options.server;
    this.owner = options.owner ?? UNOWNED;
    this.client = options.client ?? {};
    this.stateless = options.stateless ?? false;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#answers = new RecentAnswers(options.retries);
    this.#keepsAnswers = options.retries.answers > 0 && !this.stateless;
    this.#log = options.log.child({
      session: options.id,
      user: options.identity.user,
      server: options.server,
    });
    // Last, so both see a session whose fields are set.
    this.#upstream = parts.connect(this);
    this.#gate = parts.gate(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  get requestCount(): number {
    return this.#requests;
  }

  get hasStandaloneStream(): boolean {
    return this.#standalone !== undefined;
  }

  /** The gateway is shutting down: new requests get `503` (never run); those in flight may finish. */
  drain(): void {
    this.#draining = true;
  }

  onClose(listener: (session: Session, reason: string) => void): void {
    this.#onclose.push(listener);
  }

  /** A client request; its response (or an error) will finish `reply`. */
  request(message: JsonRpcRequest, reply: ReplyTarget): void {
    this.lastActivity = Date.now();
    if (this.#closed) {
      reply.finish(errorResponse(message.id, ErrorCode.SessionNotFound, 'session ended'));
      return;
    }
    const key = idKey(message.id);
    const running = this.#inFlight.get(key);
    if (running) {
      this.#joinRetry(running, message, reply);
      return;
    }
    const isInitialize = message.method === Method.initialize;
    const fingerprint = isInitialize || !this.#keepsAnswers ? undefined : requestFingerprint(message);
    const answer = fingerprint === undefined ? undefined : this.#answers.recall(key, fingerprint, message.id);
    if (answer) {
      this.#log.info(
        { id: message.id, method: message.method },
        'a retried request answered again from memory',
      );
      reply.finish(answer);
      return;
    }
    if (this.#draining) {
      const refusal = {
        status: 503,
        code: ErrorCode.BackendUnavailable,
        message: SHUTTING_DOWN,
        retryAfterSeconds: 5,
      };
      const response = errorResponse(message.id, refusal.code, refusal.message);
      if (reply.refuse) reply.refuse(refusal, response);
      else reply.finish(response);
      return;
    }
    const entry: InFlight = {
      id: message.id,
      reply,
      request: message,
      fingerprint,
      timer: this.#startTimer(message.id),
      progressToken: progressTokenOf(message.params),
      isInitialize,
      watch: undefined,
    };
    this.#inFlight.set(key, entry);
    this.#requests++;
    const admission = this.#gate.admit(message);
    if (this.#admitting === 0 && !(admission instanceof Promise)) {
      this.#admitted(key, entry, message, admission);
      return;
    }
    this.#admitting++;
    this.#admissions = this.#admissions
      .then(() => admission)
      .catch((error: unknown): Admission => {
        this.#log.error({ err: errorText(error) }, 'request admission failed');
        return { refusal: { code: ErrorCode.InternalError, message: 'internal error' } };
      })
      .then((result) => this.#admitted(key, entry, message, result))
      .catch((error: unknown) => this.#log.error({ err: errorText(error) }, 'request admission failed'))
      .finally(() => {
        this.#admitting--;
      });
  }

  /**
   * The same id again while the call runs: the same request joins it (its POST gets the answer, the
   * backend sees it once); another request under a busy id is refused, as it always was.
   */
  #joinRetry(running: InFlight, message: JsonRpcRequest, reply: ReplyTarget): void {
    if (running.isInitialize || fingerprintOf(running) !== requestFingerprint(message)) {
      reply.finish(
        errorResponse(message.id, ErrorCode.InvalidRequest, 'a request with this id is already in flight'),
      );
      return;
    }
    const joined = running.reply instanceof JoinedReply ? running.reply : new JoinedReply(running.reply);
    if (!joined.join(reply)) {
      reply.finish(
        errorResponse(message.id, ErrorCode.InvalidRequest, 'too many retries of this request in flight'),
      );
      return;
    }
    running.reply = joined;
    this.#log.info({ id: message.id, method: message.method }, 'a retried request joined the call in flight');
  }

  /** Forwards an admitted request, or answers a refused one (with the refusal's HTTP status where the front has one). */
  #admitted(key: string, entry: InFlight, message: JsonRpcRequest, admission: Admission): void {
    // Cancelled, timed out or closed while its admission was decided: nothing left to do.
    if (this.#inFlight.get(key) !== entry) return;
    if ('refusal' in admission) {
      this.#inFlight.delete(key);
      clearTimeout(entry.timer);
      const { refusal } = admission;
      const response = errorResponse(message.id, refusal.code, refusal.message);
      if (refusal.status !== undefined && entry.reply.refuse) entry.reply.refuse(refusal, response);
      else entry.reply.finish(response);
      if (entry.isInitialize) void this.close('initialize refused');
      return;
    }
    entry.track = admission.track;
    this.#forward(key, entry, message);
  }

  /** Hands a request to the upstream; one that cannot take it answers at once instead of leaving the id in flight. */
  #forward(key: string, entry: InFlight, message: JsonRpcRequest): void {
    entry.watch = watchRequest(message);
    try {
      this.#upstream.send(message);
    } catch (error) {
      this.#log.error({ err: errorText(error), method: message.method }, 'request could not be forwarded');
      if (this.#inFlight.get(key) === entry)
        this.#deliverResponse(
          errorResponse(message.id, ErrorCode.InternalError, 'the gateway could not forward this request'),
        );
    }
  }

  /**
   * A client notification, or the client's response to a server→client request. Returns why it was
   * refused when the client is at fault (the front answers 400): a response to nothing this session
   * was asked, or a request method sent without an id. Notifications no client may send are dropped.
   */
  post(message: JsonRpcNotification | JsonRpcResponse): string | undefined {
    this.lastActivity = Date.now();
    if (this.#closed) return undefined;
    if (isResponse(message)) {
      if (message.id === null || !this.#serverRequests.delete(idKey(message.id))) {
        this.#log.warn({ id: message.id }, 'a response to no server→client request of this session; refused');
        return 'this session has no server→client request with this id waiting for an answer';
      }
    } else if (!CLIENT_NOTIFICATIONS.has(message.method)) {
      const method = message.method.slice(0, 100);
      // Without an id, a request would bypass policy, rate limits and audit; it is not forwarded.
      if (!message.method.startsWith('notifications/')) {
        this.#log.warn({ method }, 'a request without an id; refused');
        return `${JSON.stringify(method)} is a request and needs an id`;
      }
      this.#log.info({ method }, 'a notification clients do not send; dropped');
      return undefined;
    } else if (message.method === Method.cancelled) {
      this.#cancelledByClient(message);
    }
    this.#upstream.send(message);
    return undefined;
  }

  /** The client's GET stream opened (or resumed): queued unsolicited messages go out now. */
  setStandalone(sink: MessageSink | undefined): void {
    this.#standalone = sink;
    if (sink) for (const message of this.#queued.splice(0)) sink.send(message);
  }

  /** A message from the backend for this session. */
  deliver(message: JsonRpcMessage): void {
    if (this.#closed) return;
    if (isResponse(message)) {
      this.#deliverResponse(message);
      return;
    }
    if (!isRequest(message) && !this.#gate.passes(message)) return;
    const method = message.method;
    if (method === Method.progress) {
      const entry = this.#findByProgressToken(message.params?.progressToken);
      if (!entry) {
        this.#log.debug('progress for a request no longer in flight; dropped');
        return;
      }
      entry.timer.refresh();
      entry.reply.send(message);
      return;
    }
    if (method === Method.cancelled) {
      const requestId = cancelledRequestId(message.params);
      const key = requestId === undefined ? '' : idKey(requestId);
      if (!this.#serverRequests.has(key)) return;
      const target = this.#serverRequests.get(key);
      this.#serverRequests.delete(key);
      if (target) target.send(message);
      else this.#unsolicited(message);
      return;
    }
    if (isRequest(message) || method === Method.message) {
      const target = this.#requestScopedTarget();
      if (!target && this.stateless) {
        this.#unattributed(message);
        return;
      }
      if (isRequest(message)) this.#serverRequests.set(idKey(message.id), target);
      if (target) target.send(message);
      else this.#queue(message);
      return;
    }
    this.#unsolicited(message);
  }

  /** A message for the GET stream, queued until it opens (a stateless session has none: dropped). */
  #unsolicited(message: JsonRpcMessage): void {
    if (this.#standalone) this.#standalone.send(message);
    else if (!this.stateless) this.#queue(message);
  }

  /** A stateless session's server→client request or log line that no single request in flight explains. */
  #unattributed(message: JsonRpcRequest | JsonRpcNotification): void {
    if (!isRequest(message)) return;
    this.#log.warn({ method: message.method }, 'a server→client request no call in flight explains; refused');
    this.#upstream.send(
      errorResponse(
        message.id,
        ErrorCode.InternalError,
        `mcp-relay cannot tell which call this ${message.method.slice(0, 64)} belongs to (2026-07-28 clients have no session); use isolation per-user for servers that call back`,
      ),
    );
  }

  /** Ends the session: requests in flight get an error, the upstream is released. Idempotent. */
  async close(reason = 'session closed'): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll(ErrorCode.SessionNotFound, `session ended (${reason})`);
    this.#queued.length = 0;
    this.#answers.clear();
    for (const listener of this.#onclose) listener(this, reason);
    this.#log.info({ reason, ageMs: Date.now() - this.createdAt }, 'session ended');
    await this.#upstream.close();
  }

  #deliverResponse(message: JsonRpcResponse): void {
    if (message.id === null) {
      this.#log.warn(
        { error: 'error' in message ? message.error : undefined },
        'backend sent an error without id',
      );
      return;
    }
    const key = idKey(message.id);
    const entry = this.#inFlight.get(key);
    if (!entry) {
      this.#log.debug({ id: message.id }, 'response for a request no longer in flight; dropped');
      return;
    }
    this.#inFlight.delete(key);
    clearTimeout(entry.timer);
    if (entry.isInitialize && 'result' in message) {
      const version = message.result.protocolVersion;
      if (typeof version === 'string') this.protocolVersion = version;
    }
    this.#settle(key, entry, message, 'response');
    if (entry.isInitialize && 'error' in message) void this.close('initialize failed');
  }

  #cancelledByClient(message: JsonRpcNotification): void {
    const requestId = cancelledRequestId(message.params);
    if (requestId === undefined) return;
    const entry = this.#inFlight.get(idKey(requestId));
    if (!entry) return;
    this.#inFlight.delete(idKey(requestId));
    clearTimeout(entry.timer);
    const response = errorResponse(entry.id, REQUEST_CANCELLED, 'request cancelled by the client');
    this.#settle(idKey(requestId), entry, response, 'cancelled');
  }

  /**
   * Finishes a request that reached the backend, and keeps its answer for a retry: running it again
   * could do its work twice, so a retry gets this answer (an error included), not a second run.
   */
  #settle(key: string, entry: InFlight, response: JsonRpcResponse, ending: RequestEnding): void {
    if (entry.watch) publishRequestSettled(this.owner, this, entry.watch, response, ending);
    const final = entry.track ? entry.track.settle(response, ending) : response;
    const sent = entry.reply.finish(final);
    if (this.#keepsAnswers && entry.fingerprint !== undefined)
      this.#answers.remember(key, entry.fingerprint, final, sent);
  }

  /**
   * Where a server→client request or a log message goes. With exactly one request in flight it is
   * almost surely caused by that request, so it rides on that request's stream; otherwise the GET stream.
   */
  #requestScopedTarget(): MessageSink | ReplyTarget | undefined {
    if (this.#inFlight.size === 1) return this.#inFlight.values().next().value?.reply;
    if (this.stateless) return undefined;
    if (this.#standalone) return this.#standalone;
    let latest: InFlight | undefined;
    for (const entry of this.#inFlight.values()) latest = entry;
    return latest?.reply;
  }

  #findByProgressToken(token: unknown): InFlight | undefined {
    if (!isRequestId(token)) return undefined;
    for (const entry of this.#inFlight.values()) if (entry.progressToken === token) return entry;
    return undefined;
  }

  #queue(message: JsonRpcMessage): void {
    if (this.#queued.length >= MAX_QUEUED) {
      this.#queued.shift();
      this.#log.warn('no GET stream open; oldest queued message dropped');
    }
    this.#queued.push(message);
  }

  #startTimer(id: JsonRpcId): NodeJS.Timeout {
    const timer = setTimeout(() => this.#timedOut(id), this.#requestTimeoutMs);
    timer.unref();
    return timer;
  }

  #timedOut(id: JsonRpcId): void {
    const key = idKey(id);
    const entry = this.#inFlight.get(key);
    if (!entry) return;
    this.#inFlight.delete(key);
    this.#log.warn({ id, timeoutMs: this.#requestTimeoutMs }, 'request timed out');
    const response = errorResponse(
      id,
      ErrorCode.RequestTimeout,
      `request timed out after ${this.#requestTimeoutMs} ms`,
    );
    this.#settle(key, entry, response, 'timeout');
    this.#upstream.send({
      jsonrpc: '2.0',
      method: Method.cancelled,
      params: { requestId: id, reason: 'timed out at the gateway' },
    });
  }

  #failAll(code: number, message: string): void {
    for (const entry of this.#inFlight.values()) {
      clearTimeout(entry.timer);
      const response = errorResponse(entry.id, code, message);
      if (entry.watch) publishRequestSettled(this.owner, this, entry.watch, response, 'closed');
      entry.reply.finish(entry.track ? entry.track.settle(response, 'closed') : response);
    }
    this.#inFlight.clear();
  }
}

/** The fingerprint of an in-flight request, made now when it was not made up front. */
function fingerprintOf(entry: InFlight): string {
  entry.fingerprint ??= requestFingerprint(entry.request);
  return entry.fingerprint;
}
