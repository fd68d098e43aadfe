// One replica's membership in a cluster of gateways on Redis: its id and epoch, kept alive by a
// heartbeat (`alive:<replica>`, which also makes a second process with the same id refuse to start),
// its entry in the registry (peer URL, sessions, backends, config hash; where to reach it signed with
// the cluster secret, so write access to Redis alone cannot send the hop elsewhere), and the single-owner backends
// it holds. Ownership of a per-user or single-copy backend is one key naming `replica:epoch`, taken
// with SET NX and taken over only from a replica whose heartbeat is gone (compare-and-set in Lua), so
// two owners of one backend never exist; without Redis no new owner is made at all. A replica that has
// not renewed its heartbeat for a while may have been taken over without knowing it (`fenced`): it
// places no single-owner backend on itself then. Each heartbeat also checks the owner keys it holds in
// the same script, so a backend another replica took over is given up (`onlost`) once Redis is back.

import { randomBytes } from 'node:crypto';
import type { ClusterConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { RedisLink } from './redis-link.ts';
import { CLAIM_ALIVE, CLAIM_OWNER, HEARTBEAT, RELEASE_OWNER } from './scripts.ts';
import { signature, signatureHolds } from './signature.ts';

/** How often the heartbeat is written, and how long it lives: a replica silent this long is dead. */
export const HEARTBEAT_MS = 1_000;
export const HEARTBEAT_TTL_MS = 3_000;
/**
 * How long after its last successful heartbeat (counted from when it was sent) a replica stops placing
 * single-owner backends on itself: the TTL, after which another replica may take them over. Not
 * sooner: on a loaded machine a beat's answer is often late, and each late one would turn placements
 * away (test/cluster-nginx.test.ts saw 503s with one beat less).
 */
export const FENCE_AFTER_MS = HEARTBEAT_TTL_MS;
/** How often the registry entry is written, and how often this replica reads the others'. */
const REGISTRY_MS = 2_000;
const REGISTRY_TTL_S = 60;
/** Owner keys outlive a crash for a week at most (a restarted replica deletes its old ones first). */
const OWNER_TTL_S = 7 * 24 * 3_600;

/** Another replica as the registry shows it. */
export interface Member {
  replica: string;
  epoch: string;
  peerUrl: string;
  /** host:port of its gateway listener, where a load balancer sends clients. */
  address: string;
  /** Its heartbeat is there and its entry is signed with the cluster secret. */
  alive: boolean;
  /**
   * Whether the entry's peer URL and address carry the cluster secret's signature. One that does not
   * was written by someone with access to Redis but not the secret: never alive, never forwarded to.
   */
  signed: boolean;
  sessions: number;
  backends: number;
  configHash: string;
  version: string;
  startedAt: number;
}

/** What the registry entry reports of this replica, read when it is written. */
export interface ReplicaLoad {
  sessions(): number;
  backends(): number;
}

/** What the registry says of this replica besides its load. */
export interface ReplicaInfo {
  configHash: string;
  version: string;
  /** host:port of the gateway listener (known once it listens). */
  address(): string;
}

/** The backend an owner key is for: a single-copy shared server's, or a user's per-user one. */
interface OwnedBackend {
  server: string;
  user?: string;
}

/** Where a single-owner backend is: here, at a live replica, or unknown because Redis is unreachable. */
export type Ownership = { here: true } | { here: false; replica: string } | { unavailable: string };

export class Cluster {
  readonly replica: string;
  readonly epoch = randomBytes(6).toString('hex');
  readonly redis: RedisLink;
  readonly #config: ClusterConfig;
  readonly #log: Logger;
  readonly #members = new Map<string, Member>();
  /** Owner keys this replica holds, and the backends they are for (released when those stop). */
  readonly #owned = new Map<string, OwnedBackend>();
  /** When the last heartbeat that Redis took was sent (ms since the epoch). */
  #beatSentAt = 0;
  #heartbeat: NodeJS.Timeout | undefined;
  #registry: NodeJS.Timeout | undefined;
  #load: ReplicaLoad = { sessions: () => 0, backends: () => 0 };
  #info: ReplicaInfo = { configHash: '', version: '', address: () => '' };
  readonly startedAt = Date.now();
  /** Requests this replica forwarded to the owner, and received forwarded (metrics, tests). */
  forwardsSent = 0;
  forwardsReceived = 0;
  /**
   * Told when a heartbeat finds that another replica now holds the owner key of a backend this one
   * runs (it was taken over while this replica could not reach Redis): that backend must stop here.
   */
  onlost: (server: string, user: string | undefined) => void = () => {};

  constructor(config: ClusterConfig, log: Logger) {
    this.#config = config;
    this.replica = config.replica;
    this.#log = log.child({ replica: config.replica });
    this.redis = new RedisLink(config.redis, config.keyPrefix, this.#log);
  }

  get peerUrl(): string {
    return this.#config.peer.url ?? `http://${this.#config.peer.listen}`;
  }

  get secret(): string {
    return this.#config.secret;
  }

  /** A session id of this replica: `<replica>.<128 random bits>`. */
  newSessionId(): string {
    return `${this.replica}.${randomBytes(16).toString('base64url')}`;
  }

  /**
   * Joins the cluster: Redis reachable, the id not held by a live process (waits one heartbeat TTL
   * for a previous run's key to lapse), leftovers of this replica's earlier runs released.
   */
  async join(load: ReplicaLoad, info: ReplicaInfo): Promise<void> {
    this.#load = load;
    this.#info = info;
    await this.redis.connect();
    const deadline = Date.now() + HEARTBEAT_TTL_MS + 500;
    for (;;) {
      const sentAt = Date.now();
      const holder = await this.#claimAlive();
      if (holder === this.epoch) {
        this.#beatSentAt = sentAt;
        break;
      }
      if (Date.now() > deadline)
        throw new Error(
          `replica id ${this.replica} is in use by a live process (epoch ${holder}); give each replica its own cluster.replica`,
        );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await this.#releaseLeftovers();
    await this.#writeRegistry();
    await this.#readMembers();
    this.#heartbeat = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
    this.#registry = setInterval(() => {
      void this.#writeRegistry().catch(() => {});
      void this.#readMembers().catch(() => {});
    }, REGISTRY_MS);
    this.#registry.unref();
    this.#log.info({ epoch: this.epoch, peer: this.peerUrl }, 'joined the cluster');
  }

  /** Leaves: owner keys and the heartbeat are deleted so others may take over at once. */
  async leave(): Promise<void> {
    clearInterval(this.#heartbeat);
    clearInterval(this.#registry);
    try {
      await Promise.all([...this.#owned.keys()].map((key) => this.#release(key)));
      await this.redis.run(async (client) => {
        if ((await client.get(this.redis.key('alive', this.replica))) === this.epoch)
          await client.del([this.redis.key('alive', this.replica), this.redis.key('replica', this.replica)]);
      });
    } catch (error) {
      this.#log.warn({ err: (error as Error).message }, 'could not leave the cluster cleanly (Redis)');
    }
    await this.redis.close();
  }

  /** The other replicas and this one, as last read from the registry. */
  members(): Member[] {
    return [...this.#members.values()];
  }

  /** The ids of the replicas whose heartbeat this one sees, itself included. */
  aliveReplicas(): string[] {
    return this.members()
      .filter((member) => member.alive)
      .map((member) => member.replica);
  }

  /** Writes the registry entry now (the listener's address became known). */
  async announce(): Promise<void> {
    await this.#writeRegistry();
    await this.#readMembers();
  }

  /** A live replica's peer URL (from the last registry read), or undefined. */
  peerOf(replica: string): string | undefined {
    const member = this.#members.get(replica);
    return member?.alive ? member.peerUrl : undefined;
  }

  /**
   * Whether this replica may have been taken over without knowing it: its heartbeat has not reached
   * Redis for FENCE_AFTER_MS, so its `alive` key may lapse (or has) and another replica may claim the
   * backends it owns. It places no single-owner backend on itself until a heartbeat gets through.
   */
  get fenced(): boolean {
    return Date.now() - this.#beatSentAt >= FENCE_AFTER_MS;
  }

  /** Whether `replica`'s heartbeat is there now (asks Redis; the cached view when it cannot). */
  async isAlive(replica: string): Promise<boolean> {
    try {
      const epoch = await this.redis.run((client) => client.get(this.redis.key('alive', replica)));
      const member = this.#members.get(replica);
      return epoch !== null && (member === undefined || member.epoch === epoch);
    } catch {
      return this.#members.get(replica)?.alive === true;
    }
  }

  /**
   * Who owns the backend for `server` (a single-copy shared server) or for `server` and `user` (per
   * user): this replica (now claimed), a live other replica, or unavailable (Redis down: no new owner).
   */
  async own(server: string, user?: string): Promise<Ownership> {
    const key = user === undefined ? this.redis.key('owner', server) : this.redis.key('owner', server, user);
    const me = `${this.replica}:${this.epoch}`;
    let holder: string;
    try {
      holder = String(
        await this.redis.run((client) =>
          client.eval(CLAIM_OWNER, {
            keys: [key, this.redis.key('replica', this.replica, 'owned')],
            arguments: [me, this.redis.key('alive', ''), String(OWNER_TTL_S)],
          }),
        ),
      );
    } catch (error) {
      return { unavailable: (error as Error).message };
    }
    if (holder === me) {
      this.#owned.set(key, user === undefined ? { server } : { server, user });
      return { here: true };
    }
    return { here: false, replica: holder.slice(0, holder.indexOf(':')) };
  }

  /** This replica stopped the backend an owner key was for: others may place it now. */
  release(server: string, user?: string): void {
    const key = user === undefined ? this.redis.key('owner', server) : this.redis.key('owner', server, user);
    if (!this.#owned.delete(key)) return;
    void this.#release(key).catch(() => {});
  }

  async #release(key: string): Promise<void> {
    this.#owned.delete(key);
    await this.redis.run((client) =>
      client.eval(RELEASE_OWNER, {
        keys: [key, this.redis.key('replica', this.replica, 'owned')],
        arguments: [`${this.replica}:${this.epoch}`],
      }),
    );
  }

  async #claimAlive(): Promise<string> {
    return String(
      await this.redis.run((client) =>
        client.eval(CLAIM_ALIVE, {
          keys: [this.redis.key('alive', this.replica)],
          arguments: [this.epoch, String(HEARTBEAT_TTL_MS)],
        }),
      ),
    );
  }

  async #beat(): Promise<void> {
    const sentAt = Date.now();
    const owned = [...this.#owned.keys()];
    let answer: string[];
    try {
      // Waited for as long as the key it sets lives: a late answer still proves the key was set no
      // earlier than `sentAt`, so it keeps this replica unfenced as a prompt one would.
      answer = (await this.redis.run(
        (client) =>
          client.eval(HEARTBEAT, {
            keys: [
              this.redis.key('alive', this.replica),
              this.redis.key('replica', this.replica, 'owned'),
              ...owned,
            ],
            arguments: [
              this.epoch,
              String(HEARTBEAT_TTL_MS),
              `${this.replica}:${this.epoch}`,
              String(OWNER_TTL_S),
            ],
          }),
        HEARTBEAT_TTL_MS,
      )) as string[];
    } catch {
      // Redis unreachable: established sessions go on; the heartbeat resumes when it is back.
      return;
    }
    const [holder, ...lost] = answer.map(String);
    if (holder !== this.epoch) {
      // Another process took this id (this one was out of reach past the TTL, and two hosts are
      // configured alike). It now owns what this id owns, so this one gives up every single-owner
      // backend it runs and, its heartbeat not renewed, stays fenced: only per-session and
      // every-replica sessions go on here.
      this.#log.error(
        { holder },
        'another process holds this replica id: this one places no single-owner backend and stops those it runs; give each replica its own cluster.replica',
      );
      this.#giveUp([...this.#owned.keys()]);
      return;
    }
    this.#beatSentAt = Math.max(this.#beatSentAt, sentAt);
    this.#giveUp(lost);
  }

  /** Stops running the backends of owner keys this replica no longer holds (`onlost`). */
  #giveUp(keys: readonly string[]): void {
    for (const key of keys) {
      const backend = this.#owned.get(key);
      // Released while the heartbeat was on its way: nothing runs here to give up.
      if (!backend || !this.#owned.delete(key)) continue;
      this.#log.warn(
        { server: backend.server, user: backend.user },
        'another replica took over a backend this one runs (Redis was out of reach); stopping it here',
      );
      this.onlost(backend.server, backend.user);
    }
  }

  /** Owner keys a previous run of this replica left (it crashed): released, their backends died with it. */
  async #releaseLeftovers(): Promise<void> {
    const ownedKey = this.redis.key('replica', this.replica, 'owned');
    const keys = await this.redis.run((client) => client.sMembers(ownedKey));
    const mine = `${this.replica}:${this.epoch}`;
    for (const key of keys) {
      await this.redis.run(async (client) => {
        const held = await client.get(key);
        if (held !== null && held !== mine && held.startsWith(`${this.replica}:`)) await client.del(key);
        await client.sRem(ownedKey, key);
      });
    }
  }

  async #writeRegistry(): Promise<void> {
    const key = this.redis.key('replica', this.replica);
    const address = this.#info.address();
    await this.redis.run(async (client) => {
      await client.hSet(key, {
        epoch: this.epoch,
        peerUrl: this.peerUrl,
        address,
        signature: signature(this.secret, registryParts(this.replica, this.epoch, this.peerUrl, address)),
        sessions: String(this.#load.sessions()),
        backends: String(this.#load.backends()),
        configHash: this.#info.configHash,
        version: this.#info.version,
        startedAt: String(this.startedAt),
      });
      await client.expire(key, REGISTRY_TTL_S);
      await client.sAdd(this.redis.key('replicas'), this.replica);
    });
  }

  async #readMembers(): Promise<void> {
    const members = await readRegistry(this.redis, this.secret);
    this.#members.clear();
    for (const member of members) this.#members.set(member.replica, member);
  }
}

/**
 * What a registry entry's signature covers: the replica, its epoch, and where the others reach it (the
 * peer URL the hop goes to, with users' credentials) and where a load balancer sends clients.
 */
function registryParts(replica: string, epoch: string, peerUrl: string, address: string): string[] {
  return ['registry', replica, epoch, peerUrl, address];
}

function signedEntry(secret: string, replica: string, entry: Record<string, string>): boolean {
  const parts = registryParts(replica, entry.epoch ?? '', entry.peerUrl ?? '', entry.address ?? '');
  return signatureHolds(secret, parts, entry.signature ?? '');
}

/**
 * The replicas the registry holds, each with whether its heartbeat is there and its entry is signed
 * with `secret` (the cluster's); forgets long-gone ones.
 */
export async function readRegistry(redis: RedisLink, secret: string): Promise<Member[]> {
  const ids = await redis.run((client) => client.sMembers(redis.key('replicas')));
  const members: Member[] = [];
  for (const id of ids.sort()) {
    const [entry, alive] = await redis.run((client) =>
      Promise.all([client.hGetAll(redis.key('replica', id)), client.get(redis.key('alive', id))]),
    );
    if (!entry.epoch) {
      // Gone for longer than the registry entry lives: forgotten.
      await redis.run((client) => client.sRem(redis.key('replicas'), id));
      continue;
    }
    const signed = signedEntry(secret, id, entry);
    members.push({
      replica: id,
      epoch: entry.epoch,
      peerUrl: entry.peerUrl ?? '',
      address: entry.address ?? '',
      alive: alive === entry.epoch && signed,
      signed,
      sessions: Number(entry.sessions ?? 0),
      backends: Number(entry.backends ?? 0),
      configHash: entry.configHash ?? '',
      version: entry.version ?? '',
      startedAt: Number(entry.startedAt ?? 0),
    });
  }
  return members;
}

/** Who owns each single-owner backend: `server` or `server:user` → replica. */
export async function readOwners(redis: RedisLink): Promise<Record<string, string>> {
  const prefix = redis.key('owner', '');
  const owners: Record<string, string> = {};
  const keys: string[] = [];
  await redis.run(async (client) => {
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) keys.push(...batch);
  });
  for (const key of keys.sort()) {
    const held = await redis.run((client) => client.get(key));
    if (held !== null) owners[key.slice(prefix.length)] = held.slice(0, held.indexOf(':'));
  }
  return owners;
}
