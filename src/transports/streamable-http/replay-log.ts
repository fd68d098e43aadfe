// The events one session keeps for Last-Event-ID resumption, all its SSE streams together, bounded by
// bytes and by age: delivered results are not held for the life of the session, and an event bigger
// than the whole budget is not kept at all (its stream says so to a client that resumes for it).

export interface ReplayBounds {
  /** Bytes (characters of the SSE frames) kept across the session's streams. */
  maxBytes: number;
  /** How long an event stays available. */
  maxAgeMs: number;
}

/** One event as written: text, or pieces when it carries a passed-through result (see protocol/raw-json.ts). */
export type Frame = string | readonly Buffer[];

/** The size of a frame (characters of text, bytes of pieces). */
export function frameLength(frame: Frame): number {
  return typeof frame === 'string' ? frame.length : frame.reduce((sum, part) => sum + part.length, 0);
}

/** One kept event. `frame` is emptied when the event is evicted, so a stream's stale reference holds nothing. */
export interface ReplayEntry {
  readonly seq: number;
  frame: Frame;
  readonly at: number;
  live: boolean;
}

/** Dead entries tolerated in the queue before it is compacted (they are small, but not free). */
const COMPACT_SLACK = 1_024;

export class ReplayLog {
  readonly #bounds: ReplayBounds;
  /** Oldest first; entries before `#head` are gone, dead ones further on are skipped. */
  #queue: ReplayEntry[] = [];
  #head = 0;
  #live = 0;
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(bounds: ReplayBounds) {
    this.#bounds = bounds;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Keeps `frame` (evicting the oldest events to make room), or returns undefined when it alone is over the bound. */
  add(seq: number, frame: Frame): ReplayEntry | undefined {
    const length = frameLength(frame);
    if (length > this.#bounds.maxBytes || this.#bounds.maxAgeMs <= 0) return undefined;
    const entry: ReplayEntry = { seq, frame, at: Date.now(), live: true };
    this.#queue.push(entry);
    this.#live++;
    this.#bytes += length;
    this.#evict();
    this.#schedule();
    return entry;
  }

  /** Forgets one entry (its stream keeps fewer events than the session's budget allows). Idempotent. */
  remove(entry: ReplayEntry): void {
    if (!entry.live) return;
    this.#kill(entry);
    if (this.#queue.length - this.#head > 2 * this.#live + COMPACT_SLACK) {
      this.#queue = this.#queue.slice(this.#head).filter((kept) => kept.live);
      this.#head = 0;
    }
  }

  /** Forgets everything (the session ended). Idempotent. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const entry of this.#queue) {
      entry.live = false;
      entry.frame = '';
    }
    this.#queue = [];
    this.#head = 0;
    this.#live = 0;
    this.#bytes = 0;
  }

  /** Drops events over the byte bound or past their age, oldest first. */
  #evict(): void {
    const expired = Date.now() - this.#bounds.maxAgeMs;
    while (this.#head < this.#queue.length) {
      const oldest = this.#queue[this.#head] as ReplayEntry;
      if (oldest.live && this.#bytes <= this.#bounds.maxBytes && oldest.at > expired) break;
      this.#kill(oldest);
      this.#head++;
    }
    if (this.#head > COMPACT_SLACK && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #kill(entry: ReplayEntry): void {
    if (!entry.live) return;
    entry.live = false;
    this.#bytes -= frameLength(entry.frame);
    entry.frame = '';
    this.#live--;
  }

  /** Wakes when the oldest event expires, so an idle session does not keep its last results. */
  #schedule(): void {
    if (this.#timer !== undefined) return;
    const oldest = this.#queue[this.#head];
    if (!oldest) return;
    const delay = Math.max(0, oldest.at + this.#bounds.maxAgeMs - Date.now()) + 5;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#evict();
      this.#schedule();
    }, delay);
    this.#timer.unref();
  }
}
