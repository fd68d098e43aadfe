// Where each message of the backend goes: a response to the session whose id it answers, progress by
// its rewritten token, a server→client request or a log line only to a session certain to be its owner.

import type { IsolationMode } from '../config/schema.ts';
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
import { Method, progressTokenOf } from '../protocol/mcp.ts';
import { RawJson } from '../protocol/raw-json.ts';
import type { MuxLink } from './link.ts';
import type { RequestTable } from './request-table.ts';
import type { Subscriptions } from './subscriptions.ts';
import type { TaskTable } from './task-table.ts';
import type { UnsolicitedTarget } from './unsolicited-target.ts';

/** Methods whose results the gateway never looks into: a large one may pass through as bytes (RawJson). */
const OPAQUE_RESULTS = new Set(['tools/call', 'resources/read', 'prompts/get', 'tasks/result']);
const CAPABILITY_OF: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** The multiplexer's state the routing reads (it owns all of it). */
export interface RoutingState {
  mode: IsolationMode;
  log: Logger;
  links: ReadonlySet<MuxLink>;
  requests: RequestTable;
  tasks: TaskTable;
  unsolicited: UnsolicitedTarget;
  subscriptions: Subscriptions;
  /** Writes to the backend: its current process, or the one of `generation`. */
  toBackend(message: JsonRpcMessage, generation?: number): boolean;
  /** Told of each change notification the backend sends, once, before the sessions hear it. */
  changed?: ((notification: JsonRpcNotification) => void) | undefined;
}

/** A notification about the backend's state as a whole: every session hears it, or a resource's subscribers. */
export function isChangeNotification(method: string): boolean {
  return method.endsWith('/list_changed') || method === Method.resourceUpdated;
}

export class BackendRouting {
  readonly #mode: IsolationMode;
  readonly #log: Logger;
  readonly #links: ReadonlySet<MuxLink>;
  readonly #requests: RequestTable;
  readonly #tasks: TaskTable;
  readonly #unsolicited: UnsolicitedTarget;
  readonly #subscriptions: Subscriptions;
  readonly #toBackend: RoutingState['toBackend'];
  readonly #changed: RoutingState['changed'];

  constructor(state: RoutingState) {
    this.#mode = state.mode;
    this.#log = state.log;
    this.#links = state.links;
    this.#requests = state.requests;
    this.#tasks = state.tasks;
    this.#unsolicited = state.unsolicited;
    this.#subscriptions = state.subscriptions;
    this.#toBackend = state.toBackend;
    this.#changed = state.changed;
  }

  /** A message of the process of `generation` (whose requests are answered there). */
  route(message: JsonRpcMessage, generation: number): void {
    if (isResponse(message)) this.#response(message);
    else if (isRequest(message)) this.#request(message, generation);
    else this.#notification(message, generation);
  }

  #response(passed: JsonRpcResponse): void {
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
      this.#subscriptions.refused(pending.link, pending.subscribeUri);
    }
    let answer: JsonRpcResponse = { ...response, id: pending.clientId };
    if ('result' in response) {
      if (pending.method === 'tasks/list')
        answer = this.#tasks.ownOnly(pending.link, response.result, answer);
      else this.#tasks.record(pending.link, response.result, pending.generation);
    }
    pending.link.deliver(answer);
  }

  #request(request: JsonRpcRequest, generation: number): void {
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
        generation,
      );
      return;
    }
    if (capability && this.#mode !== 'per-session' && !link.hasCapability(capability)) {
      this.#toBackend(
        errorResponse(request.id, ErrorCode.MethodNotFound, `the client does not support ${capability}`),
        generation,
      );
      return;
    }
    const id = this.#requests.addServerRequest(request.id, link, progressTokenOf(request.params), generation);
    link.deliver({ ...request, id });
  }

  /** A change notification to the sessions that hear it: all of them, or a resource's subscribers for its update. */
  deliverChange(notification: JsonRpcNotification): void {
    const links =
      notification.method === Method.resourceUpdated
        ? this.#subscriptions.subscribersOf(notification.params?.uri)
        : this.#links;
    for (const link of links) link.deliver(notification);
  }

  #notification(notification: JsonRpcNotification, generation: number): void {
    const method = notification.method;
    if (method === Method.progress) {
      const entry = this.#requests.progressTarget(notification.params?.progressToken);
      if (entry)
        entry.link.deliver({
          ...notification,
          params: { ...notification.params, progressToken: entry.token },
        });
      return;
    }
    if (method === Method.cancelled) {
      for (const { id, link } of this.#requests.takeServerRequestsFor(
        notification.params?.requestId,
        generation,
      ))
        link.deliver({ ...notification, params: { ...notification.params, requestId: id } });
      return;
    }
    if (isChangeNotification(method)) {
      this.#changed?.(notification);
      this.deliverChange(notification);
      return;
    }
    if (method === Method.taskStatus) {
      this.#tasks.ownerOf(notification.params?.taskId)?.deliver(notification);
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
    if (method === Method.message && !link.wantsLog(notification.params?.level)) return;
    link.deliver(notification);
  }
}
