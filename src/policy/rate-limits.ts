// Requests per minute, per user (limits.requestsPerMinute, across all servers) and per server
// (servers.<name>.requestsPerMinute, all users together), with rate-limiter-flexible's fixed windows.
// The memory store serves one gateway; a Redis store (several replicas) plugs in behind the same type.

import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { Refusal } from '../sessions/types.ts';

const WINDOW_SECONDS = 60;

interface Limiter {
  points: number;
  limiter: RateLimiterAbstract;
}

export class RateLimits {
  readonly #log: Logger;
  #perUser: Limiter | undefined;
  #perServer = new Map<string, Limiter>();

  constructor(config: RelayConfig, log: Logger) {
    this.#log = log;
    this.update(config);
  }

  /**
   * Applies the limits of a (reloaded) config. A limit whose number is unchanged keeps its counters;
   * a changed one starts counting afresh.
   */
  update(config: RelayConfig): void {
    this.#perUser = reuse(this.#perUser, config.limits.requestsPerMinute, 'user');
    const perServer = new Map<string, Limiter>();
    for (const [name, server] of Object.entries(config.servers)) {
      const limiter = reuse(this.#perServer.get(name), server.requestsPerMinute, `server:${name}`);
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
      // A store that fails (a later Redis outage) must not take the gateway down: let the request through.
      this.#log.error({ err: (rejection as Error).message }, 'rate limiter failed; request let through');
      return undefined;
    }
  }
}

function reuse(
  current: Limiter | undefined,
  points: number | undefined,
  prefix: string,
): Limiter | undefined {
  if (points === undefined) return undefined;
  if (current?.points === points) return current;
  return {
    points,
    limiter: new RateLimiterMemory({ points, duration: WINDOW_SECONDS, keyPrefix: `mcp-relay:${prefix}` }),
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
