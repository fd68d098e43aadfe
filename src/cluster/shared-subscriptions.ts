// Resource subscriptions of `every-replica` servers, made cluster-wide. A client's subscription on one
// replica subscribes that replica's copy only, so an update made through another replica's copy would be
// sent by no copy at all. Each replica therefore announces the URIs its sessions are subscribed to, per
// such server (the hash `subs:<replica>`, a field per server, expiring unless the refresh renews it each
// heartbeat; listed in the set `subs`; a nudge on `subs-changed`), and keeps its own copy subscribed to
// the union of the other replicas' URIs (BackendPool.holdSubscriptions). That copy then sends their
// updates, which the fan-out (notify-fanout.ts) carries to them; each replica still hands an update only
// to its own sessions subscribed to it. Only URIs cross, bounded in length and number. A dead replica's
// entry expires; without Redis each replica serves its own subscribers as before, the outage logged once.

import type { RedisClientType } from '@redis/client';
import type { RelayConfig } from '../config/schema.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import { roundRobin } from '../util/round-robin.ts';
import { HEARTBEAT_MS, HEARTBEAT_TTL_MS } from './cluster.ts';
import { MAX_URI_LENGTH, runsOnEveryReplica } from './notify-fanout.ts';
import { closeClient, type RedisLink } from './redis-link.ts';

/** URIs one replica announces per server, and a copy holds per server for all the others together. */
export const MAX_URIS = 1_000;
/** Every this many refreshes each replica's entry is read again (a nudge lost on a reconnect). */
const FULL_READ_EVERY = 10;

/**
 * Renews this replica's entry (KEYS[1]: its hash) and lists the replicas whose entries are there
 * (KEYS[2]: the set of them; ARGV[1]: the hashes' key prefix), forgetting those that expired. Returns
 * whether this replica's own entry was there, then the ids.
 */
const REFRESH = `
local listed = {redis.call('PEXPIRE', KEYS[1], ARGV[2])}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    table.insert(listed, id)
  else
    redis.call('SREM', KEYS[2], id)
  end
end
return listed`;

export class SharedSubscriptions {
  readonly #redis: RedisLink;
  readonly #replica: string;
  readonly #config: () => RelayConfig;
  readonly #log: Logger;
  readonly #hold: (server: string, uris: ReadonlySet<string>) => void;
  /** The URIs this replica's sessions are subscribed to, per every-replica server. */
  readonly #local = new Map<string, string[]>();
  /** Servers whose field of this replica's entry must be written (again). */
  readonly #dirty = new Set<string>();
  /** Each other replica's URIs per server, as last read. */
  readonly #remote = new Map<string, Map<string, string[]>>();
  /** What each server's copy here holds for the others (the pool is told only of changes). */
  readonly #held = new Map<string, ReadonlySet<string>>();
  /** Replicas whose entry must be read: nudged, newly listed, or a full read. */
  readonly #toRead = new Set<string>();
  /** Servers whose union passed MAX_URIS (logged once each). */
  readonly #capped = new Set<string>();
  #subscriber: RedisClientType | undefined;
  #subscribed = false;
  #timer: NodeJS.Timeout | undefined;
  #writeSoon: NodeJS.Immediate | undefined;
  #writing = false;
  #reading = false;
  #refreshing = false;
  #refreshes = 0;
  /** Set while Redis fails us, so the outage is logged once. */
  #failing = false;
  #closed = false;

  /** `hold` keeps the copy of `server` here subscribed to `uris` for the other replicas (BackendPool.holdSubscriptions). */
  constructor(
    redis: RedisLink,
    replica: string,
    config: () => RelayConfig,
    log: Logger,
    hold: (server: string, uris: ReadonlySet<string>) => void,
  ) {
    this.#redis = redis;
    this.#replica = replica;
    this.#config = config;
    this.#log = log;
    this.#hold = hold;
  }

