// Where a request belongs in a cluster: a session's requests at the replica its id names; a
// 2026-07-28 retry at the replica its requestState names (where its call is parked); a new session (or
// a 2026-07-28 request) of a per-user or single-copy shared server at the replica that owns that
// backend (a WebSocket upgrade too: tunnelled there). A request that arrived elsewhere is forwarded
// once over the peer hop; one that came over the hop is never forwarded again: a session's is served
// where it landed, and a single-owner placement only when this replica owns that backend (the sender's
// view may be stale), else refused with 503. A replica whose heartbeat has not reached Redis lately
// (`Cluster.fenced`) places no single-owner backend on itself, even one it runs.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { RelayConfig } from '../config/schema.ts';
import { type Refusal, refuseSocket, sendRefusal } from '../http/refusal.ts';
import type { Logger } from '../log.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { Cluster } from './cluster.ts';
import { cameOverHop, forwardOverHop, type HopTarget, tunnelOverHop } from './peer-hop.ts';

/** How long a placement decision is reused for the same backend before Redis is asked again. */
const PLACEMENT_CACHE_MS = 2_000;

/** Where a request that places a backend goes: served here, sent to the owner, or refused for now. */
const HERE = Symbol('here');
type Placement = typeof HERE | { replica: string; peerUrl: string } | { refusal: Refusal };

/** Redis cannot say who owns a backend, so none is placed (two owners must never exist). */
const OWNER_UNKNOWN: Refusal = {
  status: 503,
  code: ErrorCode.BackendUnavailable,
  message:
    'the cluster cannot tell which replica runs this server now (Redis is unreachable); try again shortly',
  headers: { 'retry-after': '5' },
};

/** This replica's heartbeat has not reached Redis lately: another replica may own the backend by now. */
const FENCED: Refusal = {
  status: 503,
  code: ErrorCode.BackendUnavailable,
  message:
    'this replica cannot reach Redis, so it cannot tell whether it still runs this server; try again shortly',
  headers: { 'retry-after': '3' },
};

/** A placement forwarded here by another replica whose view was stale: the backend is owned elsewhere. */
const OWNED_ELSEWHERE: Refusal = {
  status: 503,
  code: ErrorCode.BackendUnavailable,
  message: 'this server has just moved to another replica; try again',
  headers: { 'retry-after': '1' },
};

export class ClusterRouting {
  readonly #cluster: Cluster;
  readonly #config: () => RelayConfig;
  readonly #log: Logger;
  /** Whether the local pool runs the backend of a (server, user) key: placed here even without Redis. */
  readonly #runsLocally: (server: string, user: string | undefined) => boolean;
  readonly #placed = new Map<string, { replica: string; until: number }>();
  /** Client sockets whose WebSocket sessions this replica tunnels to their owners. */
  readonly #tunnels = new Set<Duplex>();

  constructor(
    cluster: Cluster,
    config: () => RelayConfig,
    log: Logger,
    runsLocally: (server: string, user: string | undefined) => boolean,
  ) {
    this.#cluster = cluster;
    this.#config = config;
    this.#log = log;
    this.#runsLocally = runsLocally;
  }

  get cluster(): Cluster {
    return this.#cluster;
  }

  /**
   * A request naming a session this replica does not hold: forwarded to the replica the id names when
   * that one is alive (true: answered). False: not another live replica's; the caller answers 404.
   */
  async forwardSession(
    req: IncomingMessage,
    res: ServerResponse,
    sessionId: string,
    body?: Buffer | Readable,
  ): Promise<boolean> {
    const peer = await this.#otherLiveReplica(req, sessionId);
    if (!peer) return false;
    await this.#forward(req, res, peer.replica, peer.peerUrl, body);
    return true;
  }

  /**
   * A 2026-07-28 retry whose `requestState` names another replica (`<replica>.<random>`, as session ids
   * do): forwarded to the replica its call is parked on when that one is alive (true: answered). False:
   * served here, where a handle of a dead or unknown replica gets the answer any unknown handle gets;
   * a replica that turns out gone at the hop gets the client `unknown`'s answer too.
   */
  async forwardContinuation(
    req: IncomingMessage,
    res: ServerResponse,
    requestState: string,
    body: Buffer | undefined,
    unknown: (res: ServerResponse) => void,
  ): Promise<boolean> {
    const peer = await this.#otherLiveReplica(req, requestState);
    if (!peer) return false;
    await this.#forward(req, res, peer.replica, peer.peerUrl, body, { gone: unknown });
    return true;
  }

  /**
   * A request that places a backend (initialize; a 2026 request; a legacy SSE stream): served here
   * (false), or forwarded to the owner, or refused with 503 while Redis cannot say who owns it (true:
   * answered).
   */
  async placeElsewhere(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    user: string,
    body?: Buffer,
  ): Promise<boolean> {
    const placement = await this.#placement(req, server, user);
    if (placement === HERE) return false;
    if ('refusal' in placement) sendRefusal(res, placement.refusal);
    else await this.#forward(req, res, placement.replica, placement.peerUrl, body, { placing: true });
    return true;
  }

