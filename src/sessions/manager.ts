// Creates, finds and ends sessions: binds each to its user, enforces per-user session caps, reaps idle
// sessions, and asks the backend pool where each one's backend is.

import { randomUUID } from 'node:crypto';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { type EventOwner, publishSessionClose, publishSessionOpen, UNOWNED } from '../observe/events.ts';
import { Session } from './session.ts';
import type { AtCapacity, Identity, Placement, Refusal, SessionClient, SessionGates } from './types.ts';

/**
 * Where a new session's backend is, by the server's isolation mode: attach to it (once, from the
 * session's constructor), or no room for another backend (a cap, or shutdown) as a result, not a fault.
 */
export type UpstreamFactory = (server: string, session: { id: string; identity: Identity }) => Placement;

/**
 * `limits.sessionsPerUser` counted across replicas (cluster/session-leases.ts): a lease per session,
 * refused when the user holds `limit` anywhere; 'unavailable' when it cannot tell (the local count
 * decides). An admitted or unavailable session is dropped when it ends.
 */
export interface SessionLeasing {
  admit(user: string, sessionId: string, limit: number): Promise<boolean | 'unavailable'>;
  drop(user: string, sessionId: string): void;
}

export type CreateResult =
  | { ok: true; session: Session }
  | AtCapacity
  | { ok: false; reason: 'too-many-sessions'; limit: number }
  | { ok: false; reason: 'shutting-down' }
  | { ok: false; reason: 'refused'; refusal: Refusal };

/** What the manager holds, read-only and copied (never its live maps), for /healthz and an admin page. */
export interface SessionsSnapshot {
  readonly sessions: number;
  /** Client requests in flight across all sessions. */
  readonly inFlight: number;
  /** Shutdown has begun: no new sessions or requests. */
  readonly draining: boolean;
  readonly byServer: Readonly<Record<string, number>>;
  readonly byUser: Readonly<Record<string, number>>;
}

/** One open session as an admin page lists it: a copy. */
export interface SessionInfo {
  readonly id: string;
  readonly server: string;
  readonly user: string;
  readonly auth: string;
  readonly client: SessionClient;
  /** Opened at, and last request at (ms since the epoch). */
  readonly since: number;
  readonly lastActivity: number;
  readonly inFlight: number;
  readonly requests: number;
}

export class SessionManager {
  readonly #config: RelayConfig;
  readonly #log: Logger;
  readonly #connect: UpstreamFactory;
  readonly #gates: SessionGates;
  readonly #owner: EventOwner;
  readonly #newId: () => string;
  readonly #leases: SessionLeasing | undefined;
  readonly #sessions = new Map<string, Session>();
  readonly #perUser = new Map<string, number>();
  readonly #reaper: NodeJS.Timeout;
  #draining = false;

  /**
   * `gates` (policy, limits) sees every session and request, whichever front (HTTP, SSH) made it;
   * `owner` names the gateway in the events of its sessions (observe/events.ts), which the audit log follows;
   * `newId` makes session ids (a replica's carry its name: cluster/cluster.ts); `leases` counts each user's
   * sessions across replicas (absent: this process's sessions are all there are).
   */
  constructor(
    config: RelayConfig,
    log: Logger,
    connect: UpstreamFactory,
    gates: SessionGates,
    owner: EventOwner = UNOWNED,
    newId: () => string = randomUUID,
    leases?: SessionLeasing,
  ) {
    this.#config = config;
    this.#log = log;
    this.#connect = connect;
    this.#gates = gates;
    this.#owner = owner;
    this.#newId = newId;
    this.#leases = leases;
    const shortestIdle = Math.min(...Object.values(config.servers).map((server) => server.idleTimeout));
    this.#reaper = setInterval(() => this.#reapIdle(), Math.max(250, Math.min(shortestIdle / 4, 30_000)));
    this.#reaper.unref();
  }

