// Policy, rate limits and the audit log in the one request path every front shares: who may open a
// session on a server (allow, limits), and per session which requests pass, which list entries it
// sees and which notifications reach it. Reads the current config on every decision, so a reload
// applies to running sessions at once.

import type { AuditConfig } from '../config/policy-schema.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { AuditLog, type AuditOutcome, type AuditRecord } from '../observe/audit-log.ts';
import {
  ErrorCode,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import { messageByteLength, RawJson } from '../protocol/raw-json.ts';
import { MAX_TASKS_PER_SESSION, TASK_METHODS } from '../protocol/tasks.ts';
import type {
  Admission,
  GatedSession,
  Identity,
  Refusal,
  RequestGate,
  RequestTrack,
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
import { RateLimits } from './rate-limits.ts';

/** Tool names and error texts in audit lines are bounded, so one odd call cannot make a huge line. */
const MAX_AUDIT_TEXT = 256;

/** What the gate remembers of one session between requests. */
interface SessionState {
  requests: number;
  /** The tool each of the session's tasks runs, so the tool's policy follows the task. */
  readonly taskTools: Map<string, string>;
}

export class Gatekeeper implements SessionGates {
  readonly #log: Logger;
  readonly #limits: RateLimits;
  #policy: Policy;
  #audit: AuditLog | undefined;

  /** Opens the audit log at once: an audit file that cannot be written stops the gateway at start. */
  constructor(config: RelayConfig, log: Logger) {
    this.#log = log;
    this.#policy = new Policy(config);
    this.#limits = new RateLimits(config, log);
    this.#audit = config.audit && new AuditLog(config.audit, log);
  }

  /** Applies a reloaded config: policy and limits at once, the audit log from its next line. */
  update(config: RelayConfig): void {
    this.#policy = new Policy(config);
    this.#limits.update(config);
    this.#updateAudit(config.audit);
  }

  /** Whether `identity` may use `server` under the current policy. */
  allows(server: string, identity: Identity): boolean {
    return this.#serverPolicy(server)?.allows(identity) ?? false;
  }

  admitSession(server: string, identity: Identity): Refusal | undefined | Promise<Refusal | undefined> {
    const refused = (refusal: Refusal): Refusal => {
      this.#audit?.write({
        event: 'session.start',
        ...who(identity, server),
        outcome: 'refused',
        reason: refusal.message,
      });
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
    const startedAt = Date.now();
    const state: SessionState = { requests: 0, taskTools: new Map() };
    this.#audit?.write({
      event: 'session.start',
      ...who(session.identity, session.server),
      session: session.id,
      groups: session.identity.groups,
      outcome: 'ok',
    });
    session.onClose((_session, reason) => {
      this.#audit?.write({
        event: 'session.end',
        ...who(session.identity, session.server),
        session: session.id,
        reason: bounded(reason),
        durationMs: Date.now() - startedAt,
        requests: state.requests,
      });
    });
    return {
      admit: (request) => {
        state.requests++;
        return this.#admit(session, state, request);
      },
      passes: (notification) => this.#passes(session, notification),
    };
  }

  /** Closes the audit log. Idempotent. */
  close(): void {
    this.#audit?.close();
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

  /** The policy's answer for an allowed, counted request: refuse a hidden item, filter a list, audit a call. */
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
    if (request.method === 'tools/call' && (this.#audit || request.params?.task !== undefined))
      return { track: this.#callTrack(session, state, request, started) };
    return { track: undefined };
  }

  #refuse(session: GatedSession, request: JsonRpcRequest, started: number, refusal: Refusal): Admission {
    if (request.method === 'tools/call') {
      this.#audit?.write({
        ...this.#callRecord(session, request, started),
        outcome: 'refused',
        reason: refusal.message,
        responseBytes: 0,
      });
    }
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

  #callTrack(
    session: GatedSession,
    state: SessionState,
    request: JsonRpcRequest,
    started: number,
  ): RequestTrack {
    return {
      settle: (response, ending) => {
        rememberTask(state, request, response);
        if (!this.#audit) return response;
        const outcome: AuditOutcome =
          ending === 'timeout'
            ? 'timeout'
            : ending === 'cancelled'
              ? 'cancelled'
              : 'error' in response || isToolError(response.result)
                ? 'error'
                : 'ok';
        this.#audit?.write({
          ...this.#callRecord(session, request, started),
          outcome,
          ...(outcome === 'ok' ? {} : { reason: failureReason(response) }),
          responseBytes: messageByteLength(response),
        });
        return response;
      },
    };
  }

  #callRecord(session: GatedSession, request: JsonRpcRequest, started: number): AuditRecord {
    const params = request.params ?? {};
    const tool = typeof params.name === 'string' ? bounded(params.name) : undefined;
    return {
      event: 'tools.call',
      ...who(session.identity, session.server),
      session: session.id,
      ...(tool === undefined ? {} : { tool }),
      durationMs: Math.round(performance.now() - started),
      requestBytes: Buffer.byteLength(JSON.stringify(request)),
      ...(this.#audit?.includeArguments ? { arguments: params.arguments ?? {} } : {}),
    };
  }

  #passes(session: GatedSession, notification: JsonRpcNotification): boolean {
    const policy = this.#serverPolicy(session.server);
    // A user who lost access hears nothing more from the server.
    if (!policy?.allows(session.identity)) return false;
    const visibility = policy.visibilityFor(session.identity);
    return !visibility || notificationVisible(notification, visibility);
  }

  #updateAudit(next: AuditConfig | undefined): void {
    if (this.#audit && next && this.#audit.sameDestination(next)) {
      this.#audit.update(next);
      return;
    }
    if (!next) {
      this.#audit?.close();
      this.#audit = undefined;
      return;
    }
    try {
      const opened = new AuditLog(next, this.#log);
      this.#audit?.close();
      this.#audit = opened;
    } catch (error) {
      // The old log stays: losing the audit trail because of a typo in a reload is the worse outcome.
      this.#log.error({ err: (error as Error).message }, 'audit log not switched; still writing the old one');
    }
  }
}

function who(identity: Identity, server: string): Pick<AuditRecord, 'user' | 'auth' | 'server'> {
  return { user: identity.user, auth: identity.method, server };
}

function forbidden(identity: Identity, server: string): Refusal {
  return {
    status: 403,
    code: ErrorCode.Refused,
    message: `user ${JSON.stringify(identity.user)} is not allowed to use server "${server}"`,
  };
}

/** A tool result's isError, read from the end of a passed-through result without parsing it. */
function isToolError(result: Record<string, unknown>): boolean {
  if (result instanceof RawJson) return /"isError"\s*:\s*true\s*\}$/.test(result.tail(64).trimEnd());
  return result.isError === true;
}

function failureReason(response: JsonRpcResponse): string {
  if ('error' in response) return bounded(response.error.message);
  return 'the tool reported an error';
}

function bounded(text: string): string {
  return text.length > MAX_AUDIT_TEXT ? `${text.slice(0, MAX_AUDIT_TEXT)}…` : text;
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
