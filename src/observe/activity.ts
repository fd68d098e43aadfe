// What the admin page shows of the recent past, kept by a subscriber of one gateway's events
// (events.ts): calls and errors per user (rates over the last minute), calls per second of the whole
// gateway over the last minutes (the page's chart), and the latest refusals. Bounded in every
// direction: per-second rings, a capped list of refusals, a capped number of users.

import {
  type AuthFailedEvent,
  authFailed,
  type EventOwner,
  type RequestRefusedEvent,
  type RequestSettledEvent,
  requestRefused,
  requestSettled,
} from './events.ts';

/** Seconds of calls per second the chart shows. */
export const HISTORY_SECONDS = 300;
/** Seconds a user's call rate is averaged over. */
const RATE_SECONDS = 60;
const MAX_REFUSALS = 50;
/** Users remembered at once; past it, the one idle longest is forgotten. */
const MAX_USERS = 1_000;
const MAX_TEXT = 120;

/** Counts per second over a window that slides with the clock. */
class SecondRing {
  readonly #counts: Uint32Array;
  /** The second (epoch seconds) the newest slot stands for. */
  #newest = 0;

  constructor(seconds: number) {
    this.#counts = new Uint32Array(seconds);
  }

  add(second: number): void {
    this.#advance(second);
    const slot = second % this.#counts.length;
    this.#counts[slot] = (this.#counts[slot] ?? 0) + 1;
  }

  /** The counts, oldest first, ending with the second `now`. */
  values(now: number): number[] {
    this.#advance(now);
    const size = this.#counts.length;
    return Array.from({ length: size }, (_, index) => this.#counts[(now - size + 1 + index) % size] ?? 0);
  }

  sum(now: number): number {
    return this.values(now).reduce((total, count) => total + count, 0);
  }

  /** Clears the slots of the seconds between the newest and `second`. */
  #advance(second: number): void {
    if (second <= this.#newest) return;
    const size = this.#counts.length;
    const gap = Math.min(second - this.#newest, size);
    for (let step = 1; step <= gap; step++) this.#counts[(this.#newest + step) % size] = 0;
    this.#newest = second;
  }
}

interface UserActivity {
  calls: number;
  errors: number;
  lastCall: number;
  recentCalls: SecondRing;
  recentErrors: SecondRing;
}

export interface UserActivityReport {
  user: string;
  calls: number;
  errors: number;
  /** Calls and errors per second, averaged over the last minute. */
  callsPerSecond: number;
  errorsPerSecond: number;
  lastCall: number;
}

export interface RefusalReport {
  at: number;
  user: string;
  server: string;
  method: string;
  name: string | undefined;
  reason: string;
  status: number | undefined;
}

export interface ActivityReport {
  users: UserActivityReport[];
  /** Calls and errors of the whole gateway per second, oldest first, the last entry being `now`. */
  history: { endsAt: number; calls: number[]; errors: number[] };
  refusals: RefusalReport[];
  /** Requests refused at the door (no or a bad credential) since the gateway started, by reason. */
  authFailures: Record<string, number>;
}

export class Activity {
  readonly #owner: EventOwner;
  readonly #now: () => number;
  readonly #users = new Map<string, UserActivity>();
  readonly #calls = new SecondRing(HISTORY_SECONDS);
  readonly #errors = new SecondRing(HISTORY_SECONDS);
  readonly #refusals: RefusalReport[] = [];
  readonly #authFailures = new Map<string, number>();
  readonly #unsubscribe: Array<() => void>;

  constructor(owner: EventOwner, now: () => number = Date.now) {
    this.#owner = owner;
    this.#now = now;
    this.#unsubscribe = [
      requestSettled.subscribe((event) => {
        if (event.owner === this.#owner) this.#settled(event);
      }),
      requestRefused.subscribe((event) => {
        if (event.owner === this.#owner) this.#refused(event);
      }),
      authFailed.subscribe((event: AuthFailedEvent) => {
        if (event.owner !== this.#owner) return;
        this.#authFailures.set(event.reason, (this.#authFailures.get(event.reason) ?? 0) + 1);
      }),
    ];
  }

  report(): ActivityReport {
    const now = this.#now();
    const second = Math.floor(now / 1000);
    const users = [...this.#users].map(([user, activity]) => ({
      user,
      calls: activity.calls,
      errors: activity.errors,
      callsPerSecond: activity.recentCalls.sum(second) / RATE_SECONDS,
      errorsPerSecond: activity.recentErrors.sum(second) / RATE_SECONDS,
      lastCall: activity.lastCall,
    }));
    users.sort((a, b) => b.lastCall - a.lastCall);
    return {
      users,
      history: {
        endsAt: second * 1000,
        calls: this.#calls.values(second),
        errors: this.#errors.values(second),
      },
      refusals: [...this.#refusals].reverse(),
      authFailures: Object.fromEntries(this.#authFailures),
    };
  }

  /** Stops listening. Idempotent. */
  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  #settled(event: RequestSettledEvent): void {
    // The chart and rates are of work asked of backends, not of the handshake.
    if (event.method === 'initialize') return;
    const now = this.#now();
    const second = Math.floor(now / 1000);
    const failed = event.outcome !== 'ok';
    const activity = this.#user(event.identity.user, now);
    activity.calls++;
    activity.lastCall = now;
    activity.recentCalls.add(second);
    this.#calls.add(second);
    if (failed) {
      activity.errors++;
      activity.recentErrors.add(second);
      this.#errors.add(second);
    }
  }

  #refused(event: RequestRefusedEvent): void {
    this.#refusals.push({
      at: this.#now(),
      user: event.identity.user,
      server: event.server,
      method: bounded(event.method),
      name: event.name === undefined ? undefined : bounded(event.name),
      reason: bounded(event.reason),
      status: event.status,
    });
    if (this.#refusals.length > MAX_REFUSALS) this.#refusals.shift();
  }

  #user(user: string, now: number): UserActivity {
    let activity = this.#users.get(user);
    if (activity) return activity;
    if (this.#users.size >= MAX_USERS) {
      let idlest: string | undefined;
      let oldest = Number.POSITIVE_INFINITY;
      for (const [name, entry] of this.#users) {
        if (entry.lastCall < oldest) {
          oldest = entry.lastCall;
          idlest = name;
        }
      }
      if (idlest !== undefined) this.#users.delete(idlest);
    }
    activity = {
      calls: 0,
      errors: 0,
      lastCall: now,
      recentCalls: new SecondRing(RATE_SECONDS),
      recentErrors: new SecondRing(RATE_SECONDS),
    };
    this.#users.set(user, activity);
    return activity;
  }
}

function bounded(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}
