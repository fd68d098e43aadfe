// Revoked API keys, shared by the replicas: each machine keeps its own keys file (KeyStore), and
// `mcp-relay keys revoke` also adds the key ids to the SET `revoked`, counts `revoked:version` up and
// announces it on the `events` channel. Every replica keeps the set in memory (authentication stays a
// local lookup): pub/sub makes a revocation apply within milliseconds, a poll of the version every
// second covers a message lost while the subscriber reconnects. Without Redis the last set stays, and
// a replica never forgets a revoked id: a Redis that lost its data gets them back from the replicas.

import type { RedisClientType } from '@redis/client';
import type { RevokedKeys } from '../auth/keys.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import { closeClient, type RedisLink } from './redis-link.ts';

/** How often each replica checks the version, in case a published message was lost. */
export const REVOCATION_POLL_MS = 1_000;
/** What the CLI publishes on `events` after a revocation. */
const REVOKED_EVENT = 'keys-revoked';

/**
 * Revokes `ids` on every replica: added to the shared set, the version counted up, the change
 * announced. Rejects when Redis cannot be reached (the CLI says so, and leaves the keys file as it is).
 */
export async function publishRevocations(redis: RedisLink, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) throw new Error('no key ids to revoke');
  const version = await redis.run(async (client) => {
    const [, counted] = await client
      .multi()
      .sAdd(redis.key('revoked'), [...ids])
      .incr(redis.key('revoked', 'version'))
      .exec();
    return Number(counted);
  });
  await redis.run((client) =>
    client.publish(redis.key('events'), JSON.stringify({ type: REVOKED_EVENT, version })),
  );
  return version;
}

export class Revocations implements RevokedKeys {
  readonly #redis: RedisLink;
  readonly #log: Logger;
  readonly #pollMs: number;
  readonly #listeners: Array<() => void> = [];
  #revoked: ReadonlySet<string> = new Set();
  /** The version the set was read at; undefined until the first read. */
  #version: string | null | undefined;
  #subscriber: RedisClientType | undefined;
  #subscribed = false;
  #poll: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #again = false;
  #checking = false;
  #closed = false;

  constructor(redis: RedisLink, log: Logger, { pollMs = REVOCATION_POLL_MS } = {}) {
    this.#redis = redis;
    this.#log = log;
    this.#pollMs = pollMs;
  }

  /**
   * Reads the set (when Redis answers), subscribes to `events` on a connection of its own, and polls.
   * Resolves without Redis too: the set is read as soon as Redis is reachable.
   */
  async start(): Promise<void> {
    if (this.#subscriber || this.#closed) return;
    // Ready again after an outage: what was published in between is lost, so the set is read again
    // (the poll covers the outage itself).
    this.#subscriber = this.#redis.subscriber((subscriber) => {
      void this.#subscribe(subscriber);
      void this.refresh();
    });
    this.#poll = setInterval(() => void this.#check(), this.#pollMs);
    this.#poll.unref();
    await this.refresh();
  }

  isRevoked(keyId: string): boolean {
    return this.#revoked.has(keyId);
  }

  /** Calls `listener` after each read that revoked a key this replica did not know revoked. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** How many key ids are revoked. */
  get size(): number {
    return this.#revoked.size;
  }

  /** Reads the set and the version now. Never rejects; reads run one at a time, the last one wins. */
  refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#again = false;
          await this.#read();
        } while (this.#again && !this.#closed);
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  /** Stops the poll and the subscription. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#poll);
    if (this.#subscriber) await closeClient(this.#subscriber);
  }

  async #subscribe(subscriber: RedisClientType): Promise<void> {
    if (this.#subscribed || this.#closed) return;
    this.#subscribed = true;
    try {
      await subscriber.subscribe(this.#redis.key('events'), (message) => this.#onEvent(message));
    } catch (error) {
      this.#subscribed = false;
      this.#log.debug({ err: errorText(error) }, 'could not subscribe to cluster events; polling');
    }
  }

  #onEvent(message: string): void {
    let event: unknown;
    try {
      event = JSON.parse(message);
    } catch {
      return;
    }
    if ((event as { type?: unknown } | null)?.type === REVOKED_EVENT) void this.refresh();
  }

  /** The poll: reads the set when the version moved (or was never read). */
  async #check(): Promise<void> {
    if (this.#checking || this.#refreshing || this.#closed) return;
    this.#checking = true;
    try {
      const version = await this.#redis.run((client) => client.get(this.#redis.key('revoked', 'version')));
      if (version !== this.#version) await this.refresh();
    } catch {
      // Redis unreachable: the last set stays (fail static), and the next tick asks again.
    } finally {
      this.#checking = false;
    }
  }

  async #read(): Promise<void> {
    let version: string | null;
    let ids: string[];
    try {
      // The version first: a revocation landing in between is read again at the next poll.
      [version, ids] = await this.#redis.run((client) =>
        Promise.all([
          client.get(this.#redis.key('revoked', 'version')),
          client.sMembers(this.#redis.key('revoked')),
        ]),
      );
    } catch (error) {
      if (this.#version === undefined)
        this.#log.warn({ err: errorText(error) }, 'could not read revoked API keys from Redis yet');
      return;
    }
    if (this.#closed) return;
    this.#version = version;
    const before = this.#revoked;
    const shared = new Set(ids);
    const lost = [...before].filter((id) => !shared.has(id));
    if (lost.length > 0) {
      // Redis restarted without its data: the ids go back, for replicas that start later.
      void this.#redis.run((client) => client.sAdd(this.#redis.key('revoked'), lost)).catch(() => {});
    }
    const added = ids.filter((id) => !before.has(id));
    if (added.length === 0) return;
    this.#revoked = new Set([...before, ...added]);
    this.#log.info(
      { revoked: added.length, total: this.#revoked.size },
      'API keys revoked across the cluster',
    );
    for (const listener of this.#listeners) listener();
  }
}
