// Finds or creates the backend a new session belongs to, by the server's isolation mode
// (shared: one for all; per-user: one per user; per-session: one each), within the instance caps.

import { randomBytes } from 'node:crypto';
import type { BackendChannel } from '../backends/channel.ts';
import type { BackendLauncher } from '../backends/launcher.ts';
import { launchProblems } from '../backends/preflight.ts';
import { DEFAULT_RESTART_POLICY, Supervisor } from '../backends/supervisor.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { type EventOwner, UNOWNED } from '../observe/events.ts';
import type { JsonRpcNotification } from '../protocol/jsonrpc.ts';
import type { AtCapacity, Identity, Placement } from '../sessions/types.ts';
import type { RestartOutcome } from './handover.ts';
import { Multiplexer } from './multiplexer.ts';

/** How long a restarted backend's new process gets to answer initialize by default. */
export const DEFAULT_START_TIMEOUT_MS = 30_000;

/** One backend instance's part in a graceful restart (BackendPool.restart). */
export type InstanceRestart = {
  /** The user a per-user or per-session backend serves; absent for a shared one. */
  user?: string;
  /** The session a per-session backend serves. */
  session?: string;
} & RestartOutcome;

function atCapacity(message: string): AtCapacity {
  return { ok: false, reason: 'capacity', message };
}

export interface ServerStats {
  backends: number;
  sessions: number;
  healthy: boolean;
  /** Backends silent with requests pending and a ping unanswered: about to be replaced. */
  unresponsive: number;
  /** Backend processes replaced because they stopped responding (livenessTimeout), and the last time. */
  hangs: number;
  lastHang?: { at: string; reason: string };
  /** Why the server is unhealthy (its crash loop), while it is. */
  reason?: string;
}

/** One backend as an admin page shows it: whose it is, its process, since when, how it fares. */
export interface BackendInfo {
  readonly server: string;
  /** The user it runs for (per-user, per-session); undefined for a shared backend. */
  readonly user: string | undefined;
  readonly isolation: string;
  readonly pid: number | undefined;
  readonly state: string;
  /** When its current process started (ms since the epoch); undefined while none runs. */
  readonly startedAt: number | undefined;
  /** Processes started after one went down. */
  readonly restarts: number;
  readonly healthy: boolean;
  readonly sessions: number;
}

interface Instance {
  mux: Multiplexer;
  user: string | undefined;
  session: string | undefined;
  /** The backend behind the multiplexer, asked for its app port at each proxied request. */
  channel: BackendChannel;
  supervisor: Supervisor;
  idleTimer: NodeJS.Timeout | undefined;
}

export class BackendPool {
  readonly #config: RelayConfig;
  readonly #launcher: BackendLauncher;
  readonly #log: Logger;
  readonly #instances = new Map<string, Instance>();
  /**
   * Servers whose backend was found crash-looping, until the cool-down ends. Kept apart from the
   * instances: a per-session backend is gone as soon as its session failed, but the server is still broken.
   */
  readonly #crashLoops = new Map<string, { reason: string; until: number }>();
  readonly #owner: EventOwner;
  #stopped = false;
  /** Told when a shared or per-user backend is stopped for good (a cluster releases its ownership). */
  onstopped: (server: string, user: string | undefined) => void = () => {};
  /** Told of each change notification a shared backend sends (a cluster fans them out to the other replicas). */
  onchange: (server: string, notification: JsonRpcNotification) => void = () => {};
  /**
   * Told of the URIs the sessions of a shared backend are subscribed to, each time that set changes (a
   * cluster announces them, so the other replicas' copies of an every-replica server report their updates).
   */
  onsubscriptions: (server: string, uris: readonly string[]) => void = () => {};
  /** URIs each shared server's backend holds subscriptions to for other replicas' sessions. */
  readonly #held = new Map<string, ReadonlySet<string>>();

  /** `owner` names the gateway in its backends' events (observe/events.ts). */
  constructor(config: RelayConfig, launcher: BackendLauncher, log: Logger, owner: EventOwner = UNOWNED) {
    this.#config = config;
    this.#launcher = launcher;
    this.#log = log;
    this.#owner = owner;
  }

  /** Whether the shared (user undefined) or per-user backend of `server` runs here now. */
  runs(server: string, user: string | undefined): boolean {
    const mode = this.#config.servers[server]?.isolation;
    if (mode === undefined || mode === 'per-session') return false;
    return this.#instances.has(instanceKey(server, mode, user ?? '', ''));
  }

  /**
   * A change notification another replica's copy of the shared `server` sent: heard by the sessions of
   * the copy here, if one runs (with none, no session here could hear it).
   */
  deliverChange(server: string, notification: JsonRpcNotification): void {
    this.#instances.get(instanceKey(server, 'shared', '', ''))?.mux.deliverChange(notification);
  }

  /**
   * Keeps the shared `server`'s backend subscribed to `uris` for other replicas' sessions (replacing the
   * last set): the copy running here now, and one started later.
   */
  holdSubscriptions(server: string, uris: ReadonlySet<string>): void {
    if (uris.size === 0) this.#held.delete(server);
    else this.#held.set(server, uris);
    this.#instances.get(instanceKey(server, 'shared', '', ''))?.mux.hold(uris);
  }

