// What happens to sessions, requests, backends and failed sign-ins, published on node:diagnostics_channel
// for the audit log, the metrics and the admin page. Every publish checks `hasSubscribers` first, so
// an event nobody listens to costs one property read and builds nothing.

import { type Channel, channel } from 'node:diagnostics_channel';
import type { JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { RawJson } from '../protocol/raw-json.ts';
import type { Identity, Refusal, RequestEnding, SessionClient } from '../sessions/types.ts';

/**
 * Which gateway an event belongs to. Several gateways may run in one process (the tests do), and
 * channels are process-wide, so a subscriber keeps to the events carrying its own gateway's token.
 */
export type EventOwner = symbol;

/** The token of sessions and gates made without one: no gateway's subscriber takes their events. */
export const UNOWNED: EventOwner = Symbol('unowned');

/** What every session event names. */
interface SessionEventBase {
  readonly owner: EventOwner;
  /** The session's id. */
  readonly session: string;
  readonly server: string;
  readonly identity: Identity;
  /** The client's address as the front saw it (the TCP peer; a proxy's when behind one), if known. */
  readonly address: string | undefined;
}

/** A session started: its backend is attached and its gate open. */
export type SessionOpenEvent = SessionEventBase;

export interface SessionCloseEvent extends SessionEventBase {
  readonly reason: string;
  /** Since the session opened (its backend attached), in whole milliseconds. */
  readonly durationMs: number;
  /** Requests that reached the gate, initialize included. */
  readonly requests: number;
}

/** How a request that reached the backend ended, as the audit log names it. */
export type RequestOutcome = 'ok' | 'error' | 'timeout' | 'cancelled';

export interface RequestSettledEvent extends SessionEventBase {
  readonly method: string;
  /** `params.name` when it is a string (the tool of tools/call, the prompt of prompts/get). */
  readonly name: string | undefined;
  /** The request as the client sent it; subscribers must not change it. */
  readonly request: JsonRpcRequest;
  /** The answer before a list filter rewrote it; subscribers must not change it. */
  readonly response: JsonRpcResponse;
  readonly ending: RequestEnding;
  readonly outcome: RequestOutcome;
  /** From the request's admission to its answer, in milliseconds (fractional). */
  readonly durationMs: number;
}

/** The gate refused a session (before it existed) or one of its requests. */
export interface RequestRefusedEvent {
  readonly owner: EventOwner;
  readonly server: string;
  readonly identity: Identity;
  /** Undefined when the session itself was refused: its initialize, before it existed. */
  readonly session: string | undefined;
  /** The client's address as the front saw it, if known. */
  readonly address: string | undefined;
  readonly method: string;
  readonly name: string | undefined;
  /** Undefined for a refused session. */
  readonly request: JsonRpcRequest | undefined;
  readonly reason: string;
  /** The HTTP status a front answers with (403, 429); undefined for a plain JSON-RPC error. */
  readonly status: number | undefined;
  /** From the start of the admission to the refusal, in milliseconds (fractional). */
  readonly durationMs: number;
}

/**
 * A backend process started, went down or was marked unhealthy, with the token of the gateway whose
 * pool made its supervisor (UNOWNED for a supervisor made on its own).
 */
export interface BackendEvent {
  readonly owner: EventOwner;
  readonly server: string | undefined;
  readonly pid: number | undefined;
  /** Why it went down or is unhealthy; undefined for `started`. */
  readonly reason: string | undefined;
  /** For `started`: a restart after the backend went down, not its first start. */
  readonly restart: boolean;
}

/**
 * A browser and an app (transports/apps/): a sign-in link exchanged for a cookie, a WebSocket to the
 * app opened or closed (with how long it was open).
 */
export interface AppEvent {
  readonly owner: EventOwner;
  readonly server: string;
  readonly identity: Identity;
  readonly kind: 'sign-in' | 'open' | 'close';
  /** For `close`: since the WebSocket opened, in whole milliseconds. */
  readonly durationMs: number | undefined;
}

/** Why a request was refused before anyone was known: words of ours, never the credential. */
export type AuthFailureReason = 'missing' | 'invalid' | 'insufficient-scope' | 'unavailable' | 'certificate';

/** A request the edge refused because who was calling could not be established (401, 403, 503). */
export interface AuthFailedEvent {
  readonly owner: EventOwner;
  readonly reason: AuthFailureReason;
  readonly status: number;
}

/** One typed channel: publishers check `hasSubscribers` before building an event. */
export class EventChannel<T> {
  readonly name: string;
  readonly #channel: Channel;

  constructor(name: string) {
    this.name = name;
    this.#channel = channel(name);
  }

  get hasSubscribers(): boolean {
    return this.#channel.hasSubscribers;
  }

  publish(event: T): void {
    this.#channel.publish(event);
  }

  /**
   * Calls `listener` with each event; returns the function that unsubscribes. A listener that throws
   * would surface as an uncaught exception (diagnostics_channel rethrows on the next tick): catch inside.
   */
  subscribe(listener: (event: T) => void): () => void {
    const onMessage = (message: unknown) => listener(message as T);
    this.#channel.subscribe(onMessage);
    return () => {
      this.#channel.unsubscribe(onMessage);
    };
  }
}

export const sessionOpened = new EventChannel<SessionOpenEvent>('mcp-relay:session.open');
export const sessionClosed = new EventChannel<SessionCloseEvent>('mcp-relay:session.close');
export const requestSettled = new EventChannel<RequestSettledEvent>('mcp-relay:request.settled');
export const requestRefused = new EventChannel<RequestRefusedEvent>('mcp-relay:request.refused');
export const appEvents = new EventChannel<AppEvent>('mcp-relay:app');
export const authFailed = new EventChannel<AuthFailedEvent>('mcp-relay:auth.failed');
export const backendStarted = new EventChannel<BackendEvent>('mcp-relay:backend.started');
export const backendDown = new EventChannel<BackendEvent>('mcp-relay:backend.down');
export const backendUnhealthy = new EventChannel<BackendEvent>('mcp-relay:backend.unhealthy');

/** What the publishers read of a session. */
export interface ObservedSession {
  readonly id: string;
  readonly server: string;
  readonly identity: Identity;
  readonly client?: SessionClient;
}

export function publishSessionOpen(owner: EventOwner, session: ObservedSession): void {
  if (!sessionOpened.hasSubscribers) return;
  sessionOpened.publish({
    owner,
    session: session.id,
    server: session.server,
    identity: session.identity,
    address: session.client?.address,
  });
}

export function publishSessionClose(
  owner: EventOwner,
  session: ObservedSession & { readonly requestCount: number },
  reason: string,
  openedAt: number,
): void {
  if (!sessionClosed.hasSubscribers) return;
  sessionClosed.publish({
    owner,
    session: session.id,
    server: session.server,
    identity: session.identity,
    address: session.client?.address,
    reason,
    durationMs: Date.now() - openedAt,
    requests: session.requestCount,
  });
}

/** A request someone observes: kept from its admission to its answer. */
export interface RequestWatch {
  readonly request: JsonRpcRequest;
  readonly startedAt: number;
}

/** Starts watching an admitted request, or undefined (nothing kept, nothing timed) when nobody listens. */
export function watchRequest(request: JsonRpcRequest): RequestWatch | undefined {
  return requestSettled.hasSubscribers ? { request, startedAt: performance.now() } : undefined;
}

export function publishRequestSettled(
  owner: EventOwner,
  session: ObservedSession,
  watch: RequestWatch,
  response: JsonRpcResponse,
  ending: RequestEnding,
): void {
  if (!requestSettled.hasSubscribers) return;
  const { request } = watch;
  requestSettled.publish({
    owner,
    session: session.id,
    server: session.server,
    identity: session.identity,
    address: session.client?.address,
    method: request.method,
    name: nameOf(request),
    request,
    response,
    ending,
    outcome: outcomeOf(response, ending),
    durationMs: performance.now() - watch.startedAt,
  });
}

/** A session refused before it existed (its initialize): not allowed, or over a rate limit. */
export function publishSessionRefused(
  owner: EventOwner,
  server: string,
  identity: Identity,
  refusal: Refusal,
  client: SessionClient | undefined,
): void {
  if (!requestRefused.hasSubscribers) return;
  requestRefused.publish({
    owner,
    server,
    identity,
    session: undefined,
    address: client?.address,
    method: 'initialize',
    name: undefined,
    request: undefined,
    reason: refusal.message,
    status: refusal.status,
    durationMs: 0,
  });
}

export function publishRequestRefused(
  owner: EventOwner,
  session: ObservedSession,
  request: JsonRpcRequest,
  refusal: Refusal,
  startedAt: number,
): void {
  if (!requestRefused.hasSubscribers) return;
  requestRefused.publish({
    owner,
    server: session.server,
    identity: session.identity,
    session: session.id,
    address: session.client?.address,
    method: request.method,
    name: nameOf(request),
    request,
    reason: refusal.message,
    status: refusal.status,
    durationMs: performance.now() - startedAt,
  });
}

export function publishApp(
  owner: EventOwner,
  server: string,
  identity: Identity,
  kind: AppEvent['kind'],
  openedAt?: number,
): void {
  if (!appEvents.hasSubscribers) return;
  const durationMs = openedAt === undefined ? undefined : Date.now() - openedAt;
  appEvents.publish({ owner, server, identity, kind, durationMs });
}

export function publishBackend(
  events: EventChannel<BackendEvent>,
  owner: EventOwner,
  server: string | undefined,
  pid: number | undefined,
  reason: string | undefined,
  restart = false,
): void {
  if (events.hasSubscribers) events.publish({ owner, server, pid, reason, restart });
}

export function publishAuthFailed(owner: EventOwner, reason: AuthFailureReason, status: number): void {
  if (authFailed.hasSubscribers) authFailed.publish({ owner, reason, status });
}

function nameOf(request: JsonRpcRequest): string | undefined {
  const name = request.params?.name;
  return typeof name === 'string' ? name : undefined;
}

function outcomeOf(response: JsonRpcResponse, ending: RequestEnding): RequestOutcome {
  if (ending === 'timeout') return 'timeout';
  if (ending === 'cancelled') return 'cancelled';
  return 'error' in response || isToolError(response.result) ? 'error' : 'ok';
}

/** A tool result's isError, read from the end of a passed-through result without parsing it. */
function isToolError(result: Record<string, unknown>): boolean {
  if (result instanceof RawJson) return /"isError"\s*:\s*true\s*\}$/.test(result.tail(64).trimEnd());
  return result.isError === true;
}