  /** URIs this replica announces, and its copies hold for the others, over all servers (/healthz, /metrics). */
  get counts(): { announced: number; held: number } {
    return {
      announced: sum([...this.#local.values()].map((uris) => uris.length)),
      held: sum([...this.#held.values()].map((uris) => uris.size)),
    };
  }

  /** Listens for the others' nudges, and renews and reads the entries each heartbeat. */
  start(): void {
    if (this.#timer || this.#closed) return;
    this.#subscriber = this.#redis.subscriber((subscriber) => void this.#subscribe(subscriber));
    this.#timer = setInterval(() => void this.#refresh(), HEARTBEAT_MS);
    this.#timer.unref();
    void this.#refresh();
  }

  /** The URIs this replica's sessions of the shared `server` are subscribed to now. */
  announce(server: string, uris: readonly string[]): void {
    if (this.#closed || !runsOnEveryReplica(this.#config(), server)) return;
    const kept = uris.filter((uri) => uri.length <= MAX_URI_LENGTH).slice(0, MAX_URIS);
    if (kept.length === 0) this.#local.delete(server);
    else this.#local.set(server, kept);
    this.#dirty.add(server);
    // A burst of subscriptions (a listen with many URIs) is one write.
    this.#writeSoon ??= setImmediate(() => {
      this.#writeSoon = undefined;
      void this.#write();
    });
  }

  /** Withdraws this replica's entry (the others let go at once) and stops. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearImmediate(this.#writeSoon);
    if (this.#subscriber) await closeClient(this.#subscriber);
    await this.#redis
      .run((client) =>
        client
          .multi()
          .del(this.#redis.key('subs', this.#replica))
          .sRem(this.#redis.key('subs'), this.#replica)
          .publish(this.#redis.key('subs-changed'), this.#replica)
          .exec(),
      )
      .catch(() => {}); // Redis away: the entry expires
  }

  async #write(): Promise<void> {
    if (this.#writing || this.#closed || this.#dirty.size === 0) return;
    this.#writing = true;
    const servers = [...this.#dirty];
    this.#dirty.clear();
    const own = this.#redis.key('subs', this.#replica);
    try {
      await this.#redis.run((client) => {
        const multi = client.multi();
        for (const server of servers) {
          const uris = this.#local.get(server);
          if (uris) multi.hSet(own, server, JSON.stringify(uris));
          else multi.hDel(own, server);
        }
        multi.pExpire(own, HEARTBEAT_TTL_MS);
        multi.sAdd(this.#redis.key('subs'), this.#replica);
        multi.publish(this.#redis.key('subs-changed'), this.#replica);
        return multi.exec();
      });
      this.#recovered();
    } catch (error) {
      for (const server of servers) this.#dirty.add(server);
      this.#failed(error);
      return; // written again at the next refresh
    } finally {
      this.#writing = false;
    }
    if (this.#dirty.size > 0) void this.#write();
  }

  /** Each heartbeat: this replica's entry renewed, the others' listed; new or gone ones read or forgotten. */
  async #refresh(): Promise<void> {
    if (this.#refreshing || this.#closed) return;
    this.#refreshing = true;
    let listed: unknown[];
    try {
      listed = (await this.#redis.run((client) =>
        client.eval(REFRESH, {
          keys: [this.#redis.key('subs', this.#replica), this.#redis.key('subs')],
          arguments: [this.#redis.key('subs', ''), String(HEARTBEAT_TTL_MS)],
        }),
      )) as unknown[];
    } catch (error) {
      // Redis away: the copies here keep holding what they held; announced again once it is back.
      if (this.#local.size > 0) this.#failed(error);
      return;
    } finally {
      this.#refreshing = false;
    }
    const [ownThere, ...ids] = listed;
    // The entry lapsed (Redis was away longer than its life, or restarted): written again whole.
    if (ownThere !== 1) for (const server of this.#local.keys()) this.#dirty.add(server);
    void this.#write();
    const others = new Set(ids.filter((id): id is string => typeof id === 'string' && id !== this.#replica));
    const changed = new Set<string>();
    for (const [replica, servers] of this.#remote) {
      if (others.has(replica)) continue;
      this.#remote.delete(replica);
      for (const server of servers.keys()) changed.add(server);
    }
    this.#apply(changed);
    const full = this.#refreshes++ % FULL_READ_EVERY === 0;
    for (const replica of others) if (full || !this.#remote.has(replica)) this.#toRead.add(replica);
    void this.#read();
  }

  /** Reads the entries of the replicas in #toRead, one batch at a time, so a later read never loses to an older one. */
  async #read(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      while (this.#toRead.size > 0 && !this.#closed) {
        const replicas = [...this.#toRead];
        this.#toRead.clear();
        let entries: Array<Record<string, string>>;
        try {
          entries = await this.#redis.run((client) =>
            Promise.all(replicas.map((replica) => client.hGetAll(this.#redis.key('subs', replica)))),
          );
        } catch {
          for (const replica of replicas) this.#toRead.add(replica); // the next refresh tries again
          return;
        }
        const changed = new Set<string>();
        for (const [index, replica] of replicas.entries())
          this.#learn(replica, entries[index] ?? {}, changed);
        this.#apply(changed);
      }
    } finally {
      this.#reading = false;
    }
  }

  /** Takes `replica`'s entry as read, noting the servers whose URIs changed. */
  #learn(replica: string, entry: Record<string, string>, changed: Set<string>): void {
    const before = this.#remote.get(replica);
    const now = new Map<string, string[]>();
    for (const [server, text] of Object.entries(entry)) {
      const uris = urisIn(text);
      if (uris.length > 0) now.set(server, uris);
    }
    for (const server of new Set([...(before?.keys() ?? []), ...now.keys()]))
      if (!sameList(before?.get(server), now.get(server))) changed.add(server);
    if (now.size === 0) this.#remote.delete(replica);
    else this.#remote.set(replica, now);
  }

  /** Hands each changed every-replica server's new union of the others' URIs to its copy here. */
  #apply(changed: ReadonlySet<string>): void {
    for (const server of changed) {
      if (!runsOnEveryReplica(this.#config(), server)) continue;
      // The replicas take turns, so each one's sessions (their users in turns too) get a share.
      const wanted = roundRobin(
        [...this.#remote.keys()].sort().map((replica) => this.#remote.get(replica)?.get(server) ?? []),
      );
      const union = new Set(wanted.slice(0, MAX_URIS));
      if (wanted.length > MAX_URIS && !this.#capped.has(server)) {
        this.#capped.add(server);
        this.#log.warn(
          { server, max: MAX_URIS },
          'the other replicas are subscribed to more resources than a copy holds; updates of the rest made here do not reach them',
        );
      }
      const before = this.#held.get(server);
      if (before && before.size === union.size && [...union].every((uri) => before.has(uri))) continue;
      if (!before && union.size === 0) continue;
      if (union.size === 0) this.#held.delete(server);
      else this.#held.set(server, union);
      this.#hold(server, union);
    }
  }

  async #subscribe(subscriber: RedisClientType): Promise<void> {
    // A (re)connection: nudges sent meanwhile are lost, so the next refresh reads every entry again.
    this.#refreshes = 0;
    void this.#refresh();
    if (this.#subscribed || this.#closed) return;
    this.#subscribed = true;
    try {
      await subscriber.subscribe(this.#redis.key('subs-changed'), (replica) => this.#nudged(replica));
    } catch (error) {
      this.#subscribed = false;
      this.#log.warn(
        { err: errorText(error) },
        'could not subscribe to other replicas’ resource subscriptions; read each heartbeat instead',
      );
    }
  }

  #nudged(replica: string): void {
    if (this.#closed || replica === this.#replica || replica.length > 200) return;
    this.#toRead.add(replica);
    void this.#read();
  }

  #failed(error: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#log.warn(
      { err: errorText(error) },
      'resource subscriptions of every-replica servers stay on this replica’s copy until Redis is back',
    );
  }

  #recovered(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#log.info('resource subscriptions of every-replica servers reach the other replicas again');
  }
}

/** The URIs of an entry's field: strings of a bounded length, at most MAX_URIS; nothing when malformed. */
function urisIn(text: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed
    .filter((uri): uri is string => typeof uri === 'string' && uri.length <= MAX_URI_LENGTH)
    .slice(0, MAX_URIS);
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return (a ?? []).length === (b ?? []).length && (a ?? []).every((uri, index) => uri === b?.[index]);
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
