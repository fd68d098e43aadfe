// The audit log as a subscriber of the gateway's events (events.ts): one line per session start
// (or refusal) and end, per tools/call, and per app sign-in and app WebSocket, for the one gateway whose token it holds. Subscribed only
// while the config has an audit section, so a gateway without one pays nothing per request.

import type { AuditConfig } from '../config/policy-schema.ts';
import type { RelayConfig } from '../config/schema.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { messageByteLength } from '../protocol/raw-json.ts';
import type { Identity } from '../sessions/types.ts';
import { AuditLog, type AuditRecord } from './audit-log.ts';
import {
  type AppEvent,
  appEvents,
  type EventOwner,
  type RequestRefusedEvent,
  type RequestSettledEvent,
  requestRefused,
  requestSettled,
  type SessionCloseEvent,
  type SessionOpenEvent,
  sessionClosed,
  sessionOpened,
} from './events.ts';

/** Tool names and error texts in audit lines are bounded, so one odd call cannot make a huge line. */
const MAX_AUDIT_TEXT = 256;

export class Audit {
  readonly #log: Logger;
  readonly #owner: EventOwner;
  /** In a cluster, this replica's id, on every line. */
  readonly #replica: string | undefined;
  #audit: AuditLog | undefined;
  #unsubscribe: Array<() => void> = [];
  #closed = false;

  /** Opens the audit log at once: an audit file that cannot be written stops the gateway at start. */
  constructor(config: RelayConfig, log: Logger, owner: EventOwner) {
    this.#log = log;
    this.#owner = owner;
    this.#replica = config.cluster?.replica;
    this.#audit = config.audit && new AuditLog(config.audit, log);
    this.#subscribe();
  }

  /** Applies a reloaded config from the next line: same destination updated, a new one opened. */
  update(config: RelayConfig): void {
    if (this.#closed) return;
    const next: AuditConfig | undefined = config.audit;
    if (this.#audit && next && this.#audit.sameDestination(next)) {
      this.#audit.update(next);
    } else if (!next) {
      this.#audit?.close();
      this.#audit = undefined;
    } else {
      try {
        const opened = new AuditLog(next, this.#log);
        this.#audit?.close();
        this.#audit = opened;
      } catch (error) {
        // The old log stays: losing the audit trail because of a typo in a reload is the worse outcome.
        this.#log.error({ err: errorText(error) }, 'audit log not switched; still writing the old one');
      }
    }
    this.#subscribe();
  }

  /** Stops listening and closes the log. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#audit?.close();
    this.#audit = undefined;
    this.#subscribe();
  }

  /** Listens while there is a log to write, and only then. */
  #subscribe(): void {
    const wanted = this.#audit !== undefined;
    const subscribed = this.#unsubscribe.length > 0;
    if (wanted === subscribed) return;
    if (!wanted) {
      for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
      return;
    }
    this.#unsubscribe = [
      sessionOpened.subscribe((event) => this.#record(event, this.#sessionStart)),
      sessionClosed.subscribe((event) => this.#record(event, this.#sessionEnd)),
      requestSettled.subscribe((event) => this.#record(event, this.#callSettled)),
      requestRefused.subscribe((event) => this.#record(event, this.#refused)),
      appEvents.subscribe((event) => this.#record(event, this.#app)),
    ];
  }

  /** Writes the line `toRecord` makes of `event` when it is this gateway's; never throws into a publisher. */
  #record<T extends { readonly owner: EventOwner }>(
    event: T,
    toRecord: (event: T, audit: AuditLog) => AuditRecord | undefined,
  ): void {
    const audit = this.#audit;
    if (event.owner !== this.#owner || !audit) return;
    try {
      const record = toRecord(event, audit);
      if (record) audit.write(this.#replica === undefined ? record : { replica: this.#replica, ...record });
    } catch (error) {
      this.#log.error({ err: errorText(error) }, 'audit line not written');
    }
  }

  readonly #sessionStart = (event: SessionOpenEvent): AuditRecord => ({
    event: 'session.start',
    ...who(event.identity, event.server, event.address),
    session: event.session,
    groups: event.identity.groups,
    outcome: 'ok',
  });

  readonly #sessionEnd = (event: SessionCloseEvent): AuditRecord => ({
    event: 'session.end',
    ...who(event.identity, event.server, event.address),
    session: event.session,
    reason: bounded(event.reason),
    durationMs: event.durationMs,
    requests: event.requests,
  });

  /** A browser signed in to an app, or its WebSocket to the app opened or closed. */
  readonly #app = (event: AppEvent): AuditRecord => ({
    event: event.kind === 'sign-in' ? 'app.sign-in' : event.kind === 'open' ? 'app.open' : 'app.close',
    ...who(event.identity, event.server),
    ...(event.durationMs === undefined ? {} : { durationMs: event.durationMs }),
  });

  readonly #callSettled = (event: RequestSettledEvent, audit: AuditLog): AuditRecord | undefined => {
    if (event.method !== 'tools/call') return undefined;
    const { outcome, response } = event;
    return {
      ...callRecord(event, event.request, audit),
      outcome,
      ...(outcome === 'ok' ? {} : { reason: failureReason(response) }),
      responseBytes: messageByteLength(response),
    };
  };

  /** A refused session is its start refused; of refused requests, only tools/call is audited. */
  readonly #refused = (event: RequestRefusedEvent, audit: AuditLog): AuditRecord | undefined => {
    if (event.session === undefined) {
      return {
        event: 'session.start',
        ...who(event.identity, event.server, event.address),
        outcome: 'refused',
        reason: event.reason,
      };
    }
    if (event.method !== 'tools/call' || !event.request) return undefined;
    return {
      ...callRecord(event, event.request, audit),
      outcome: 'refused',
      reason: event.reason,
      responseBytes: 0,
    };
  };
}

function callRecord(
  event: {
    identity: Identity;
    server: string;
    session: string | undefined;
    address: string | undefined;
    durationMs: number;
  },
  request: JsonRpcRequest,
  audit: AuditLog,
): AuditRecord {
  const params = request.params ?? {};
  const tool = typeof params.name === 'string' ? bounded(params.name) : undefined;
  return {
    event: 'tools.call',
    ...who(event.identity, event.server, event.address),
    ...(event.session === undefined ? {} : { session: event.session }),
    ...(tool === undefined ? {} : { tool }),
    durationMs: Math.round(event.durationMs),
    requestBytes: Buffer.byteLength(JSON.stringify(request)),
    ...(audit.includeArguments ? { arguments: params.arguments ?? {} } : {}),
  };
}

function who(
  identity: Identity,
  server: string,
  address?: string,
): Pick<AuditRecord, 'user' | 'auth' | 'server' | 'address'> {
  return {
    user: identity.user,
    auth: identity.method,
    server,
    ...(address === undefined ? {} : { address }),
  };
}

function failureReason(response: JsonRpcResponse): string {
  if ('error' in response) return bounded(response.error.message);
  return 'the tool reported an error';
}

function bounded(text: string): string {
  return text.length > MAX_AUDIT_TEXT ? `${text.slice(0, MAX_AUDIT_TEXT)}…` : text;
}
