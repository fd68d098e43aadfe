// Many sessions, one backend: the gateway is the backend's only client. It initializes the backend once,
// rewrites every id and progress token so replies find their own session, and sends a message to a
// session only when it is certain the message is that session's (DESIGN.md, "the multiplexer").

import type { BackendChannel } from '../backends/channel.ts';
import type { IsolationMode } from '../config/schema.ts';
import type { Logger } from '../log.ts';
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
  logLevelRank,
  Method,
  progressTokenOf,
  withProgressToken,
} from '../protocol/mcp.ts';
import { RawJson } from '../protocol/raw-json.ts';
import { TASK_METHODS } from '../protocol/tasks.ts';
import { isSupportedProtocolVersion, LATEST_PROTOCOL_VERSION } from '../protocol/versions.ts';
import type { Downstream, Upstream } from '../sessions/types.ts';
import { MuxLink } from './link.ts';
import { RequestTable } from './request-table.ts';
import { TaskTable } from './task-table.ts';
import { UnsolicitedTarget } from './unsolicited-target.ts';

/** Capabilities the gateway can route for a shared backend: it answers with an error where a session lacks one. */
const ROUTABLE_CLIENT_CAPABILITIES = { roots: { listChanged: true }, sampling: {}, elicitation: {} };
const MAX_QUEUED = 1_000;
/** Methods whose results the gateway never looks into: a large one may pass through as bytes (RawJson). */
const OPAQUE_RESULTS = new Set(['tools/call', 'resources/read', 'prompts/get', 'tasks/result']);
/** Why a process whose stdin takes no more writes is replaced (it died unseen yet, or closed stdin). */
const INPUT_CLOSED = 'backend stopped taking input (it exited or closed its stdin)';
const CAPABILITY_OF: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

export interface MultiplexerOptions {
  server: string;
  mode: IsolationMode;
  log: Logger;
  /** Called when the last session detaches. */
  onEmpty: () => void;
  /** Called when the backend is marked unhealthy (crash loop), before the sessions waiting on it are answered. */
  onUnhealthy?: (reason: string) => void;
  /**
   * servers.<name>.livenessTimeout: how long the backend may write nothing while requests are
   * pending (pinged after half of it) before it counts as hung and is replaced; 0: never.
   */
  livenessTimeoutMs?: number;
}

/** What /healthz shows of a backend's liveness. */
export interface LivenessStats {
  /** Silent with requests pending, pinged, no answer yet. */
  unresponsive: boolean;
  /** Processes replaced because they stopped responding. */
  hangs: number;
  lastHang: { at: string; reason: string } | undefined;
}

export class Multiplexer {
  readonly server: string;
  readonly #mode: IsolationMode;
  readonly #log: Logger;
  readonly #onEmpty: () => void;
  readonly #onUnhealthy: ((reason: string) => void) | undefined;
  /** The only conversation with the backend. */
  readonly #channel: BackendChannel;
  readonly #links = new Set<MuxLink>();
  /** What is in flight on the backend, under whose ids. */
  readonly #requests = new RequestTable();
  readonly #subscriptions = new Map<string, Set<MuxLink>>();
  /** Each task the backend created → the session that created it. */
  readonly #tasks: TaskTable;
  /** Who a message tied to no request may go to. */
  readonly #unsolicited = new UnsolicitedTarget();
  /** Client requests waiting for the backend to be (re)initialized. */
  #queued: Array<{ link: MuxLink; message: JsonRpcRequest }> = [];
  #initParams: Record<string, unknown> | undefined;
  #initResult: Record<string, unknown> | undefined;
  #initializing = false;
  #initWaiters: Array<{ link: MuxLink; request: JsonRpcRequest }> = [];
  #backendLogLevel: string | undefined;
  /**
   * Requests written but not yet known to have reached the pipe whole, by backend id. One whose write
   * fails never reached the process and is sent again to the next one; one still here when the process
   * goes down waits for its write's outcome before it is answered (`#limbo`).
   */
  readonly #unconfirmed = new Map<number, { link: MuxLink; request: JsonRpcRequest }>();
  /** Backend ids of unconfirmed writes whose process went down: answered or re-queued by the write's outcome. */
  readonly #limbo = new Map<number, string>();
  readonly #livenessTimeoutMs: number;
  /** Last sign of life: backend output, a (re)start, or the first request after a quiet spell. */
  #lastSign = Date.now();
  #livenessTimer: NodeJS.Timeout | undefined;
  #pingOutstanding = false;
  #hangs = 0;
  #lastHang: { at: string; reason: string } | undefined;

