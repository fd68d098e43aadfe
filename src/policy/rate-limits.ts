// Requests per minute, per user (limits.requestsPerMinute, across all servers) and per server
// (servers.<name>.requestsPerMinute, all users together), with rate-limiter-flexible's fixed windows.
// The memory store serves one gateway; with several replicas the counters live in Redis (SharedLimits),
// with a memory limiter of each replica's share of the points as insurance while Redis is unreachable.

import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisLink } from '../cluster/redis-link.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { Refusal } from '../sessions/types.ts';

const WINDOW_SECONDS = 60;
/** A Redis count that takes longer is given up for the insurance limiter (RedisLink's command timeout). */
const REDIS_TIMEOUT_MS = 1_000;
/** After a count that timed out, Redis is not asked again for this long (the insurance limiter counts). */
const REDIS_SILENT_MS = 3_000;

/** Counters shared by the replicas of a cluster. */
export interface SharedLimits {
  readonly redis: RedisLink;
  /**
   * How many replicas share the load (a function: read at each count, e.g. the live members). While
   * Redis is unreachable each replica admits its share, points ÷ replicas, from its own memory.
   */
  readonly replicas: number | (() => number);
}

interface Limiter {
  points: number;
  limiter: { consume(key: string): Promise<unknown> };
}

export class RateLimits {
  readonly #log: Logger;
  #perUser: Limiter | undefined;
  #perServer = new Map<string, Limiter>();
  readonly #shared: SharedLimits | undefined;
  /** Until when Redis is taken as silent: one timeout spares the requests after it the wait. */
  readonly #redisSilent = { until: 0 };

  /** Without `shared`, counters live in this process's memory (one gateway). */
  constructor(config: RelayConfig, log: Logger, shared?: SharedLimits) {
    this.#log = log;
    this.#shared = shared;
    this.update(config);
  }

  /**
   * Applies the limits of a (reloaded) config. A limit whose number is unchanged keeps its counters;
   * a changed one starts counting afresh (in memory; Redis counters run on to the end of their window,
   * since the replicas do not reload at the same instant).
   */
  update(config: RelayConfig): void {
    this.#perUser = this.#reuse(this.#perUser, config.limits.requestsPerMinute, ['user']);
    const perServer = new Map<string, Limiter>();
    for (const [name, server] of Object.entries(config.servers)) {
      const limiter = this.#reuse(this.#perServer.get(name), server.requestsPerMinute, ['server', name]);
      if (limiter) perServer.set(name, limiter);
    }
    this.#perServer = perServer;
  }

  /** Whether a request of this server counts against any limit (else admission stays synchronous). */
  applies(server: string): boolean {
    return this.#perUser !== undefined || this.#perServer.has(server);
  }

  /**
   * Counts one request of `user` to `server`. The user's limit is checked first; a request it refuses
   * does not count against the server. Resolves with the refusal (429) when a limit is exceeded.
   */
  async consume(user: string, server: string): Promise<Refusal | undefined> {
    const perUser = this.#perUser;
    if (perUser) {
      const refused = await this.#take(perUser, user);
      if (refused !== undefined)
        return refusal(refused, `rate limit: at most ${perUser.points} requests per minute per user`);
    }
    const perServer = this.#perServer.get(server);
    if (perServer) {
      const refused = await this.#take(perServer, server);
      if (refused !== undefined) {
        return refusal(
          refused,
          `rate limit: server "${server}" takes at most ${perServer.points} requests per minute from all users`,
        );
      }
    }
    return undefined;
  }

  /** Milliseconds until the key may send again when over its limit; undefined when within it. */
  async #take(entry: Limiter, key: string): Promise<number | undefined> {
    try {
      await entry.limiter.consume(key);
      return undefined;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return rejection.msBeforeNext;
      // Cannot happen with the memory store; with Redis the insurance limiter answers instead. A store
      // that fails anyway must not take the gateway down: let the request through.
      this.#log.error({ err: (rejection as Error).message }, 'rate limiter failed; request let through');
      return undefined;
    }
  }

  #reuse(current: Limiter | undefined, points: number | undefined, name: string[]): Limiter | undefined {
    if (points === undefined) return undefined;
    if (current?.points === points) return current;
    const keyPrefix = `mcp-relay:${name.join(':')}`;
    const shared = this.#shared;
    if (!shared)
      return { points, limiter: new RateLimiterMemory({ points, duration: WINDOW_SECONDS, keyPrefix }) };
    return { points, limiter: sharedLimiter(points, shared, name, keyPrefix, this.#redisSilent) };
  }
}

/**
 * Fixed 60 s windows counted in Redis (`rl:user:<user>`, `rl:server:<name>` under the cluster's key
 * prefix). Redis not ready → the insurance limiter at once (no queueing); Redis silent (frozen, a
 * black hole) → the insurance limiter after REDIS_TIMEOUT_MS, and at once for REDIS_SILENT_MS after
 * that, so a request never waits longer than one timeout (per user and per server limits together).
 */
function sharedLimiter(
  points: number,
  shared: SharedLimits,
  name: string[],
  keyPrefix: string,
  silent: { until: number },
): Limiter['limiter'] {
  const share = (): number => {
    const replicas = typeof shared.replicas === 'function' ? shared.replicas() : shared.replicas;
    return Math.max(1, Math.floor(points / Math.max(1, replicas)));
  };
  const insurance = new RateLimiterMemory({ points: share(), duration: WINDOW_SECONDS, keyPrefix });
  const redis = new RateLimiterRedis({
    storeClient: shared.redis.client,
    useRedisPackage: true,
    rejectIfRedisNotReady: true,
    points,
    duration: WINDOW_SECONDS,
    keyPrefix: shared.redis.key('rl', ...name),
    insuranceLimiter: insurance,
  });
  return {
    async consume(key: string) {
      // The number of replicas may have changed since the last count.
      insurance.points = share();
      if (Date.now() < silent.until) return insurance.consume(key);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), REDIS_TIMEOUT_MS);
      });
      try {
        // Errors other than a refusal already went to the insurance limiter inside RateLimiterRedis.
        const counted = await Promise.race([redis.consume(key), timeout]);
        if (counted !== 'timeout') return counted;
      } finally {
        clearTimeout(timer);
      }
      silent.until = Date.now() + REDIS_SILENT_MS;
      return insurance.consume(key);
    },
  };
}

function refusal(msBeforeNext: number, reason: string): Refusal {
  const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return {
    status: 429,
    code: ErrorCode.Refused,
    message: `${reason}; retry in ${retryAfterSeconds} s`,
    retryAfterSeconds,
  };
}
