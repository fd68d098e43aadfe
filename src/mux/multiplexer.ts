// Many sessions, one backend: the gateway is the backend's only client. It initializes the backend once,
// rewrites every id and progress token so replies find their own session, and sends a message to a
// session only when it is certain the message is that session's (DESIGN.md, "the multiplexer").

import type { BackendChannel } from '../backends/channel.ts';
import type { IsolationMode } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import { Method, progressTokenOf, withProgressToken } from '../protocol/mcp.ts';
import type { Downstream, Upstream } from '../sessions/types.ts';
import { BackendRouting } from './from-backend.ts';
import { ClientRouting } from './from-client.ts';
import { Handover, type RestartOptions, type RestartOutcome } from './handover.ts';
import { Handshake } from './handshake.ts';
import { MuxLink } from './link.ts';
import { Liveness, type LivenessStats } from './liveness.ts';
import { RequestTable } from './request-table.ts';
import { Subscriptions } from './subscriptions.ts';
import { TaskTable } from './task-table.ts';
import { UnsolicitedTarget } from './unsolicited-target.ts';

const MAX_QUEUED = 1_000;
/** Why a process whose stdin takes no more writes is replaced (it died unseen yet, or closed stdin). */
const INPUT_CLOSED = 'backend stopped taking input (it exited or closed its stdin)';

export interface MultiplexerOptions {
  server: string;
  mode: IsolationMode;
  log: Logger;
  /** Called when the last session detaches. */
  onEmpty: () => void;
  /** Called when the backend is marked unhealthy (crash loop), before the sessions waiting on it are answered. */
  onUnhealthy?: (reason: string) => void;
  /** Called each time the backend took initialize (the server works, whatever broke it before). */
  onInitialized?: () => void;
  /**
   * servers.<name>.livenessTimeout: how long the backend may write nothing while requests are
   * pending (pinged after half of it) before it counts as hung and is replaced; 0: never.
   */
  livenessTimeoutMs?: number;
  /** Told of each change notification (list changed, resource updated) the backend sends, once. */
  onChange?: (notification: JsonRpcNotification) => void;
  /** Told of the URIs this backend's sessions are subscribed to, each time that set changes. */
  onSubscriptions?: (uris: string[]) => void;
}

export class Multiplexer {
  readonly server: string;
  readonly #log: Logger;
  readonly #onEmpty: () => void;
  readonly #onUnhealthy: ((reason: string) => void) | undefined;
  readonly #onInitialized: (() => void) | undefined;
  /** The only conversation with the backend. */
  readonly #channel: BackendChannel;
  readonly #links = new Set<MuxLink>();
  /** What is in flight on the backend, under whose ids. */
  readonly #requests = new RequestTable();
  readonly #handshake: Handshake;
  readonly #subscriptions: Subscriptions;
  /** Each task the backend created → the session that created it. */
  readonly #tasks: TaskTable;
  /** Who a message tied to no request may go to. */
  readonly #unsolicited = new UnsolicitedTarget();
  /** Client requests waiting for the backend to be (re)initialized. */
  #queued: Array<{ link: MuxLink; message: JsonRpcRequest }> = [];
  /**
   * Requests written but not yet known to have reached the pipe whole, by backend id. One whose write
   * fails never reached the process and is sent again to the next one; one still here when the process
   * goes down waits for its write's outcome before it is answered (`#limbo`).
   */
  readonly #unconfirmed = new Map<number, { link: MuxLink; request: JsonRpcRequest; generation: number }>();
  /** Backend ids of unconfirmed writes whose process went down: answered or re-queued by the write's outcome. */
  readonly #limbo = new Map<number, string>();
  readonly #liveness: Liveness;
  /** Where each backend message goes. */
  readonly #fromBackendRouting: BackendRouting;
  /** What each session's message does: answered here, or forwarded. */
  readonly #fromClientRouting: ClientRouting;
  /** A graceful restart: the new process beside the old, the old one drained. */
  readonly #handover: Handover;