  /** Takes over `channel`'s callbacks: from here on the multiplexer is the backend's only client. */
  constructor(channel: BackendChannel, options: MultiplexerOptions) {
    this.server = options.server;
    this.#mode = options.mode;
    this.#log = options.log.child({ server: options.server, isolation: options.mode });
    this.#onEmpty = options.onEmpty;
    this.#onUnhealthy = options.onUnhealthy;
    this.#tasks = new TaskTable(this.#log);
    this.#livenessTimeoutMs = options.livenessTimeoutMs ?? 0;
    this.#channel = channel;
    channel.onmessage = (message) => this.#fromBackend(message);
    channel.onstarted = (restart) => this.#backendStarted(restart);
    channel.ondown = (reason) => this.#backendDown(reason);
    channel.onunhealthy = (reason) => this.#backendUnhealthy(reason);
  }

  get sessionCount(): number {
    return this.#links.size;
  }

  get pid(): number | undefined {
    return this.#channel.pid;
  }

  get healthy(): boolean {
    return this.#channel.state !== 'unhealthy';
  }

  get liveness(): LivenessStats {
    return { unresponsive: this.#pingOutstanding, hangs: this.#hangs, lastHang: this.#lastHang };
  }

  /** Attaches a session: what the backend has for it goes to `downstream`; it talks back through the upstream. */
  attach(downstream: Downstream, user: string): Upstream {
    const link = new MuxLink(downstream, user);
    this.#links.add(link);
    let closing: Promise<void> | undefined;
    return {
      send: (message) => {
        if (!closing) this.#fromClient(link, message);
      },
      close: () => {
        closing ??= this.#detach(link);
        return closing;
      },
    };
  }

  // --- Channel events ---------------------------------------------------------------------------

  #backendStarted(restart: boolean): void {
    this.#lastSign = Date.now();
    if (this.#initParams) this.#initialize(restart);
  }

  #backendDown(reason: string): void {
    this.#initResult = undefined;
    this.#initializing = false;
    this.#pingOutstanding = false;
    // The new process starts with no one's work and no tasks.
    this.#unsolicited.reset();
    this.#tasks.clear();
    const message = `${reason}; it is being restarted`;
    for (const pending of this.#requests.clear()) {
      // Still being written: whether the old process got it is known when the write ends.
      if (this.#unconfirmed.has(pending.backendId)) {
        this.#limbo.set(pending.backendId, message);
        continue;
      }
      pending.link.deliver(errorResponse(pending.clientId, ErrorCode.BackendUnavailable, message));
    }
    this.#backendLogLevel = undefined;
  }

  #backendUnhealthy(reason: string): void {
    this.#onUnhealthy?.(reason);
    const waiting = [
      ...this.#initWaiters.splice(0),
      ...this.#queued.splice(0).map(({ link, message }) => ({ link, request: message })),
    ];
    for (const { link, request } of waiting) link.deliver(this.#unavailable(request.id, reason));
  }

  // --- From sessions ------------------------------------------------------------------------------

