// What a session's message does at the multiplexer: ping, subscriptions and the log level answered
// here, another session's task refused as unknown, a cancellation or an answer translated to the
// backend's ids, everything else forwarded.

import type { Logger } from '../log.ts';
import {
  ErrorCode,
  errorResponse,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import { cancelledRequestId, logLevelRank, Method } from '../protocol/mcp.ts';
import { TASK_METHODS } from '../protocol/tasks.ts';
import type { Handshake } from './handshake.ts';
import type { MuxLink } from './link.ts';
import type { RequestTable } from './request-table.ts';
import type { Subscriptions } from './subscriptions.ts';
import type { TaskTable } from './task-table.ts';
import type { UnsolicitedTarget } from './unsolicited-target.ts';

/** Resources one session may be subscribed to at once (a 2026 listen takes 256 as well). */
export const MAX_SUBSCRIPTIONS_PER_SESSION = 256;

/** The multiplexer's state and actions the client side uses (it owns all of it). */
export interface ClientRoutingState {
  log: Logger;
  links: ReadonlySet<MuxLink>;
  requests: RequestTable;
  tasks: TaskTable;
  unsolicited: UnsolicitedTarget;
  subscriptions: Subscriptions;
  handshake: Handshake;
  /**
   * Sends a client request to the backend under a backend id (or queues it until it is ready); to the
   * process of `generation` when given (a task's, which stays on the process it runs on while that drains).
   */
  forward(link: MuxLink, request: JsonRpcRequest, generation?: number): void;
  /** Writes to the backend: its current process, or the one of `generation`. */
  toBackend(message: JsonRpcMessage, generation?: number): boolean;
  internalRequest(
    method: string,
    params: Record<string, unknown>,
    onResponse: (response: JsonRpcResponse) => void,
  ): void;
}

export class ClientRouting {
  readonly #log: Logger;
  readonly #links: ReadonlySet<MuxLink>;
  readonly #requests: RequestTable;
  readonly #tasks: TaskTable;
  readonly #unsolicited: UnsolicitedTarget;
  readonly #subscriptions: Subscriptions;
  readonly #handshake: Handshake;
  readonly #forward: ClientRoutingState['forward'];
  readonly #toBackend: ClientRoutingState['toBackend'];
  readonly #internalRequest: ClientRoutingState['internalRequest'];

  constructor(state: ClientRoutingState) {
    this.#log = state.log;
    this.#links = state.links;
    this.#requests = state.requests;
    this.#tasks = state.tasks;
    this.#unsolicited = state.unsolicited;
    this.#subscriptions = state.subscriptions;
    this.#handshake = state.handshake;
    this.#forward = state.forward;
    this.#toBackend = state.toBackend;
    this.#internalRequest = state.internalRequest;
  }

  route(link: MuxLink, message: JsonRpcMessage): void {
    if (isRequest(message)) this.#request(link, message);
    else if (isResponse(message)) this.#response(link, message);
    else this.#notification(link, message);
  }

  #request(link: MuxLink, request: JsonRpcRequest): void {
    switch (request.method) {
      case Method.initialize:
        this.#handshake.clientInitialize(link, request);
        return;
      case Method.ping:
        link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
        return;
      case Method.subscribe:
      case Method.unsubscribe: {
        const uri = request.params?.uri;
        if (typeof uri !== 'string') break;
        if (request.method === Method.subscribe) this.#subscribe(link, uri, request);
        else this.unsubscribe(link, uri, request);
        return;
      }
      case Method.setLogLevel: {
        const level = request.params?.level;
        if (
          typeof level !== 'string' ||
          logLevelRank(level) === undefined ||
          !this.#handshake.capability('logging')
        )
          break;
        link.logLevel = level;
        this.applyLogLevel();
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
    if (TASK_METHODS.has(request.method)) {
      this.#forward(link, request, this.#tasks.generationOf(request.params?.taskId));
      return;
    }
    this.#forward(link, request);
  }

  #notification(link: MuxLink, notification: JsonRpcNotification): void {
    if (notification.method === Method.initialized) return;
    if (notification.method === Method.cancelled) {
      const requestId = cancelledRequestId(notification.params);
      if (requestId === undefined) return;
      const backendId = this.#requests.backendIdOf(link, requestId);
      if (backendId === undefined) return;
      const generation = this.#requests.generationOf(backendId);
      this.#requests.take(backendId);
      this.#toBackend(
        { ...notification, params: { ...notification.params, requestId: backendId } },
        generation,
      );
      return;
    }
    // A client reports progress only on what the backend asked it, under the backend's token.
    if (notification.method === Method.progress) {
      const asker = this.#requests.progressAsker(link, notification.params?.progressToken);
      if (asker === undefined) {
        this.#log.debug(
          { user: link.user },
          'progress for no server→client request of this session; dropped',
        );
        return;
      }
      this.#unsolicited.served(link);
      this.#toBackend(notification, asker);
      return;
    }
    this.#unsolicited.served(link);
    this.#toBackend(notification);
  }

  #response(link: MuxLink, response: JsonRpcResponse): void {
    const entry = this.#requests.takeServerRequest(link, response.id);
    if (!entry) {
      this.#log.warn({ user: link.user }, 'an answer to no server→client request of this session; dropped');
      return;
    }
    this.#toBackend({ ...response, id: entry.backendId }, entry.generation);
  }

  #subscribe(link: MuxLink, uri: string, request: JsonRpcRequest): void {
    // Each URI is kept in memory (and, for an every-replica server, announced to the cluster): bounded.
    if (link.subscriptions.size >= MAX_SUBSCRIPTIONS_PER_SESSION && !link.subscriptions.has(uri)) {
      link.deliver(
        errorResponse(
          request.id,
          ErrorCode.Refused,
          `this session is subscribed to ${MAX_SUBSCRIPTIONS_PER_SESSION} resources already (the limit); unsubscribe from one first`,
        ),
      );
      return;
    }
    if (this.#subscriptions.add(link, uri)) this.#forward(link, request);
    else link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
  }

  /** Drops one session's subscription; the backend is unsubscribed when the last one goes. */
  unsubscribe(link: MuxLink, uri: string, request: JsonRpcRequest | undefined): void {
    const last = this.#subscriptions.remove(link, uri);
    if (request && last) this.#forward(link, request);
    else if (request) link.deliver({ jsonrpc: '2.0', id: request.id, result: {} });
    else if (last && this.#handshake.ready) this.#internalRequest(Method.unsubscribe, { uri }, () => {});
  }

  /** The backend logs at the most verbose level any session asked for; each session filters its own. */
  applyLogLevel(): void {
    if (!this.#handshake.ready) return;
    const level = this.#subscriptions.logLevelToApply(this.#links);
    if (level !== undefined) this.#internalRequest(Method.setLogLevel, { level }, () => {});
  }
}

/** Client input shown in an error: quoted, and bounded so one odd id cannot make a huge message. */
function boundedJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
