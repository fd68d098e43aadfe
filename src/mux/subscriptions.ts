// What the sessions of one backend asked it to keep sending: resource subscriptions, counted per URI so
// the backend is subscribed once and unsubscribed when the last session lets go, and the log level.
// Beside them, the URIs the gateway holds for other replicas' sessions (an every-replica server's
// copies): the backend stays subscribed to a URI while either side wants it.

import { logLevelRank } from '../protocol/mcp.ts';
import { roundRobin } from '../util/round-robin.ts';
import type { MuxLink } from './link.ts';

/** What the backend must be told after the held URIs changed. */
export interface HeldChange {
  subscribe: string[];
  unsubscribe: string[];
}

export class Subscriptions {
  readonly #byUri = new Map<string, Set<MuxLink>>();
  /** URIs held for sessions elsewhere (other replicas); none of this replica's sessions hears them for it. */
  #held: ReadonlySet<string> = new Set();
  /** Told when the set of URIs this backend's own sessions are subscribed to changes. */
  readonly #onLocalChange: () => void;
  /** The level the backend was last set to; undefined: never set, or a new process. */
  #backendLogLevel: string | undefined;

  constructor(onLocalChange: () => void = () => {}) {
    this.#onLocalChange = onLocalChange;
  }

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
    if (first) this.#onLocalChange();
    return first;
  }

  /** Drops one session's subscription; true when the backend may let go (the last one, and not held). */
  remove(link: MuxLink, uri: string): boolean {
    const subscribers = this.#byUri.get(uri);
    subscribers?.delete(link);
    link.subscriptions.delete(uri);
    const last = subscribers !== undefined && subscribers.size === 0;
    if (!last) return false;
    this.#byUri.delete(uri);
    this.#onLocalChange();
    return !this.#held.has(uri);
  }

  /** The backend refused `link`'s subscription: it is not counted. */
  refused(link: MuxLink, uri: string): void {
    const subscribers = this.#byUri.get(uri);
    subscribers?.delete(link);
    link.subscriptions.delete(uri);
    if (subscribers?.size !== 0) return;
    this.#byUri.delete(uri);
    this.#onLocalChange();
  }

  subscribersOf(uri: unknown): Iterable<MuxLink> {
    return (typeof uri === 'string' && this.#byUri.get(uri)) || [];
  }

  /**
   * The URIs this backend's own sessions are subscribed to, the users taking turns (each user's first,
   * then each one's second, …): a cluster announces only the first MAX_URIS, and one user's many
   * subscriptions must not crowd out everyone else's.
   */
  local(): string[] {
    const byUser = new Map<string, string[]>();
    for (const [uri, links] of this.#byUri)
      for (const user of new Set([...links].map((link) => link.user))) {
        const uris = byUser.get(user);
        if (uris) uris.push(uri);
        else byUser.set(user, [uri]);
      }
    return roundRobin([...byUser.values()]);
  }

  /**
   * Replaces the URIs held for other replicas' sessions: what the backend must be subscribed to now
   * (held, and no session here had it) and may let go of (no longer held, and no session here has it).
   */
  hold(uris: ReadonlySet<string>): HeldChange {
    const subscribe = [...uris].filter((uri) => !this.#held.has(uri) && !this.#byUri.has(uri));
    const unsubscribe = [...this.#held].filter((uri) => !uris.has(uri) && !this.#byUri.has(uri));
    this.#held = new Set(uris);
    return { subscribe, unsubscribe };
  }

  /** The held URIs no session here is subscribed to (a first process learns them; its sessions' come queued). */
  heldOnly(): string[] {
    return [...this.#held].filter((uri) => !this.#byUri.has(uri));
  }

  /** Every URI the backend must be subscribed to, for a new process. */
  uris(): Iterable<string> {
    return new Set([...this.#byUri.keys(), ...this.#held]);
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
