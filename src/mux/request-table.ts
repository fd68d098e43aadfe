// The multiplexer's bookkeeping of what is in flight on one backend: client requests under the backend
// ids the gateway chose, their progress tokens, internal requests, and server→client requests under the
// ids the sessions saw. Pure data structure: it sends nothing, so every rule about ids is testable alone.
// Each entry names the generation of the process it is on: during a graceful restart two processes
// run, and what one of them asked or was asked is answered there.

import { randomBytes } from 'node:crypto';
import type { JsonRpcId, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { idKey, isRequestId, type ProgressToken } from '../protocol/mcp.ts';
import type { MuxLink } from './link.ts';

/** A client request the gateway forwarded. */
export interface ClientPending {
  kind: 'client';
  link: MuxLink;
  clientId: JsonRpcId;
  method: string;
  progressKey: string | undefined;
  subscribeUri?: string | undefined;
  /** The backend process it was written to. */
  generation: number;
}

/** A request of the gateway's own (initialize, restoring subscriptions, log level). */
export interface InternalPending {
  kind: 'internal';
  onResponse: (response: JsonRpcResponse) => void;
  generation: number;
}

export type Pending = ClientPending | InternalPending;

/** A server→client request as forwarded to one session. */
export interface ServerRequest {
  backendId: JsonRpcId;
  link: MuxLink;
  /** The token the backend asked progress under, which the session may report on. */
  progressToken: ProgressToken | undefined;
  /** The backend process that asked (the answer goes back to it). */
  generation: number;
}

export class RequestTable {
  /** Keyed by the id the backend saw. */
  readonly #pending = new Map<number, Pending>();
  /** Backend progress token → the session and the token it chose. */
  readonly #progress = new Map<string, { link: MuxLink; token: ProgressToken }>();
  /**
   * Id the session saw for a server→client request → the backend's id and the session. The ids are
   * random, so no session can answer (or even name) a request that went to another.
   */
  readonly #serverRequests = new Map<string, ServerRequest>();
  /** Each session's request ids in flight (by idKey) → the backend id they were sent under. */
  readonly #backendIds = new Map<MuxLink, Map<string, number>>();
  #nextBackendId = 1;

  /**
   * Registers a client request; returns the backend id to send it under and, when the client asked
   * for progress, the token the backend must see instead of the client's.
   */
  addClient(
    link: MuxLink,
    clientId: JsonRpcId,
    method: string,
    progressToken: ProgressToken | undefined,
    subscribeUri?: string,
    generation = 0,
  ): { backendId: number; progressKey: string | undefined } {
    const backendId = this.#nextBackendId++;
    let progressKey: string | undefined;
    if (progressToken !== undefined) {
      progressKey = `p${backendId}`;
      this.#progress.set(progressKey, { link, token: progressToken });
    }
    this.#pending.set(backendId, {
      kind: 'client',
      link,
      clientId,
      method,
      progressKey,
      subscribeUri,
      generation,
    });
    let ids = this.#backendIds.get(link);
    if (!ids) {
      ids = new Map();
      this.#backendIds.set(link, ids);
    }
    ids.set(idKey(clientId), backendId);
    return { backendId, progressKey };
  }

  addInternal(onResponse: (response: JsonRpcResponse) => void, generation = 0): number {
    const backendId = this.#nextBackendId++;
    this.#pending.set(backendId, { kind: 'internal', onResponse, generation });
    return backendId;
  }

  /** Removes the request answered (or abandoned) under `backendId` and everything tied to it. */
  take(backendId: number): Pending | undefined {
    const pending = this.#pending.get(backendId);
    if (!pending) return undefined;
    this.#pending.delete(backendId);
    if (pending.kind === 'client') {
      this.#backendIds.get(pending.link)?.delete(idKey(pending.clientId));
      if (pending.progressKey) this.#progress.delete(pending.progressKey);
    }
    return pending;
  }

  /** The process a request in flight was written to. */
  generationOf(backendId: number): number | undefined {
    return this.#pending.get(backendId)?.generation;
  }

  /** Requests (clients' and the gateway's own) in flight on the process of `generation`. */
  countOf(generation: number): number {
    let count = 0;
    for (const pending of this.#pending.values()) if (pending.generation === generation) count++;
    return count;
  }

  /** The backend id of a session's request still in flight. */
  backendIdOf(link: MuxLink, clientId: JsonRpcId): number | undefined {
    const backendId = this.#backendIds.get(link)?.get(idKey(clientId));
    return backendId !== undefined && this.#pending.has(backendId) ? backendId : undefined;
  }

  /** Removes and returns the backend ids (and processes) of every request `link` has in flight. */
  takeAllOf(link: MuxLink): Array<{ backendId: number; generation: number }> {
    const taken: Array<{ backendId: number; generation: number }> = [];
    for (const [backendId, pending] of this.#pending) {
      if (pending.kind !== 'client' || pending.link !== link) continue;
      this.take(backendId);
      taken.push({ backendId, generation: pending.generation });
    }
    for (const [id, entry] of this.#serverRequests) if (entry.link === link) this.#serverRequests.delete(id);
    this.#backendIds.delete(link);
    return taken;
  }

  /** How many requests of `link` the backend has yet to answer. */
  inFlightOf(link: MuxLink): number {
    return this.#backendIds.get(link)?.size ?? 0;
  }

  /** Requests (clients' and the gateway's own) the backend has yet to answer. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * A backend process went away: forgets what was in flight on it and returns the client requests that
   * need an answer. Without `gone`, every process's (all of them went away); with it, the processes
   * whose generation it accepts.
   */
  clear(gone: (generation: number) => boolean = () => true): Array<ClientPending & { backendId: number }> {
    const clients: Array<ClientPending & { backendId: number }> = [];
    for (const [backendId, entry] of [...this.#pending]) {
      if (!gone(entry.generation)) continue;
      const pending = this.take(backendId);
      if (pending?.kind === 'client') clients.push({ ...pending, backendId });
    }
    for (const [id, entry] of this.#serverRequests)
      if (gone(entry.generation)) this.#serverRequests.delete(id);
    return clients;
  }

  /** Where a backend progress notification goes, and the token its session chose. */
  progressTarget(backendToken: unknown): { link: MuxLink; token: ProgressToken } | undefined {
    return typeof backendToken === 'string' ? this.#progress.get(backendToken) : undefined;
  }

  /** Registers a server→client request forwarded to `link`; returns the id that session sees. */
  addServerRequest(
    backendId: JsonRpcId,
    link: MuxLink,
    progressToken?: ProgressToken,
    generation = 0,
  ): string {
    const id = randomBytes(12).toString('base64url');
    this.#serverRequests.set(id, { backendId, link, progressToken, generation });
    return id;
  }

  /** `link`'s answer to a server→client request sent to it: where it goes back to, once. */
  takeServerRequest(link: MuxLink, id: JsonRpcId | null): ServerRequest | undefined {
    const entry = typeof id === 'string' ? this.#serverRequests.get(id) : undefined;
    if (entry?.link !== link) return undefined;
    this.#serverRequests.delete(id as string);
    return entry;
  }

  /** Whether `link` has an unanswered server→client request that asked for progress under `token`. */
  awaitsProgressFrom(link: MuxLink, token: unknown): boolean {
    return this.progressAsker(link, token) !== undefined;
  }

  /** The generation of the process whose unanswered request to `link` asked for progress under `token`. */
  progressAsker(link: MuxLink, token: unknown): number | undefined {
    if (!isRequestId(token)) return undefined;
    for (const entry of this.#serverRequests.values())
      if (entry.link === link && entry.progressToken === token) return entry.generation;
    return undefined;
  }

  /** The backend (of `generation`) cancelled its request `backendId`: the sessions' ids it was forwarded under. */
  takeServerRequestsFor(backendId: unknown, generation = 0): Array<{ id: string; link: MuxLink }> {
    const taken: Array<{ id: string; link: MuxLink }> = [];
    for (const [id, entry] of this.#serverRequests) {
      if (entry.backendId !== backendId || entry.generation !== generation) continue;
      this.#serverRequests.delete(id);
      taken.push({ id, link: entry.link });
    }
    return taken;
  }
}
