// Where a backend message tied to no request may go (a server→client request, a log line) when the
// backend serves several sessions: only to a session that is certain to be its owner. One user's
// background work must never reach another user, so certainty starts with who the process worked for.

import type { MuxLink } from './link.ts';

/** What the target needs of the request table: whether a session has requests in flight. */
export interface InFlightCounts {
  inFlightOf(link: MuxLink): number;
}

export class UnsolicitedTarget {
  /**
   * Users whose requests this backend process has worked on. While this holds one user, a message
   * tied to no request can be theirs only; with two, any of them could have caused it.
   */
  readonly #served = new Set<string>();

  get servedUsers(): number {
    return this.#served.size;
  }

  /** A request or notification of `link`'s user reached the process. */
  served(link: MuxLink): void {
    this.#served.add(link.user);
  }

  /** A new process has done no one's work. */
  reset(): void {
    this.#served.clear();
  }

  /**
   * The certain target among `links`: the process has worked for one user only, and of that user's
   * sessions exactly one has requests in flight, or none has and only one is attached.
   */
  of(links: ReadonlySet<MuxLink>, requests: InFlightCounts): MuxLink | undefined {
    if (this.#served.size > 1) return undefined;
    const owner: string | undefined = this.#served.values().next().value;
    let busy: MuxLink | undefined;
    let only: MuxLink | undefined;
    let candidates = 0;
    for (const link of links) {
      if (owner !== undefined && link.user !== owner) continue;
      candidates++;
      only = link;
      if (requests.inFlightOf(link) === 0) continue;
      if (busy) return undefined;
      busy = link;
    }
    if (busy) return busy;
    if (candidates !== 1) return undefined;
    // Nobody's work yet: a lone session is the target only if no other user's session is attached.
    return owner !== undefined || singleUser(links) ? only : undefined;
  }

  /** Why a server→client request found no target, naming the isolation mode that would route it. */
  whyNone(method: string, sessions: number): string {
    if (this.#served.size > 1) {
      return `mcp-relay cannot tell which user this ${method} is for: this shared server works for ${this.#served.size} users; use isolation per-user for servers that call back`;
    }
    return `mcp-relay cannot tell which of this user's ${sessions} sessions this ${method} is for; use isolation per-session for servers that call back while several sessions are busy`;
  }
}

function singleUser(links: ReadonlySet<MuxLink>): boolean {
  let user: string | undefined;
  for (const link of links) {
    if (user !== undefined && link.user !== user) return false;
    user = link.user;
  }
  return true;
}
