// Calls of 2026-07-28 clients parked between rounds of input (MRTR), each named by an unguessable
// `requestState` and bound to the credential, server, method and arguments it was issued for. Bounded
// in count per credential and in time; a handle is good for one retry. In a cluster a handle names the
// replica the call is parked on (`<replica>.<random>`, as session ids do), so a retry that lands
// elsewhere is forwarded there (cluster/routing.ts).

import { randomBytes } from 'node:crypto';
import type { ModernCall } from './modern-call.ts';

/** How long a parked call waits for the client's retry before it is cancelled. */
export const CONTINUATION_TTL_MS = 60_000;
/** Parked calls one credential may have at once; the oldest is cancelled to make room. */
export const MAX_PER_CREDENTIAL = 32;

interface Parked {
  call: ModernCall;
  owner: string;
  timer: NodeJS.Timeout;
}

export class Continuations {
  readonly #parked = new Map<string, Parked>();
  readonly #handles = new Map<ModernCall, string>();
  readonly #ttlMs: number;
  readonly #prefix: string;

  constructor({
    ttlMs = CONTINUATION_TTL_MS,
    replica,
  }: { ttlMs?: number; replica?: string | undefined } = {}) {
    this.#ttlMs = ttlMs;
    this.#prefix = replica === undefined ? '' : `${replica}.`;
  }

  get size(): number {
    return this.#parked.size;
  }

  /** Parks `call` for `owner` (credential and server): the handle its retry must carry. */
  park(call: ModernCall, owner: string): string {
    this.unpark(call);
    this.#makeRoom(owner);
    const handle = `${this.#prefix}${randomBytes(18).toString('base64url')}`;
    const timer = setTimeout(() => {
      if (this.#parked.get(handle)?.call !== call) return;
      this.unpark(call);
      call.expire();
    }, this.#ttlMs);
    timer.unref();
    this.#parked.set(handle, { call, owner, timer });
    this.#handles.set(call, handle);
    return handle;
  }

  /**
   * The call a retry names, taken (a handle works once): only for the owner it was issued to, and only
   * for the same method and subject. Undefined for anything else, which the client is told to call again.
   */
  take(handle: string, owner: string, method: string, subject: string): ModernCall | undefined {
    const parked = this.#parked.get(handle);
    if (!parked || parked.owner !== owner) return undefined;
    if (parked.call.method !== method || parked.call.subject !== subject) return undefined;
    this.unpark(parked.call);
    return parked.call;
  }

  /** Forgets whatever handle `call` is parked under. */
  unpark(call: ModernCall): void {
    const handle = this.#handles.get(call);
    if (handle === undefined) return;
    this.#handles.delete(call);
    clearTimeout(this.#parked.get(handle)?.timer);
    this.#parked.delete(handle);
  }

  /** Cancels every parked call (shutdown). */
  clear(): void {
    const calls = [...this.#parked.values()].map((parked) => parked.call);
    for (const call of calls) {
      this.unpark(call);
      call.expire();
    }
  }

  #makeRoom(owner: string): void {
    let count = 0;
    let oldest: string | undefined;
    for (const [handle, parked] of this.#parked) {
      if (parked.owner !== owner) continue;
      count++;
      oldest ??= handle;
    }
    const parked = oldest === undefined ? undefined : this.#parked.get(oldest);
    if (count < MAX_PER_CREDENTIAL || !parked) return;
    this.unpark(parked.call);
    parked.call.expire();
  }
}