  #fromClient(link: MuxLink, message: JsonRpcMessage): void {
    if (isRequest(message)) this.#clientRequest(link, message);
    else if (isResponse(message)) this.#clientResponse(link, message);
    else this.#clientNotification(link, message);
  }

  async #detach(link: MuxLink): Promise<void> {
    if (!this.#links.delete(link)) return;
    // What the session still had in flight is cancelled at the backend, so no work runs for nobody.
    for (const backendId of this.#requests.takeAllOf(link)) {
      this.#toBackend({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: backendId, reason: 'the client session ended' },
      });
    }
    for (const uri of link.subscriptions) this.#unsubscribe(link, uri, undefined);
    this.#tasks.forget(link);
    this.#queued = this.#queued.filter((entry) => entry.link !== link);
    this.#initWaiters = this.#initWaiters.filter((entry) => entry.link !== link);
    if (link.logLevel !== undefined) this.#applyLogLevel();
    if (this.#links.size === 0) this.#onEmpty();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#livenessTimer);
    this.#livenessTimer = undefined;
    await this.#channel.stop();
  }

  #clientRequest(link: MuxLink, request: JsonRpcRequest): void {
    switch (request.method) {
      case 'initialize':
        link.clientInit = request.params ?? {};
        this.#clientInitialize(link, request);
        return;
      case 'ping':
        link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
        return;
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const uri = request.params?.uri;
        if (typeof uri !== 'string') break;
        if (request.method === 'resources/subscribe') this.#subscribe(link, uri, request);
        else this.#unsubscribe(link, uri, request);
        return;
      }
      case 'logging/setLevel': {
        const level = request.params?.level;
        if (typeof level !== 'string' || logLevelRank(level) === undefined || !this.#capability('logging'))
          break;
        link.logLevel = level;
        this.#applyLogLevel();
        link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
        return;
      }
    }
    if (TASK_METHODS.has(request.method) && !this.#tasks.owns(link, request.params?.taskId)) {
      // Another session's task is answered exactly as one that does not exist.
      const taskId = request.params?.taskId;
      link.deliver(
        errorResponse(request.id, ErrorCode.InvalidParams, `Task not found: ${boundedJson(taskId)}`),
      );
      return;
    }
    this.#forward(link, request);
  }

  #clientNotification(link: MuxLink, notification: JsonRpcNotification): void {
    if (notification.method === 'notifications/initialized') return;
    if (notification.method === 'notifications/cancelled') {
      const requestId = cancelledRequestId(notification.params);
      if (requestId === undefined) return;
      const backendId = this.#requests.backendIdOf(link, requestId);
      if (backendId === undefined) return;
      this.#requests.take(backendId);
      this.#toBackend({ ...notification, params: { ...notification.params, requestId: backendId } });
      return;
    }
    // A client reports progress only on what the backend asked it, under the backend's token.
    if (
      notification.method === 'notifications/progress' &&
      !this.#requests.awaitsProgressFrom(link, notification.params?.progressToken)
    ) {
      this.#log.debug({ user: link.user }, 'progress for no server→client request of this session; dropped');
      return;
    }
    this.#unsolicited.served(link);
    this.#toBackend(notification);
  }

  #clientResponse(link: MuxLink, response: JsonRpcResponse): void {
    const entry = this.#requests.takeServerRequest(link, response.id);
    if (!entry) {
      this.#log.warn({ user: link.user }, 'an answer to no server→client request of this session; dropped');
      return;
    }
    this.#toBackend({ ...response, id: entry.backendId });
  }

  #clientInitialize(link: MuxLink, request: JsonRpcRequest): void {
    if (this.#initResult) {
      link.deliver({ jsonrpc: '2.0', id: request.id, result: this.#initializeResultFor(link) });
      return;
    }
    if (this.#refusedAsUnhealthy(link, request)) return;
    this.#initWaiters.push({ link, request });
    if (!this.#initParams) {
      const params = request.params ?? {};
      // A backend of one session sees that client exactly; a shared one sees what the gateway can route.
      this.#initParams =
        this.#mode === 'per-session'
          ? params
          : {
              ...params,
              capabilities: { ...(params.capabilities as object), ...ROUTABLE_CLIENT_CAPABILITIES },
            };
    }
    if (this.#channel.state === 'running') this.#initialize(false);
    else void this.#channel.start();
  }

  #initialize(restart: boolean): void {
    if (this.#initializing || !this.#initParams) return;
    this.#initializing = true;
    this.#internalRequest('initialize', this.#initParams, (response) => {
      this.#initializing = false;
      if ('error' in response) {
        this.#log.error({ error: response.error }, 'backend refused initialize');
        for (const { link, request } of this.#initWaiters.splice(0)) {
          link.deliver(
            errorResponse(request.id, response.error.code, response.error.message, response.error.data),
          );
        }
        return;
      }
      this.#initResult = response.result;
      this.#toBackend({ jsonrpc: '2.0', method: 'notifications/initialized' });
      for (const { link, request } of this.#initWaiters.splice(0)) {
        link.deliver({ jsonrpc: '2.0', id: request.id, result: this.#initializeResultFor(link) });
      }
      if (restart) this.#afterRestart();
      for (const { link, message } of this.#queued.splice(0)) this.#forward(link, message);
    });
  }

  /** Restores what the new process does not know (subscriptions, log level) and tells sessions lists may differ. */
  #afterRestart(): void {
    for (const uri of this.#subscriptions.keys())
      this.#internalRequest('resources/subscribe', { uri }, () => {});
    this.#applyLogLevel();
    const changed = ['notifications/tools/list_changed'];
    if (this.#capability('resources')) changed.push('notifications/resources/list_changed');
    if (this.#capability('prompts')) changed.push('notifications/prompts/list_changed');
    for (const link of this.#links) for (const method of changed) link.deliver({ jsonrpc: '2.0', method });
  }

  /** The backend's initialize result, with the protocol version agreed with this client. */
  #initializeResultFor(link: MuxLink): Record<string, unknown> {
    const result = this.#initResult ?? {};
    const backendVersion =
      typeof result.protocolVersion === 'string' ? result.protocolVersion : LATEST_PROTOCOL_VERSION;
    const requested = link.clientInit?.protocolVersion;
    const version =
      typeof requested === 'string' && isSupportedProtocolVersion(requested) && requested <= backendVersion
        ? requested
        : backendVersion;
    return { ...result, protocolVersion: version };
  }

  #forward(link: MuxLink, request: JsonRpcRequest): void {
    if (!this.#initResult) {
      if (this.#refusedAsUnhealthy(link, request)) return;
      if (this.#queued.length >= MAX_QUEUED) {
        link.deliver(
          errorResponse(request.id, ErrorCode.BackendUnavailable, 'backend is restarting; try again shortly'),
        );
        return;
      }
      this.#queued.push({ link, message: request });
      void this.#channel.start();
      return;
    }
    let params = request.params;
    const uri = params?.uri;
    const { backendId, progressKey } = this.#requests.addClient(
      link,
      request.id,
      request.method,
      progressTokenOf(params),
      request.method === Method.subscribe && typeof uri === 'string' ? uri : undefined,
    );
    if (progressKey !== undefined) params = withProgressToken(params, progressKey);
    const forwarded: JsonRpcRequest = { jsonrpc: '2.0', id: backendId, method: request.method };
    if (params !== undefined) forwarded.params = params;
    this.#unconfirmed.set(backendId, { link, request });
    const sent = this.#toBackend(forwarded, (error) => this.#written(backendId, error));
    if (!sent) {
      this.#unconfirmed.delete(backendId);
      this.#requests.take(backendId);
      // Not written at all: the process is going or gone (its exit not seen yet), so the request
      // waits for the next one, as it would had it come a moment later.
      if (this.#channel.state !== 'running') {
        link.deliver(errorResponse(request.id, ErrorCode.BackendUnavailable, 'backend is not running'));
        return;
      }
      this.#queued.push({ link, message: request });
      this.#channel.replace(INPUT_CLOSED);
      return;
    }
    this.#unsolicited.served(link);
  }

  /**
   * The write of request `backendId` ended. A failed write never reached the process (see
   * `BackendProcess.send`): the request goes to the next process instead of failing. A successful one
   * whose process has gone down meanwhile may have run, so it gets the error the others got.
   */
  #written(backendId: number, failed: boolean): void {
    const entry = this.#unconfirmed.get(backendId);
    if (!entry) return;
    this.#unconfirmed.delete(backendId);
    const downMessage = this.#limbo.get(backendId);
    this.#limbo.delete(backendId);
    if (!failed) {
      if (downMessage !== undefined)
        entry.link.deliver(errorResponse(entry.request.id, ErrorCode.BackendUnavailable, downMessage));
      return;
    }
    const stillPending = this.#requests.take(backendId) !== undefined;
    if (!stillPending && downMessage === undefined) return; // cancelled or its session left
    if (!this.#links.has(entry.link)) return;
    this.#log.debug({ backendId }, 'a request never reached the backend; sent to its next process');
    this.#queued.push({ link: entry.link, message: entry.request });
    if (this.#initResult) this.#channel.replace(INPUT_CLOSED);
    else void this.#channel.start();
  }

  // --- From the backend ---------------------------------------------------------------------------

  #fromBackend(message: JsonRpcMessage): void {
    this.#lastSign = Date.now();
    this.#pingOutstanding = false;
    if (isResponse(message)) this.#backendResponse(message);
    else if (isRequest(message)) this.#backendRequest(message);
    else this.#backendNotification(message);
  }

  #backendResponse(passed: JsonRpcResponse): void {
    if (typeof passed.id !== 'number') return;
    const pending = this.#requests.take(passed.id);
    if (!pending) return;
    // A result passed through as bytes is parsed here after all when the gateway must read it.
    const response =
      'result' in passed &&
      passed.result instanceof RawJson &&
      !(pending.kind === 'client' && OPAQUE_RESULTS.has(pending.method))
        ? { ...passed, result: passed.result.toJSON() as Record<string, unknown> }
        : passed;
    if (pending.kind === 'internal') {
      pending.onResponse(response);
      return;
    }
    if (pending.subscribeUri && 'error' in response) {
      this.#subscriptions.get(pending.subscribeUri)?.delete(pending.link);
      pending.link.subscriptions.delete(pending.subscribeUri);
    }
    let answer: JsonRpcResponse = { ...response, id: pending.clientId };
    if ('result' in response) {
      if (pending.method === 'tasks/list')
        answer = this.#tasks.ownOnly(pending.link, response.result, answer);
      else this.#tasks.record(pending.link, response.result);
    }
    pending.link.deliver(answer);
  }

  #backendRequest(request: JsonRpcRequest): void {
    const link = this.#tasks.relatedOwner(request) ?? this.#unsolicited.of(this.#links, this.#requests);
    const capability = CAPABILITY_OF[request.method];
    if (!link) {
      this.#log.warn(
        { method: request.method, sessions: this.#links.size, users: this.#unsolicited.servedUsers },
        'server→client request with no certain target session; answered with an error',
      );
      this.#toBackend(
        errorResponse(
          request.id,
          ErrorCode.InternalError,
          this.#unsolicited.whyNone(request.method, this.#links.size),
        ),
      );
      return;
    }
    if (capability && this.#mode !== 'per-session' && !link.hasCapability(capability)) {
      this.#toBackend(
        errorResponse(request.id, ErrorCode.MethodNotFound, `the client does not support ${capability}`),
      );
      return;
    }
    const id = this.#requests.addServerRequest(request.id, link, progressTokenOf(request.params));
    link.deliver({ ...request, id });
  }

  #backendNotification(notification: JsonRpcNotification): void {
    const method = notification.method;
    if (method === 'notifications/progress') {
      const entry = this.#requests.progressTarget(notification.params?.progressToken);
      if (entry)
        entry.link.deliver({
          ...notification,
          params: { ...notification.params, progressToken: entry.token },
        });
      return;
    }
    if (method === 'notifications/cancelled') {
      for (const { id, link } of this.#requests.takeServerRequestsFor(notification.params?.requestId))
        link.deliver({ ...notification, params: { ...notification.params, requestId: id } });
      return;
    }
    if (method.endsWith('/list_changed')) {
      for (const link of this.#links) link.deliver(notification);
      return;
    }
    if (method === 'notifications/tasks/status') {
      this.#tasks.ownerOf(notification.params?.taskId)?.deliver(notification);
      return;
    }
    if (method === 'notifications/resources/updated') {
      const uri = notification.params?.uri;
      for (const link of (typeof uri === 'string' && this.#subscriptions.get(uri)) || [])
        link.deliver(notification);
      return;
    }
    // Log messages and anything else may carry one user's data and are tied to no request: they go
    // where their task says, or to the session that is certain to be theirs, or nowhere.
    const link = this.#tasks.relatedOwner(notification) ?? this.#unsolicited.of(this.#links, this.#requests);
    if (!link) {
      this.#log.debug(
        { method, sessions: this.#links.size, users: this.#unsolicited.servedUsers },
        'notification with no certain target session; dropped',
      );
      return;
    }
    if (method === 'notifications/message' && !link.wantsLog(notification.params?.level)) return;
    link.deliver(notification);
  }

  // --- Helpers ------------------------------------------------------------------------------------

  #subscribe(link: MuxLink, uri: string, request: JsonRpcRequest): void {
    let subscribers = this.#subscriptions.get(uri);
    if (!subscribers) {
      subscribers = new Set();
      this.#subscriptions.set(uri, subscribers);
    }
    const first = subscribers.size === 0;
    subscribers.add(link);
    link.subscriptions.add(uri);
    if (first) this.#forward(link, request);
    else link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
  }

  /** Drops one session's subscription; the backend is unsubscribed when the last one goes. */
  #unsubscribe(link: MuxLink, uri: string, request: JsonRpcRequest | undefined): void {
    const subscribers = this.#subscriptions.get(uri);
    subscribers?.delete(link);
    link.subscriptions.delete(uri);
    const last = subscribers !== undefined && subscribers.size === 0;
    if (last) this.#subscriptions.delete(uri);
    if (request && last) this.#forward(link, request);
    else if (request) link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
    else if (last && this.#initResult) this.#internalRequest('resources/unsubscribe', { uri }, () => {});
  }

  /** The backend logs at the most verbose level any session asked for; each session filters its own. */
  #applyLogLevel(): void {
    let wanted: string | undefined;
    for (const link of this.#links) {
      if (link.logLevel === undefined) continue;
      if (wanted === undefined || (logLevelRank(link.logLevel) ?? 0) < (logLevelRank(wanted) ?? 0))
        wanted = link.logLevel;
    }
    if (wanted === undefined || wanted === this.#backendLogLevel || !this.#initResult) return;
    this.#backendLogLevel = wanted;
    this.#internalRequest('logging/setLevel', { level: wanted }, () => {});
  }

  /** Answers `request` with an error while the backend sits out its crash-loop cool-down. */
  #refusedAsUnhealthy(link: MuxLink, request: JsonRpcRequest): boolean {
    const reason = this.#channel.unhealthyReason;
    if (!reason) return false;
    link.deliver(this.#unavailable(request.id, reason));
    return true;
  }

  #unavailable(id: JsonRpcId, reason: string): JsonRpcResponse {
    return errorResponse(
      id,
      ErrorCode.BackendUnavailable,
      `server "${this.server}" is unavailable: ${reason}`,
    );
  }

  #capability(name: string): boolean {
    const capabilities = this.#initResult?.capabilities as Record<string, unknown> | undefined;
    return capabilities?.[name] !== undefined;
  }

  #internalRequest(
    method: string,
    params: Record<string, unknown>,
    onResponse: (response: JsonRpcResponse) => void,
  ): void {
    const id = this.#requests.addInternal(onResponse);
    if (!this.#toBackend({ jsonrpc: '2.0', id, method, params })) this.#requests.take(id);
  }

  #toBackend(message: JsonRpcMessage, onWritten?: (failed: boolean) => void): boolean {
    // The backend's silence is timed from the first request after a quiet spell, not from its last output.
    if (this.#requests.size <= 1 && 'method' in message && 'id' in message) this.#lastSign = Date.now();
    const sent = this.#channel.send(message, onWritten);
    if (sent && 'id' in message && 'method' in message) this.#watchLiveness();
    return sent;
  }

  // --- Liveness -----------------------------------------------------------------------------------

  /** Arms the liveness check while requests are pending (DESIGN.md, "Bounded everything"). */
  #watchLiveness(): void {
    if (this.#livenessTimeoutMs <= 0 || this.#livenessTimer) return;
    this.#scheduleLiveness();
  }

  #scheduleLiveness(): void {
    const half = this.#livenessTimeoutMs / 2;
    const due = this.#lastSign + (this.#pingOutstanding ? this.#livenessTimeoutMs : half);
    this.#livenessTimer = setTimeout(() => this.#checkLiveness(), Math.max(10, due - Date.now()));
    this.#livenessTimer.unref();
  }

  #checkLiveness(): void {
    this.#livenessTimer = undefined;
    if (this.#requests.size === 0 || this.#channel.state !== 'running') {
      this.#pingOutstanding = false;
      return;
    }
    const silentMs = Date.now() - this.#lastSign;
    if (silentMs >= this.#livenessTimeoutMs) {
      this.#hung(silentMs);
      return;
    }
    if (silentMs >= this.#livenessTimeoutMs / 2 && !this.#pingOutstanding) {
      this.#pingOutstanding = true;
      this.#internalRequest('ping', {}, () => {});
    }
    this.#scheduleLiveness();
  }

  #hung(silentMs: number): void {
    const pending = this.#requests.size;
    const reason = `backend stopped responding (no output for ${Math.round(silentMs / 1000)}s with ${pending} request(s) pending, ping unanswered) and was killed; whether the call ran is unknown`;
    this.#hangs++;
    this.#lastHang = { at: new Date().toISOString(), reason };
    this.#pingOutstanding = false;
    this.#log.error({ pid: this.#channel.pid, silentMs, pending }, 'backend hung; replacing it');
    this.#channel.replace(reason);
  }
}

/** Client input shown in an error: quoted, and bounded so one odd id cannot make a huge message. */
function boundedJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