  /** Backends (running or being restarted) right now. */
  get size(): number {
    return this.#instances.size;
  }

  /**
   * Where a new session's backend is (found, or started now), or no room when one more would pass a cap
   * or the gateway is stopping: the session attaches there from its constructor.
   */
  place(server: string, session: { id: string; identity: Identity }): Placement {
    const config = this.#config.servers[server];
    if (!config) throw new Error(`unknown server ${server}`);
    // After stopAll (shutdown) nothing may start a backend that no one would stop.
    if (this.#stopped) return atCapacity('the gateway is shutting down');
    const mode = config.isolation;
    const key = instanceKey(server, mode, session.identity.user, session.id);
    let instance = this.#instances.get(key);
    if (!instance) {
      if (this.#countFor(server) >= config.maxInstances)
        return atCapacity(`server "${server}" already runs its maximum of ${config.maxInstances} instances`);
      if (this.#instances.size >= this.#config.limits.maxBackends)
        return atCapacity(
          `the gateway already runs its maximum of ${this.#config.limits.maxBackends} backends`,
        );
      instance = this.#create(
        key,
        server,
        mode === 'shared' ? undefined : session.identity.user,
        mode === 'per-session' ? session.id : undefined,
      );
    }
    clearTimeout(instance.idleTimer);
    instance.idleTimer = undefined;
    const { mux } = instance;
    return { ok: true, attach: (downstream) => mux.attach(downstream, session.identity.user) };
  }

  /**
   * The app port of the backend `user` (or `sessionId`, per-session) reaches on `server`, read live: after a
   * restart it is the new process's. Undefined while none runs (not started, stopped, between restarts).
   */
  appPortFor(server: string, user: string, sessionId?: string): number | undefined {
    const config = this.#config.servers[server];
    if (!config?.app) return undefined;
    if (config.isolation === 'per-session' && sessionId === undefined) return undefined;
    const instance = this.#instances.get(instanceKey(server, config.isolation, user, sessionId ?? ''));
    return instance?.channel.appPort;
  }

  stats(): Record<string, ServerStats> {
    const stats: Record<string, ServerStats> = {};
    for (const name of Object.keys(this.#config.servers))
      stats[name] = { backends: 0, sessions: 0, healthy: true, unresponsive: 0, hangs: 0 };
    for (const { mux } of this.#instances.values()) {
      const entry = stats[mux.server];
      if (!entry) continue;
      entry.backends++;
      entry.sessions += mux.sessionCount;
      entry.healthy &&= mux.healthy;
      const liveness = mux.liveness;
      if (liveness.unresponsive) entry.unresponsive++;
      entry.hangs += liveness.hangs;
      if (liveness.lastHang && (entry.lastHang === undefined || liveness.lastHang.at > entry.lastHang.at))
        entry.lastHang = liveness.lastHang;
    }
    const now = Date.now();
    for (const [name, crashLoop] of this.#crashLoops) {
      const entry = stats[name];
      if (crashLoop.until <= now) this.#crashLoops.delete(name);
      else if (entry) {
        entry.healthy = false;
        entry.reason = crashLoop.reason;
      }
    }
    return stats;
  }

  /**
   * Ends every crash-loop cool-down (a config reload: the admin may have fixed a server), so the next
   * request to a broken server tries it at once rather than after the cool-down.
   */
  endCooldowns(): void {
    this.#crashLoops.clear();
    for (const { channel } of this.#instances.values()) channel.endCooldown();
  }

  /** Every backend now, a copy: for the admin page and per-backend CPU and memory in the metrics. */
  backends(): BackendInfo[] {
    return [...this.#instances.values()].map(({ mux, supervisor, user }) => ({
      server: mux.server,
      user,
      isolation: this.#config.servers[mux.server]?.isolation ?? 'shared',
      pid: supervisor.pid,
      state: supervisor.state,
      startedAt: supervisor.startedAt,
      restarts: supervisor.restarts,
      healthy: mux.healthy,
      sessions: mux.sessionCount,
    }));
  }

  /**
   * Restarts the running backends of `server` gracefully (only `user`'s, when given: a shared backend
   * serves everyone and is then skipped): for each, a new process started and initialized beside the
   * old, new requests sent to it, the old one drained (servers.<name>.drainTimeout) and stopped. A new
   * process that fails leaves the old one serving. Resolves when every old process is stopped.
   */
  async restart(
    server: string,
    options: { user?: string; startTimeoutMs?: number } = {},
  ): Promise<InstanceRestart[]> {
    const config = this.#config.servers[server];
    if (!config) throw new Error(`unknown server ${server}`);
    const instances = [...this.#instances.values()].filter(({ mux }) => mux.server === server);
    // What can be known without a launch (a missing command or script) fails every instance at once.
    const problems = launchProblems(this.#launcher.inputs(server)).filter(({ level }) => level === 'error');
    return Promise.all(
      instances.map(async (instance): Promise<InstanceRestart> => {
        const who = {
          ...(instance.user === undefined ? {} : { user: instance.user }),
          ...(instance.session === undefined ? {} : { session: instance.session }),
        };
        if (options.user !== undefined && instance.user !== options.user) {
          const reason =
            instance.user === undefined
              ? 'a shared backend serves every user; restart it without a user'
              : 'another user’s backend';
          return { ...who, status: 'skipped', reason };
        }
        if (this.#stopped) return { ...who, status: 'skipped', reason: 'the gateway is shutting down' };
        if (problems.length > 0)
          return {
            ...who,
            status: 'failed',
            reason: problems.map(({ message }) => message).join('; '),
            stderr: [],
          };
        const outcome = await instance.mux.restart({
          startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
          drainTimeoutMs: config.drainTimeout,
        });
        return { ...who, ...outcome };
      }),
    );
  }

  /**
   * Stops the shared (user undefined) or per-user backend of `server` now, sessions or not (a cluster
   * found that another replica owns it; the caller ends those sessions first). False: none ran here.
   */
  evict(server: string, user: string | undefined): boolean {
    const mode = this.#config.servers[server]?.isolation;
    if (mode === undefined || mode === 'per-session') return false;
    const key = instanceKey(server, mode, user ?? '', '');
    const instance = this.#instances.get(key);
    if (!instance) return false;
    this.#log.info({ server, user }, 'stopping a backend another replica owns now');
    this.#stop(key, instance);
    return true;
  }

  /** Stops every backend, and refuses to start new ones from now on. Idempotent. */
  async stopAll(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#instances.values()];
    this.#instances.clear();
    await Promise.all(
      all.map(({ mux, idleTimer }) => {
        clearTimeout(idleTimer);
        return mux.stop();
      }),
    );
  }

  #create(key: string, server: string, user: string | undefined, sessionId: string | undefined): Instance {
    const config = this.#config.servers[server];
    if (!config) throw new Error(`unknown server ${server}`);
    const owner = {
      server,
      user,
      ...(sessionId ? { session: sessionId } : {}),
      // Kept by this instance across restarts of its backend (see BackendOwner.appKey).
      ...(config.app ? { appKey: randomBytes(18).toString('base64url') } : {}),
    };
    const supervisor = new Supervisor(() => this.#launcher.launch(owner), this.#log.child({ server, user }), {
      fingerprint: () => this.#launcher.fingerprint(server),
      owner: this.#owner,
    });
    const instance: Instance = {
      user,
      session: sessionId,
      channel: supervisor,
      supervisor,
      mux: new Multiplexer(supervisor, {
        server,
        mode: config.isolation,
        log: this.#log,
        onEmpty: () => this.#emptied(key, instance),
        // The server stays marked broken for the cool-down even after a per-session backend is gone.
        onUnhealthy: (reason) =>
          this.#crashLoops.set(server, { reason, until: Date.now() + DEFAULT_RESTART_POLICY.cooldownMs }),
        // A backend of the server took initialize: whatever broke it is fixed.
        onInitialized: () => this.#crashLoops.delete(server),
        livenessTimeoutMs: config.livenessTimeout,
        ...(config.isolation === 'shared'
          ? {
              onChange: (notification: JsonRpcNotification) => this.onchange(server, notification),
              onSubscriptions: (uris: string[]) => this.onsubscriptions(server, uris),
            }
          : {}),
      }),
      idleTimer: undefined,
    };
    const held = config.isolation === 'shared' ? this.#held.get(server) : undefined;
    if (held) instance.mux.hold(held);
    this.#instances.set(key, instance);
    return instance;
  }

  /** The last session left: a per-session backend stops now, others after the server's idleTimeout. */
  #emptied(key: string, instance: Instance): void {
    const config = this.#config.servers[instance.mux.server];
    const stop = () => {
      if (this.#instances.get(key) !== instance || instance.mux.sessionCount > 0) return;
      this.#log.info({ server: instance.mux.server }, 'stopping unused backend');
      this.#stop(key, instance);
    };
    if (!config || config.isolation === 'per-session') {
      stop();
      return;
    }
    instance.idleTimer = setTimeout(stop, config.idleTimeout);
    instance.idleTimer.unref();
  }

  /** Forgets `instance` (at `key`) and stops its process; a shared or per-user one's owner hears (onstopped). */
  #stop(key: string, instance: Instance): void {
    this.#instances.delete(key);
    clearTimeout(instance.idleTimer);
    void instance.mux.stop();
    if (instance.session === undefined) this.onstopped(instance.mux.server, instance.user);
  }

  #countFor(server: string): number {
    let count = 0;
    for (const { mux } of this.#instances.values()) if (mux.server === server) count++;
    return count;
  }
}

/** The pool's key of the backend a user's session is placed on, by the server's isolation mode. */
function instanceKey(server: string, mode: string, user: string, sessionId: string): string {
  if (mode === 'shared') return `${server}\0*`;
  if (mode === 'per-user') return `${server}\0u\0${user}`;
  return `${server}\0s\0${sessionId}`;
}
