// The replicas' one connection to Redis (@redis/client): reconnects on its own, never queues a command
// while disconnected (a caller gets an error at once and decides: fail closed, or go on locally), bounds
// what waits on a frozen Redis, and prefixes every key so several clusters can share one Redis.

import { createClient, type RedisClientType } from '@redis/client';
import type { Logger } from '../log.ts';

/** How long a command may take before its caller treats Redis as unavailable. */
const COMMAND_TIMEOUT_MS = 1_000;
/**
 * Commands sent and not yet answered, at most. A Redis that froze with its connection up answers none:
 * each caller gives up after COMMAND_TIMEOUT_MS, but its command stays queued to run when Redis wakes.
 * Past this bound a command is refused at once instead, so a freeze under load holds a bounded queue.
 */
export const MAX_QUEUED_COMMANDS = 1_000;

export class RedisLink {
  readonly client: RedisClientType;
  readonly #prefix: string;
  readonly #log: Logger;
  #ready = false;
  #everConnected = false;

  constructor(url: string, prefix: string, log: Logger) {
    this.#prefix = prefix;
    this.#log = log;
    this.client = createClient({
      url,
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      socket: {
        connectTimeout: 2_000,
        reconnectStrategy: (retries: number) => Math.min(100 + retries * 100, 1_000),
      },
    }) as RedisClientType;
    this.client.on('ready', () => {
      if (!this.#ready && this.#everConnected) this.#log.warn('Redis is reachable again');
      this.#ready = true;
      this.#everConnected = true;
    });
    this.client.on('end', () => {
      this.#ready = false;
    });
    this.client.on('error', (error: Error) => {
      if (this.#ready) this.#log.warn({ err: error.message }, 'Redis connection lost; retrying');
      this.#ready = false;
    });
  }

  /** Whether commands can reach Redis now. */
  get ready(): boolean {
    return this.#ready && this.client.isReady;
  }

  key(...parts: string[]): string {
    return `${this.#prefix}${parts.join(':')}`;
  }

  /** Connects, failing after `timeoutMs` (a replica does not start without Redis). */
  async connect(timeoutMs = 5_000): Promise<void> {
    const timer = new Promise<never>((_resolve, reject) =>
      setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs).unref(),
    );
    await Promise.race([this.client.connect(), timer]);
  }

  /** Runs one Redis operation, rejecting when it takes longer than `timeoutMs` (the command timeout). */
  async run<T>(
    operation: (client: RedisClientType) => Promise<T>,
    timeoutMs = COMMAND_TIMEOUT_MS,
  ): Promise<T> {
    if (!this.ready) throw new Error('Redis is unavailable');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error('Redis did not answer in time')), timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([operation(this.client), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A connection of its own for SUBSCRIBE (a subscribed connection runs no other command). It connects
   * and reconnects by itself (node-redis subscribes again after a reconnect), and calls `onReady` at
   * each (re)connection: what was published in between is lost, which the caller may make up for.
   * The link logs outages; the subscriber stays silent. Closed with `closeClient`.
   */
  subscriber(onReady: (subscriber: RedisClientType) => void): RedisClientType {
    const subscriber = this.client.duplicate() as RedisClientType;
    subscriber.on('error', () => {});
    subscriber.on('ready', () => onReady(subscriber));
    void subscriber.connect().catch(() => {});
    return subscriber;
  }

  async close(): Promise<void> {
    await closeClient(this.client);
  }
}

/** Closes a connection, or drops it when it cannot close cleanly (Redis unreachable). */
export async function closeClient(client: RedisClientType): Promise<void> {
  try {
    if (client.isOpen) await client.close();
  } catch {
    client.destroy();
  }
}
