// What the sessions of one backend asked it to keep sending: resource subscriptions, counted per URI so
// the backend is subscribed once and unsubscribed when the last session lets go, and the log level.

import { logLevelRank } from '../protocol/mcp.ts';
import type { MuxLink } from './link.ts';

export class Subscriptions {
  readonly #byUri = new Map<string, Set<MuxLink>>();
  /** The level the backend was last set to; undefined: never set, or a new process. */
  #backendLogLevel: string | undefined;

  /** Adds `link` to `uri`'s subscribers; true when it is the first (the backend must be asked). */
  add(link: MuxLink, uri: string): boolean {
    let subscribers = this.#byUri.get(uri);
    if (!subscribers) {
      subscribers = new Set();
      this.#byUri.set(uri, subscribers);
    }
    const first = subscribers.size === 0;
    subscribers.add(link);
    link.subscriptions.add(uri);
    return first;
  }

  /** Drops one session's subscription; true when it was the last (the backend may let go). */
  remove(link: MuxLink, uri: string): boolean {
    const subscribers = this.#byUri.get(uri);
    subscribers?.delete(link);
    link.subscriptions.delete(uri);
    const last = subscribers !== undefined && subscribers.size === 0;
    if (last) this.#byUri.delete(uri);
    return last;
  }

  /** The backend refused `link`'s subscription: it is not counted. */
  refused(link: MuxLink, uri: string): void {
    this.#byUri.get(uri)?.delete(link);
    link.subscriptions.delete(uri);
  }

  subscribersOf(uri: unknown): Iterable<MuxLink> {
    return (typeof uri === 'string' && this.#byUri.get(uri)) || [];
  }

  /** Every URI someone is subscribed to, for a new process. */
  uris(): Iterable<string> {
    return this.#byUri.keys();
  }

  /**
   * The level the backend must be set to now, if it changed: the most verbose any session asked for
   * (each session filters its own). Counts it as set.
   */
  logLevelToApply(links: Iterable<MuxLink>): string | undefined {
    let wanted: string | undefined;
    for (const link of links) {
      if (link.logLevel === undefined) continue;
      if (wanted === undefined || (logLevelRank(link.logLevel) ?? 0) < (logLevelRank(wanted) ?? 0))
        wanted = link.logLevel;
    }
    if (wanted === undefined || wanted === this.#backendLogLevel) return undefined;
    this.#backendLogLevel = wanted;
    return wanted;
  }

  /** A new process knows no level. */
  backendDown(): void {
    this.#backendLogLevel = undefined;
  }
}
