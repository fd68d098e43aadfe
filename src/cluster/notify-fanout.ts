// Change notifications of `every-replica` servers, shared by the replicas. Each replica runs its own
// copy of such a server, so a list change or resource update one copy sends would reach only the
// listeners on its replica: it is published on `notify:<server>`, tagged with this replica, and every
// other replica hands it to its sessions of that server as if its own copy had sent it (the same
// routing: list changes to every session, a resource's update to its subscribers; the same per-user
// visibility and listen filters). Only those kinds cross, cut down to their method and URI: a shared
// backend's other notifications may carry one user's data and stay where they are. One PUBLISH per
// notification, a bounded number in flight; without Redis delivery on each replica goes on, and the
// outage is logged once.

import type { RedisClientType } from '@redis/client';
import type { RelayConfig } from '../config/schema.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { JsonRpcNotification } from '../protocol/jsonrpc.ts';
import { Method } from '../protocol/mcp.ts';
import { closeClient, type RedisLink } from './redis-link.ts';

/** PUBLISHes not answered yet; a notification beyond them is dropped (a backend flooding changes). */
const MAX_IN_FLIGHT = 64;
/** The longest resource URI that crosses (a listen filter takes none longer). */
export const MAX_URI_LENGTH = 2_048;
const LIST_CHANGED = new Set<string>([
  Method.toolsListChanged,
  Method.promptsListChanged,
  Method.resourcesListChanged,
]);

/** What crosses Redis: the origin replica, the method, and a resource update's URI. */
interface Published {
  from: string;
  method: string;
  uri?: string;
}

export class NotifyFanout {
  readonly #redis: RedisLink;
  readonly #replica: string;
  readonly #config: () => RelayConfig;
  readonly #log: Logger;
  readonly #deliver: (server: string, notification: JsonRpcNotification) => void;
  #subscriber: RedisClientType | undefined;
  #subscribed = false;
  #inFlight = 0;
  /** Set while publishing fails, so the outage is logged once. */
  #failing = false;
  #closed = false;
  /** Notifications published, received from other replicas, and dropped (tests, logs). */
  published = 0;
  received = 0;
  dropped = 0;

  /** The three counts at once, as /healthz and /metrics show them. */
  get counts(): { published: number; received: number; dropped: number } {
    return { published: this.published, received: this.received, dropped: this.dropped };
  }

  /** `deliver` hands a notification of another replica's copy to this replica's sessions of `server`. */
  constructor(
    redis: RedisLink,
    replica: string,
    config: () => RelayConfig,
    log: Logger,
    deliver: (server: string, notification: JsonRpcNotification) => void,
  ) {
    this.#redis = redis;
    this.#replica = replica;
    this.#config = config;
    this.#log = log;
    this.#deliver = deliver;
  }

  /** Subscribes to every server's channel on a connection of its own (now, or once Redis is reachable). */
  start(): void {
    if (this.#subscriber || this.#closed) return;
    this.#subscriber = this.#redis.subscriber((subscriber) => void this.#subscribe(subscriber));
  }

  /** A change notification this replica's copy of `server` sent: published when the server runs on every replica. */
  publish(server: string, notification: JsonRpcNotification): void {
    if (this.#closed || !this.#fansOut(server)) return;
    const published = crossing(this.#replica, notification.method, notification.params?.uri);
    if (!published) return;
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      this.dropped++;
      this.#log.debug({ server, method: notification.method }, 'too many notifications in flight; dropped');
      return;
    }
    this.#inFlight++;
    this.#redis
      .run((client) => client.publish(this.#redis.key('notify', server), JSON.stringify(published)))
      .then(
        () => {
          this.published++;
          if (!this.#failing) return;
          this.#failing = false;
          this.#log.info('change notifications reach the other replicas again');
        },
        (error: unknown) => {
          this.dropped++;
          if (this.#failing) return;
          this.#failing = true;
          this.#log.warn(
            { err: errorText(error) },
            'change notifications of every-replica servers reach only this replica’s listeners until Redis is back',
          );
        },
      )
      .finally(() => this.#inFlight--);
  }

  /** Stops listening to the other replicas. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#subscriber) await closeClient(this.#subscriber);
  }

  #fansOut(server: string): boolean {
    return runsOnEveryReplica(this.#config(), server);
  }

  async #subscribe(subscriber: RedisClientType): Promise<void> {
    if (this.#subscribed || this.#closed) return;
    this.#subscribed = true;
    const prefix = this.#redis.key('notify', '');
    try {
      await subscriber.pSubscribe(`${globEscaped(prefix)}*`, (message, channel) =>
        this.#received(channel.slice(prefix.length), message),
      );
    } catch (error) {
      this.#subscribed = false;
      this.#log.warn(
        { err: errorText(error) },
        'could not subscribe to other replicas’ change notifications',
      );
    }
  }

  #received(server: string, message: string): void {
    let parsed: Partial<Published>;
    try {
      parsed = JSON.parse(message) as Partial<Published>;
    } catch {
      return;
    }
    if (typeof parsed?.from !== 'string' || parsed.from === this.#replica || !this.#fansOut(server)) return;
    if (typeof parsed.method !== 'string') return;
    const published = crossing(parsed.from, parsed.method, parsed.uri);
    if (!published) return;
    this.received++;
    this.#deliver(server, {
      jsonrpc: '2.0',
      method: published.method,
      ...(published.uri === undefined ? {} : { params: { uri: published.uri } }),
    });
  }
}

/** Whether each replica runs its own copy of `server` (shared, `placement: every-replica`). */
export function runsOnEveryReplica(config: RelayConfig, server: string): boolean {
  const settings = config.servers[server];
  return settings?.isolation === 'shared' && settings.placement === 'every-replica';
}

/** What of a notification may cross to other replicas, or undefined when it may not cross at all. */
function crossing(from: string, method: string, uri: unknown): Published | undefined {
  if (LIST_CHANGED.has(method)) return { from, method };
  if (method !== Method.resourceUpdated) return undefined;
  if (typeof uri !== 'string' || uri.length > MAX_URI_LENGTH) return undefined;
  return { from, method, uri };
}

/** `text` matched literally in a PSUBSCRIBE pattern. */
function globEscaped(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