  /**
   * A WebSocket upgrade, which places a backend as initialize does: served here (false), or tunnelled to
   * the owner (its frames piped both ways from then on), or refused with 503 (true: answered).
   */
  async upgradeElsewhere(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    server: string,
    user: string,
  ): Promise<boolean> {
    const placement = await this.#placement(req, server, user);
    if (placement === HERE) return false;
    if ('refusal' in placement) {
      refuseSocket(socket, placement.refusal);
      return true;
    }
    this.#cluster.forwardsSent++;
    this.#log.debug({ replica: placement.replica, path: req.url }, 'upgrade tunnelled to the owner');
    this.#tunnels.add(socket);
    socket.once('close', () => this.#tunnels.delete(socket));
    tunnelOverHop(req, socket, head, {
      ...this.#hop(placement.peerUrl),
      onfailed: () => this.#placed.clear(),
    });
    return true;
  }

  /** Shutdown: the tunnels this replica carries are cut (their sessions end at the owner). Idempotent. */
  close(): void {
    for (const socket of this.#tunnels) socket.destroy();
    this.#tunnels.clear();
  }

  /**
   * Where the backend of (server, user) belongs for a request that would place it: here (per-session and
   * every-replica servers, this replica owning it), at a live owner, or nowhere yet (the refusal to
   * answer: Redis cannot tell, this replica may have been taken over, the owner has no peer address, or
   * a request that came over the hop belongs to yet another replica: never forwarded twice).
   */
  async #placement(req: IncomingMessage, server: string, user: string): Promise<Placement> {
    const config = this.#config().servers[server];
    if (!config || config.isolation === 'per-session') return HERE;
    if (config.isolation === 'shared' && config.placement === 'every-replica') return HERE;
    const owner = config.isolation === 'shared' ? undefined : user;
    let replica = await this.#ownerOf(server, owner);
    if (
      replica !== undefined &&
      replica !== this.#cluster.replica &&
      !(await this.#cluster.isAlive(replica))
    ) {
      // The owner's heartbeat is gone: ask again, and the claim takes the backend over.
      this.#placed.delete(placementKey(server, owner));
      replica = await this.#ownerOf(server, owner);
    }
    if (replica === this.#cluster.replica) return this.#cluster.fenced ? { refusal: FENCED } : HERE;
    if (replica === undefined) return { refusal: OWNER_UNKNOWN };
    if (cameOverHop(req)) {
      this.#log.info({ server, owner: replica }, 'placement forwarded here refused: another replica owns it');
      return { refusal: OWNED_ELSEWHERE };
    }
    const peerUrl = this.#cluster.peerOf(replica);
    if (peerUrl === undefined)
      return {
        refusal: {
          status: 503,
          code: ErrorCode.BackendUnavailable,
          message: `replica ${replica} runs this server but cannot be reached; try again`,
          headers: { 'retry-after': '1' },
        },
      };
    return { replica, peerUrl };
  }

  /** The backend of (server, user) stopped here: its owner key is released, and the cached placement forgotten. */
  released(server: string, user: string | undefined): void {
    this.#placed.delete(placementKey(server, user));
    this.#cluster.release(server, user);
  }

  /** Another replica took the backend of (server, user) over: the cached placement here is forgotten. */
  lost(server: string, user: string | undefined): void {
    this.#placed.delete(placementKey(server, user));
  }

  /** The replica owning the backend, claimed for this one when free; undefined when Redis cannot tell. */
  async #ownerOf(server: string, user: string | undefined): Promise<string | undefined> {
    const key = placementKey(server, user);
    const cached = this.#placed.get(key);
    if (cached && cached.until > Date.now()) return cached.replica;
    this.#log.debug({ server, user }, 'placement: asking Redis');
    const ownership = await this.#cluster.own(server, user);
    this.#log.debug({ server, user, ownership }, 'placement: Redis answered');
    if ('unavailable' in ownership) {
      // Without Redis no new owner is made; a backend already running here takes new sessions until
      // this replica may have been taken over (#placement refuses them once it is fenced).
      if (this.#runsLocally(server, user)) return this.#cluster.replica;
      this.#log.warn({ server, err: ownership.unavailable }, 'placement refused: Redis is unreachable');
      return undefined;
    }
    const replica = ownership.here ? this.#cluster.replica : ownership.replica;
    this.#placed.set(key, { replica, until: Date.now() + PLACEMENT_CACHE_MS });
    return replica;
  }

  /**
   * The live replica other than this one that `id` (a session id or a requestState) names, for a
   * request that did not come over the hop; undefined when it should be served here.
   */
  async #otherLiveReplica(
    req: IncomingMessage,
    id: string,
  ): Promise<{ replica: string; peerUrl: string } | undefined> {
    if (cameOverHop(req)) return undefined;
    const dot = id.indexOf('.');
    const replica = dot > 0 ? id.slice(0, dot) : undefined;
    if (replica === undefined || replica === this.#cluster.replica) return undefined;
    const peerUrl = this.#cluster.peerOf(replica);
    if (peerUrl === undefined || !(await this.#cluster.isAlive(replica))) return undefined;
    return { replica, peerUrl };
  }

  async #forward(
    req: IncomingMessage,
    res: ServerResponse,
    replica: string,
    peerUrl: string,
    body?: Buffer | Readable,
    hop: Pick<Parameters<typeof forwardOverHop>[2], 'placing' | 'gone'> = {},
  ): Promise<void> {
    this.#cluster.forwardsSent++;
    this.#log.debug({ replica, path: req.url }, 'forwarded to the owner');
    await forwardOverHop(req, res, {
      ...this.#hop(peerUrl),
      ...(body === undefined ? {} : { body }),
      ...hop,
    });
    if (res.statusCode === 404 || res.statusCode === 502 || res.statusCode === 503) this.#placed.clear();
  }

  #hop(peerUrl: string): HopTarget {
    return { peerUrl, origin: this.#cluster.replica, secret: this.#cluster.secret };
  }
}

function placementKey(server: string, user: string | undefined): string {
  return user === undefined ? server : `${server}\u0000${user}`;
}