  /** Whether shutdown has begun (no new sessions or requests). */
  get draining(): boolean {
    return this.#draining;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Counts of sessions by server and by user, and requests in flight: a copy, for health and metrics. */
  snapshot(): SessionsSnapshot {
    const byServer = new Map<string, number>();
    const byUser = new Map<string, number>();
    let inFlight = 0;
    for (const session of this.#sessions.values()) {
      byServer.set(session.server, (byServer.get(session.server) ?? 0) + 1);
      byUser.set(session.identity.user, (byUser.get(session.identity.user) ?? 0) + 1);
      inFlight += session.inFlightCount;
    }
    // fromEntries defines own keys, so a user named "__proto__" is counted, not a prototype change.
    return {
      sessions: this.#sessions.size,
      inFlight,
      draining: this.#draining,
      byServer: Object.fromEntries(byServer),
      byUser: Object.fromEntries(byUser),
    };
  }

  /** Every open session, copied, for the admin page. */
  list(): SessionInfo[] {
    return [...this.#sessions.values()].map((session) => ({
      id: session.id,
      server: session.server,
      user: session.identity.user,
      auth: session.identity.method,
      client: session.client,
      since: session.createdAt,
      lastActivity: session.lastActivity,
      inFlight: session.inFlightCount,
      requests: session.requestCount,
    }));
  }

  /**
   * `client` is what the front knows of the client (its address, clientInfo), kept for the admin page.
   * A `stateless` session stands in for a user's 2026-07-28 requests to one server: it is not counted
   * in `limits.sessionsPerUser` (it is one per server and credential, not one per conversation).
   * `resends: false` for a front whose connection is the session (WebSocket): its client never sends a
   * request twice, so no answer is kept for a retry.
   */
  async create(
    server: string,
    identity: Identity,
    client: SessionClient = {},
    { stateless = false, resends = true } = {},
  ): Promise<CreateResult> {
    // Servers are not reloaded (adding or removing one takes a restart): an unknown one is the caller's bug,
    // thrown before anything (a session's place here or its lease in a cluster) is taken.
    const serverConfig = this.#config.servers[server];
    if (!serverConfig) throw new Error(`unknown server ${server}`);
    if (this.#draining) return { ok: false, reason: 'shutting-down' };
    const refusal = await this.#gates.admitSession(server, identity, client);
    if (refusal) return { ok: false, reason: 'refused', refusal };
    if (this.#draining) return { ok: false, reason: 'shutting-down' };
    const limit = this.#config.limits.sessionsPerUser;
    if (!stateless && (this.#perUser.get(identity.user) ?? 0) >= limit) {
      // Most clients never send DELETE: make room by ending the user's least recently used idle session.
      const idle = this.#leastRecentlyUsedIdle(identity.user);
      if (!idle) return { ok: false, reason: 'too-many-sessions', limit };
      await idle.close(`replaced by a newer session of the user (limits.sessionsPerUser: ${limit})`);
    }
    const leases = stateless ? undefined : this.#leases;
    let id: string | undefined;
    if (leases) {
      id = this.#newId();
      if (!(await this.#lease(leases, identity.user, id, limit)))
        return { ok: false, reason: 'too-many-sessions', limit };
    }
    const current = this.#perUser.get(identity.user) ?? 0;
    if (!stateless && current >= limit) {
      if (id !== undefined) leases?.drop(identity.user, id);
      return { ok: false, reason: 'too-many-sessions', limit };
    }
    // Placed first (a per-session backend is keyed by the id): at capacity, no session exists at all.
    id ??= this.#newId();
    const placed = this.#connect(server, { id, identity });
    if (!placed.ok) {
      leases?.drop(identity.user, id);
      return placed;
    }
    // Connected and gated when constructed.
    const session = new Session(
      {
        id,
        identity,
        server,
        requestTimeoutMs: serverConfig.requestTimeout,
        retries: {
          answers: resends ? this.#config.limits.retryAnswers : 0,
          bytes: this.#config.limits.retryAnswerBytes,
          maxAgeMs: this.#config.limits.retryAnswerAge,
        },
        log: this.#log,
        owner: this.#owner,
        client,
        stateless,
      },
      { connect: placed.attach, gate: (created) => this.#gates.open(created) },
    );
    this.#sessions.set(session.id, session);
    if (!stateless) this.#perUser.set(identity.user, current + 1);
    session.onClose(() => this.#forget(session));
    const openedAt = Date.now();
    publishSessionOpen(this.#owner, session);
    session.onClose((_session, reason) => publishSessionClose(this.#owner, session, reason, openedAt));
    // Shutdown began while an idle session was being replaced: the initialize that asked is refused like later ones.
    if (this.#draining) {
      await session.close('gateway shutting down');
      return { ok: false, reason: 'shutting-down' };
    }
    this.#log.info({ session: session.id, user: identity.user, server }, 'session started');
    return { ok: true, session };
  }

  /** Whether `session` may resume or replace an SSE stream now (policy, rate limits); the refusal if not. */
  async admitStream(session: Session): Promise<Refusal | undefined> {
    return this.#gates.admitStream(session);
  }

  /**
   * The session with this id if it was opened with `identity`'s credential (so by the same user); any
   * other caller's id, even another key of the same user, is as unknown as a made-up one.
   */
  get(id: string, identity: Identity, server: string): Session | undefined {
    const session = this.#sessions.get(id);
    if (
      !session ||
      session.closed ||
      session.stateless ||
      session.identity.user !== identity.user ||
      session.identity.credential !== identity.credential ||
      session.server !== server
    ) {
      return undefined;
    }
    return session;
  }

  /**
   * Shutdown, first step: no new session, no new request (both `503`); calls in flight go on. Resolves
   * when none is left, or after `timeoutMs` (the caller then ends what remains). Returns how many remain.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.#draining = true;
    for (const session of this.#sessions.values()) session.drain();
    const deadline = Date.now() + timeoutMs;
    let busy = this.#inFlight();
    while (busy > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
      busy = this.#inFlight();
    }
    return busy;
  }

  #inFlight(): number {
    let count = 0;
    for (const session of this.#sessions.values()) count += session.inFlightCount;
    return count;
  }

  /** Ends every session `shouldClose` picks; resolves with how many it ended. */
  async closeWhere(shouldClose: (session: Session) => boolean, reason: string): Promise<number> {
    const ending = [...this.#sessions.values()].filter((session) => !session.closed && shouldClose(session));
    await Promise.all(ending.map((session) => session.close(reason)));
    return ending.length;
  }

  async closeAll(reason: string): Promise<void> {
    this.#draining = true;
    clearInterval(this.#reaper);
    await Promise.all([...this.#sessions.values()].map((session) => session.close(reason)));
  }

  /**
   * Takes a cluster-wide lease for session `id`. Refused: the user's least recently used idle session
   * here makes room, as it does for the local count (its lease is removed on the same Redis connection
   * before the second try), else false. Redis unavailable: true, the local count has decided.
   */
  async #lease(leases: SessionLeasing, user: string, id: string, limit: number): Promise<boolean> {
    if ((await leases.admit(user, id, limit)) !== false) return true;
    const idle = this.#leastRecentlyUsedIdle(user);
    if (!idle) return false;
    await idle.close(`replaced by a newer session of the user (limits.sessionsPerUser: ${limit})`);
    return (await leases.admit(user, id, limit)) !== false;
  }

  #forget(session: Session): void {
    if (!this.#sessions.delete(session.id) || session.stateless) return;
    this.#leases?.drop(session.identity.user, session.id);
    const remaining = (this.#perUser.get(session.identity.user) ?? 1) - 1;
    if (remaining > 0) this.#perUser.set(session.identity.user, remaining);
    else this.#perUser.delete(session.identity.user);
  }

  /** The user's session used longest ago that has no request in flight and no open GET stream. */
  #leastRecentlyUsedIdle(user: string): Session | undefined {
    let oldest: Session | undefined;
    for (const session of this.#sessions.values()) {
      if (session.identity.user !== user || session.closed || session.stateless) continue;
      if (session.inFlightCount > 0 || session.hasStandaloneStream) continue;
      if (!oldest || session.lastActivity < oldest.lastActivity) oldest = session;
    }
    return oldest;
  }

  #reapIdle(): void {
    const now = Date.now();
    for (const session of this.#sessions.values()) {
      const idleTimeout = this.#config.servers[session.server]?.idleTimeout ?? Number.POSITIVE_INFINITY;
      // An open GET stream or a request in flight means the client is still there.
      if (session.hasStandaloneStream || session.inFlightCount > 0) continue;
      if (now - session.lastActivity > idleTimeout) void session.close('idle timeout');
    }
  }
}