  /** Takes over `channel`'s callbacks: from here on the multiplexer is the backend's only client. */
  constructor(channel: BackendChannel, options: MultiplexerOptions) {
    this.server = options.server;
    this.#log = options.log.child({ server: options.server, isolation: options.mode });
    this.#onEmpty = options.onEmpty;
    this.#onUnhealthy = options.onUnhealthy;
    this.#onInitialized = options.onInitialized;
    this.#tasks = new TaskTable(this.#log);
    const onSubscriptions = options.onSubscriptions;
    this.#subscriptions = new Subscriptions(
      onSubscriptions && (() => onSubscriptions(this.#subscriptions.local())),
    );
    this.#channel = channel;
    this.#handshake = new Handshake(options.mode, this.#log, {
      channel,
      internalRequest: (method, params, onResponse) => this.#internalRequest(method, params, onResponse),
      toBackend: (message) => this.#toBackend(message),
      refusedAsUnhealthy: (link, request) => this.#refusedAsUnhealthy(link, request),
      initialized: (restart) => this.#initialized(restart),
    });
    // What both directions of routing read and write: the tables of who is attached and what is in flight.
    const shared = {
      log: this.#log,
      links: this.#links,
      requests: this.#requests,
      tasks: this.#tasks,
      unsolicited: this.#unsolicited,
      subscriptions: this.#subscriptions,
      toBackend: (message: JsonRpcMessage, generation?: number) =>
        this.#toBackend(message, undefined, generation),
    };
    this.#fromBackendRouting = new BackendRouting({
      ...shared,
      mode: options.mode,
      changed: options.onChange,
    });
    this.#fromClientRouting = new ClientRouting({
      ...shared,
      handshake: this.#handshake,
      forward: (link, request, generation) => this.#forward(link, request, generation),
      internalRequest: (method, params, onResponse) => this.#internalRequest(method, params, onResponse),
    });
    this.#liveness = new Liveness(options.livenessTimeoutMs ?? 0, {
      pending: () => this.#requests.size,
      running: () => channel.state === 'running',
      ping: () => this.#internalRequest(Method.ping, {}, () => {}),
      hung: (reason, silentMs, pending) => {
        this.#log.error({ pid: channel.pid, silentMs, pending }, 'backend hung; replacing it');
        channel.replace(reason);
      },
    });
    this.#handover = new Handover({
      channel,
      log: this.#log,
      requests: this.#requests,
      handshake: this.#handshake,
      internalRequest: (method, params, onResponse, generation) =>
        this.#internalRequest(method, params, onResponse, generation),
      toBackend: (message, generation) => this.#toBackend(message, undefined, generation),
      switched: () => this.#switched(),
      failGeneration: (generation, message) => this.#failGeneration(generation, message),
    });
    channel.onmessage = (message, generation) => this.#fromBackend(message, generation ?? this.#generation);
    channel.onsideexit = (generation, reason) => this.#handover.sideExited(generation, reason);
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
    return this.#liveness.stats;
  }

  /** The current process's generation (see BackendChannel.generation). */
  get #generation(): number {
    return this.#channel.generation ?? 0;
  }

  /**
   * Replaces the running process with a new one without failing a call: the new one is started and
   * initialized beside it, new requests go to it once it answers, the old one finishes its calls (up to
   * `drainTimeoutMs`) and is stopped. A new process that fails leaves the old one serving.
   */
  restart(options: RestartOptions): Promise<RestartOutcome> {
    return this.#handover.run(options);
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
    this.#liveness.started();
    this.#handshake.backendStarted(restart);
  }

  #backendDown(reason: string): void {
    this.#handshake.backendDown();
    this.#liveness.down();
    // The new process starts with no one's work and no tasks; a process being drained keeps its own.
    if (!this.#handover.draining) this.#unsolicited.reset();
    const gone = (generation: number) => !this.#handover.isSide(generation);
    this.#tasks.clear(gone);
    this.#answerGone(this.#requests.clear(gone), `${reason}; it is being restarted`);
    this.#subscriptions.backendDown();
  }

  /** What was in flight on a process that is gone gets `message`, once its write's outcome is known. */
  #answerGone(pendings: ReturnType<RequestTable['clear']>, message: string): number {
    for (const pending of pendings) {
      // Still being written: whether the old process got it is known when the write ends.
      if (this.#unconfirmed.has(pending.backendId)) {
        this.#limbo.set(pending.backendId, message);
        continue;
      }
      pending.link.deliver(errorResponse(pending.clientId, ErrorCode.BackendUnavailable, message));
    }
    return pendings.length;
  }

  /** A process beside the current one is done (drained, or a failed new one): what it still had fails. */
  #failGeneration(generation: number, message: string): number {
    const only = (candidate: number) => candidate === generation;
    this.#tasks.clear(only);
    return this.#answerGone(this.#requests.clear(only), message);
  }

  /** A graceful restart switched to the new process: it learns what the old one knew; sessions re-list. */
  #switched(): void {
    this.#liveness.started();
    this.#subscriptions.backendDown();
    this.#onInitialized?.();
    this.#afterRestart();
  }

  #backendUnhealthy(reason: string): void {
    this.#onUnhealthy?.(reason);
    const waiting = [
      ...this.#handshake.takeWaiters(),
      ...this.#queued.splice(0).map(({ link, message }) => ({ link, request: message })),
    ];
    for (const { link, request } of waiting) link.deliver(this.#unavailable(request.id, reason));
  }

  // --- From sessions ------------------------------------------------------------------------------

  #fromClient(link: MuxLink, message: JsonRpcMessage): void {
    this.#fromClientRouting.route(link, message);
    // A cancellation may have left a draining process with nothing in flight.
    if (this.#handover.draining) this.#handover.check();
  }

  async #detach(link: MuxLink): Promise<void> {
    if (!this.#links.delete(link)) return;
    // What the session still had in flight is cancelled at the backend, so no work runs for nobody.
    // Each to the process it is on (an old one still draining, during a restart).
    for (const { backendId, generation } of this.#requests.takeAllOf(link)) {
      this.#toBackend(
        {
          jsonrpc: '2.0',
          method: Method.cancelled,
          params: { requestId: backendId, reason: 'the client session ended' },
        },
        undefined,
        generation,
      );
    }
    for (const uri of link.subscriptions) this.#fromClientRouting.unsubscribe(link, uri, undefined);
    this.#tasks.forget(link);
    this.#queued = this.#queued.filter((entry) => entry.link !== link);
    this.#handshake.forget(link);
    if (link.logLevel !== undefined) this.#fromClientRouting.applyLogLevel();
    if (this.#handover.draining) this.#handover.check();
    if (this.#links.size === 0) this.#onEmpty();
  }

  async stop(): Promise<void> {
    this.#liveness.stop();
    this.#handover.stop();
    await this.#channel.stop();
  }

  /**
   * Keeps the backend subscribed to `uris` for sessions elsewhere (other replicas' copies of an
   * every-replica server), besides its own sessions' subscriptions; replaces the last set.
   */
  hold(uris: ReadonlySet<string>): void {
    const { subscribe, unsubscribe } = this.#subscriptions.hold(uris);
    // Not ready: a first process learns them once initialized, a new one with the rest (#afterRestart).
    if (!this.#handshake.ready) return;
    for (const uri of subscribe) this.#internalRequest(Method.subscribe, { uri }, () => {});
    for (const uri of unsubscribe) this.#internalRequest(Method.unsubscribe, { uri }, () => {});
  }

  /** The backend took initialize: after a restart it is restored first, then what waited goes to it. */
  #initialized(restart: boolean): void {
    this.#onInitialized?.();
    if (restart) this.#afterRestart();
    else
      for (const uri of this.#subscriptions.heldOnly())
        this.#internalRequest(Method.subscribe, { uri }, () => {});
    for (const { link, message } of this.#queued.splice(0)) this.#forward(link, message);
  }

  /** Restores what the new process does not know (subscriptions, log level) and tells sessions lists may differ. */
  #afterRestart(): void {
    for (const uri of this.#subscriptions.uris()) this.#internalRequest(Method.subscribe, { uri }, () => {});
    this.#fromClientRouting.applyLogLevel();
    const changed: string[] = [Method.toolsListChanged];
    if (this.#handshake.capability('resources')) changed.push(Method.resourcesListChanged);
    if (this.#handshake.capability('prompts')) changed.push(Method.promptsListChanged);
    for (const link of this.#links) for (const method of changed) link.deliver({ jsonrpc: '2.0', method });
  }

  #forward(link: MuxLink, request: JsonRpcRequest, generation?: number): void {
    // A task's request goes to the process it runs on while that one is being drained.
    const target =
      generation !== undefined && this.#handover.isDraining(generation) ? generation : this.#generation;
    if (target === this.#generation && !this.#handshake.ready) {
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
      target,
    );
    if (progressKey !== undefined) params = withProgressToken(params, progressKey);
    const forwarded: JsonRpcRequest = { jsonrpc: '2.0', id: backendId, method: request.method };
    if (params !== undefined) forwarded.params = params;
    this.#unconfirmed.set(backendId, { link, request, generation: target });
    const sent = this.#toBackend(forwarded, (error) => this.#written(backendId, error), target);
    if (!sent) {
      this.#unconfirmed.delete(backendId);
      this.#requests.take(backendId);
      // A draining process that takes no more input: the current one answers instead.
      if (target !== this.#generation) {
        this.#forward(link, request);
        return;
      }
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
    // Written to a process being replaced: the current one takes it, nothing is wrong with that one.
    if (entry.generation !== this.#generation) {
      this.#forward(entry.link, entry.request);
      return;
    }
    this.#queued.push({ link: entry.link, message: entry.request });
    if (this.#handshake.ready) this.#channel.replace(INPUT_CLOSED);
    else void this.#channel.start();
  }

  // --- From the backend ---------------------------------------------------------------------------

  /**
   * A change notification another copy of this backend sent (an every-replica server's other replicas):
   * heard by the sessions here as if this copy had sent it, and not reported to `onChange` again.
   */
  deliverChange(notification: JsonRpcNotification): void {
    this.#fromBackendRouting.deliverChange(notification);
  }

  #fromBackend(message: JsonRpcMessage, generation: number): void {
    this.#liveness.output();
    // A new process not switched to yet speaks only to the gateway (its initialize answer); the rest is dropped.
    if (this.#handover.isCandidate(generation) && ('method' in message || !('id' in message))) {
      this.#log.debug({ generation }, 'a message of a backend process not yet in use; dropped');
      return;
    }
    this.#fromBackendRouting.route(message, generation);
    if (this.#handover.isDraining(generation)) this.#handover.check();
  }

  // --- Helpers ------------------------------------------------------------------------------------

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

  /** A request of the gateway's own; false when it could not be written. */
  #internalRequest(
    method: string,
    params: Record<string, unknown>,
    onResponse: (response: JsonRpcResponse) => void,
    generation = this.#generation,
  ): boolean {
    const id = this.#requests.addInternal(onResponse, generation);
    const sent = this.#toBackend({ jsonrpc: '2.0', id, method, params }, undefined, generation);
    if (!sent) this.#requests.take(id);
    return sent;
  }

  /** Writes to the current process, or to the one of `generation` (being drained, or new). */
  #toBackend(message: JsonRpcMessage, onWritten?: (failed: boolean) => void, generation?: number): boolean {
    const request = 'method' in message && 'id' in message;
    if (request) this.#liveness.requesting(this.#requests.size);
    const sent =
      generation === undefined || generation === this.#generation
        ? this.#channel.send(message, onWritten)
        : this.#channel.send(message, onWritten, generation);
    if (sent && request) this.#liveness.requested();
    return sent;
  }
}
