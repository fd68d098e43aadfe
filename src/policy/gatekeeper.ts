// Policy and rate limits in the one request path every front shares: who may open a session on a
// server (allow, limits), and per session which requests pass, which list entries it sees and which
// notifications reach it. Reads the current config on every decision, so a reload applies to running
// sessions at once. Refusals are published (observe/events.ts); the audit log follows them there.

import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { type EventOwner, publishRequestRefused, publishSessionRefused, UNOWNED } from '../observe/events.ts';
import {
  ErrorCode,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import { MAX_TASKS_PER_SESSION, TASK_METHODS } from '../protocol/tasks.ts';
import type {
  Admission,
  GatedSession,
  Identity,
  Refusal,
  RequestGate,
  RequestTrack,
  SessionClient,
  SessionGates,
} from '../sessions/types.ts';
import {
  filterListResponse,
  hiddenItemMessage,
  isFilteredList,
  itemOfRequest,
  namesItemBadly,
  notificationVisible,
} from './filters.ts';
import { Policy, type ServerPolicy } from './policy.ts';
import { RateLimits, type SharedLimits } from './rate-limits.ts';

/** What the gate remembers of one session between requests. */
interface SessionState {
  /** The tool each of the session's tasks runs, so the tool's policy follows the task. */
  readonly taskTools: Map<string, string>;
}

export class Gatekeeper implements SessionGates {
  readonly #limits: RateLimits;
  readonly #owner: EventOwner;
  #policy: Policy;

  /**
   * `owner` names the gateway in the refusals it publishes (observe/events.ts); `sharedLimits`, the
   * cluster's Redis, where requests per minute are counted across replicas.
   */
  constructor(config: RelayConfig, log: Logger, owner: EventOwner = UNOWNED, sharedLimits?: SharedLimits) {
    this.#owner = owner;
    this.#policy = new Policy(config);
    this.#limits = new RateLimits(config, log, sharedLimits);
  }

  /** Applies a reloaded config: policy and limits at once. */
  update(config: RelayConfig): void {
    this.#policy = new Policy(config);
    this.#limits.update(config);
  }

  /** Whether `identity` may use `server` under the current policy. */
  allows(server: string, identity: Identity): boolean {
    return this.#serverPolicy(server)?.allows(identity) ?? false;
  }

  admitSession(
    server: string,
    identity: Identity,
    client?: SessionClient,
  ): Refusal | undefined | Promise<Refusal | undefined> {
    const refused = (refusal: Refusal): Refusal => {
      publishSessionRefused(this.#owner, server, identity, refusal, client);
      return refusal;
    };
    if (!this.#serverPolicy(server)?.allows(identity)) return refused(forbidden(identity, server));
    if (!this.#limits.applies(server)) return undefined;
    return this.#limits
      .consume(identity.user, server)
      .then((refusal) => (refusal ? refused(refusal) : undefined));
  }

  /** A resumed or replaced stream: allowed still, and one request against the rate limits. */
  admitStream(session: GatedSession): Refusal | undefined | Promise<Refusal | undefined> {
    if (!this.#serverPolicy(session.server)?.allows(session.identity))
      return forbidden(session.identity, session.server);
    if (!this.#limits.applies(session.server)) return undefined;
    return this.#limits.consume(session.identity.user, session.server);
  }

  open(session: GatedSession): RequestGate {
    const state: SessionState = { taskTools: new Map() };
    return {
      admit: (request) => this.#admit(session, state, request),
      passes: (notification) => this.#passes(session, notification),
    };
  }

  #serverPolicy(server: string): ServerPolicy | undefined {
    return this.#policy.server(server);
  }

  #admit(
    session: GatedSession,
    state: SessionState,
    request: JsonRpcRequest,
  ): Admission | Promise<Admission> {
    // initialize was admitted (and counted) with the session itself.
    if (request.method === 'initialize') return { track: undefined };
    const started = performance.now();
    if (!this.#serverPolicy(session.server)?.allows(session.identity)) {
      // The user lost access through a reload: every further request is refused, none reaches the server.
      return this.#refuse(session, request, started, forbidden(session.identity, session.server));
    }
    if (!this.#limits.applies(session.server)) return this.#decide(session, state, request, started);
    return this.#limits
      .consume(session.identity.user, session.server)
      .then((refusal) =>
        refusal
          ? this.#refuse(session, request, started, refusal)
          : this.#decide(session, state, request, started),
      );
  }

  /** The policy's answer for an allowed, counted request: refuse a hidden item, filter a list, follow a task. */
  #decide(session: GatedSession, state: SessionState, request: JsonRpcRequest, started: number): Admission {
    const visibility = this.#serverPolicy(session.server)?.visibilityFor(session.identity);
    if (visibility) {
      const taskTool = TASK_METHODS.has(request.method)
        ? state.taskTools.get(request.params?.taskId as string)
        : undefined;
      if (taskTool !== undefined && !visibility.visible('tool', taskTool)) {
        return this.#refuse(session, request, started, {
          code: ErrorCode.Refused,
          message: hiddenItemMessage({ kind: 'tool', name: taskTool }),
        });
      }
      if (namesItemBadly(request)) {
        return this.#refuse(session, request, started, {
          code: ErrorCode.InvalidParams,
          message: `${request.method}: the item must be named by a string`,
        });
      }
      const item = itemOfRequest(request);
      if (item && !visibility.visible(item.kind, item.name)) {
        return this.#refuse(session, request, started, {
          code: ErrorCode.Refused,
          message: hiddenItemMessage(item),
        });
      }
      if (isFilteredList(request.method)) return { track: this.#listTrack(session, request.method) };
    }
    if (request.method === 'tools/call' && request.params?.task !== undefined)
      return { track: this.#taskTrack(state, request) };
    return { track: undefined };
  }

  #refuse(session: GatedSession, request: JsonRpcRequest, started: number, refusal: Refusal): Admission {
    publishRequestRefused(this.#owner, session, request, refusal, started);
    return { refusal };
  }

  /** Filters each page of a list with the policy current when the page arrives. */
  #listTrack(session: GatedSession, method: string): RequestTrack {
    return {
      settle: (response) => {
        const visibility = this.#serverPolicy(session.server)?.visibilityFor(session.identity);
        return visibility ? filterListResponse(method, response, visibility) : response;
      },
    };
  }

  /** A tool call that may be answered with a task: the task's later requests follow the tool's policy. */
  #taskTrack(state: SessionState, request: JsonRpcRequest): RequestTrack {
    return {
      settle: (response) => {
        rememberTask(state, request, response);
        return response;
      },
    };
  }

  #passes(session: GatedSession, notification: JsonRpcNotification): boolean {
    const policy = this.#serverPolicy(session.server);
    // A user who lost access hears nothing more from the server.
    if (!policy?.allows(session.identity)) return false;
    const visibility = policy.visibilityFor(session.identity);
    return !visibility || notificationVisible(notification, visibility);
  }
}

function forbidden(identity: Identity, server: string): Refusal {
  return {
    status: 403,
    code: ErrorCode.Refused,
    message: `user ${JSON.stringify(identity.user)} is not allowed to use server "${server}"`,
  };
}

/** A tools/call answered with a task (`{ task: { taskId } }`): its later tasks/* requests are that tool's. */
function rememberTask(state: SessionState, request: JsonRpcRequest, response: JsonRpcResponse): void {
  if (!('result' in response)) return;
  const taskId = (response.result.task as { taskId?: unknown } | undefined)?.taskId;
  const tool = request.params?.name;
  if (typeof taskId !== 'string' || typeof tool !== 'string') return;
  if (state.taskTools.size >= MAX_TASKS_PER_SESSION) {
    const oldest = state.taskTools.keys().next().value;
    if (oldest !== undefined) state.taskTools.delete(oldest);
  }
  state.taskTools.set(taskId, tool);
}
