// limits.sessionsPerUser across replicas: each user's sessions are leases in a ZSET `usess:<user>`
// (session id → lease expiry in ms, Redis's clock), admitted by one script, renewed by the replica
// that holds them and removed when they close. A replica that dies stops renewing, so its sessions
// stop counting after one lease. Without Redis the caller counts locally (its own sessions only).

import type { Logger } from '../log.ts';
import type { RedisLink } from './redis-link.ts';

/** How long a lease lives without renewal, and how often the holder renews its leases. */
export const LEASE_MS = 30_000;
export const RENEW_MS = 10_000;

/**
 * Admission: leases past their expiry dropped, the session refused when the user holds `limit` others,
 * else its lease added (or extended). 1 = admitted, 0 = refused. Redis's TIME, so clocks do not matter.
 */
const ADMIT = `
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
local expiry = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], expiry)
return 1`;

/**
 * Renewal of one user's leases held here (ARGV[2..]). A plain ZADD, not XX: a session admitted while
 * Redis was unreachable, or whose lease lapsed during an outage, counts again once Redis is back. A
 * closed session is never renewed: drop() forgets it before its ZREM, on the same connection.
 */
const RENEW = `
local now = redis.call('TIME')
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], expiry, ARGV[i])
end
redis.call('PEXPIREAT', KEYS[1], expiry)
return #ARGV - 1`;

export class SessionLeases {
  readonly #redis: RedisLink;
  readonly #log: Logger;
  /** The sessions this replica holds, by id: their user (the ZSET they are in). */
  readonly #held = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #renewing = false;

  constructor(redis: RedisLink, log: Logger) {
    this.#redis = redis;
    this.#log = log;
  }

  /** Renews this replica's leases every RENEW_MS from now on. Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.renew(), RENEW_MS);
    this.#timer.unref();
  }

  /** How many sessions this replica holds leases for. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Whether `user` may open session `sessionId` with at most `limit` sessions cluster-wide: true (its
   * lease is taken), false (the user holds `limit` others), or 'unavailable' (Redis unreachable or
   * too slow: the caller decides by its local count). Unless refused, the session is held from now on
   * (renewed, counted again when Redis is back) until drop().
   */
  async admit(user: string, sessionId: string, limit: number): Promise<boolean | 'unavailable'> {
    let admitted: unknown;
    try {
      admitted = await this.#redis.run((client) =>
        client.eval(ADMIT, {
          keys: [this.#redis.key('usess', user)],
          arguments: [sessionId, String(limit), String(LEASE_MS)],
        }),
      );
    } catch (error) {
      this.#log.warn({ err: (error as Error).message }, 'session leases unavailable; counting locally');
      this.#held.set(sessionId, user);
      return 'unavailable';
    }
    if (admitted !== 1) return false;
    this.#held.set(sessionId, user);
    return true;
  }

  /** Renews the leases of every session held here (one script per user, pipelined). Never rejects. */
  async renew(): Promise<void> {
    if (this.#renewing || this.#held.size === 0) return;
    const byUser = new Map<string, string[]>();
    for (const [sessionId, user] of this.#held) {
      const ids = byUser.get(user);
      if (ids) ids.push(sessionId);
      else byUser.set(user, [sessionId]);
    }
    this.#renewing = true;
    try {
      await this.#redis.run((client) => {
        const pipeline = client.multi();
        for (const [user, ids] of byUser) {
          pipeline.eval(RENEW, {
            keys: [this.#redis.key('usess', user)],
            arguments: [String(LEASE_MS), ...ids],
          });
        }
        return pipeline.execAsPipeline();
      });
    } catch (error) {
      // The leases live LEASE_MS: one missed renewal costs nothing, and the next one re-adds them.
      this.#log.warn({ err: (error as Error).message }, 'could not renew session leases (Redis)');
    } finally {
      this.#renewing = false;
    }
  }

  /** The session closed: its lease is removed (at its expiry at the latest, if Redis is unreachable). */
  drop(user: string, sessionId: string): void {
    if (!this.#held.delete(sessionId)) return;
    this.#redis
      .run((client) => client.zRem(this.#redis.key('usess', user), sessionId))
      .catch((error: unknown) => {
        this.#log.debug({ err: (error as Error).message }, 'could not remove a session lease (Redis)');
      });
  }

  /** Stops renewing (the leases lapse within LEASE_MS, or drop() removed them). Idempotent. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
