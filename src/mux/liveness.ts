// Whether a backend with requests pending still responds: pinged after half of servers.<name>.
// livenessTimeout of silence, replaced after all of it (DESIGN.md, "Bounded everything").

/** What /healthz shows of a backend's liveness. */
export interface LivenessStats {
  /** Silent with requests pending, pinged, no answer yet. */
  unresponsive: boolean;
  /** Processes replaced because they stopped responding. */
  hangs: number;
  lastHang: { at: string; reason: string } | undefined;
}

/** What the watch needs of its multiplexer. */
export interface LivenessHost {
  /** Requests (clients' and the gateway's own) the backend has yet to answer. */
  pending(): number;
  running(): boolean;
  ping(): void;
  /** The backend counts as hung: replace it, for `reason`. */
  hung(reason: string, silentMs: number, pending: number): void;
}

export class Liveness {
  readonly #timeoutMs: number;
  readonly #host: LivenessHost;
  /** Last sign of life: backend output, a (re)start, or the first request after a quiet spell. */
  #lastSign = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #pingOutstanding = false;
  #hangs = 0;
  #lastHang: { at: string; reason: string } | undefined;

  /** `timeoutMs` 0: never watched. */
  constructor(timeoutMs: number, host: LivenessHost) {
    this.#timeoutMs = timeoutMs;
    this.#host = host;
  }

  get stats(): LivenessStats {
    return { unresponsive: this.#pingOutstanding, hangs: this.#hangs, lastHang: this.#lastHang };
  }

  /** The backend wrote something: it is alive. */
  output(): void {
    this.#lastSign = Date.now();
    this.#pingOutstanding = false;
  }

  /** A backend process is up. */
  started(): void {
    this.#lastSign = Date.now();
  }

  down(): void {
    this.#pingOutstanding = false;
  }

  /**
   * A request is about to be written while `pending` are in flight (it among them): the backend's
   * silence is timed from the first request after a quiet spell, not from its last output.
   */
  requesting(pending: number): void {
    if (pending <= 1) this.#lastSign = Date.now();
  }

  /** A request was written: arms the check while requests are pending. */
  requested(): void {
    if (this.#timeoutMs <= 0 || this.#timer) return;
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const due = this.#lastSign + (this.#pingOutstanding ? this.#timeoutMs : this.#timeoutMs / 2);
    this.#timer = setTimeout(() => this.#check(), Math.max(10, due - Date.now()));
    this.#timer.unref();
  }

  #check(): void {
    this.#timer = undefined;
    const pending = this.#host.pending();
    if (pending === 0 || !this.#host.running()) {
      this.#pingOutstanding = false;
      return;
    }
    const silentMs = Date.now() - this.#lastSign;
    if (silentMs >= this.#timeoutMs) {
      const reason = `backend stopped responding (no output for ${Math.round(silentMs / 1000)}s with ${pending} request(s) pending, ping unanswered) and was killed; whether the call ran is unknown`;
      this.#hangs++;
      this.#lastHang = { at: new Date().toISOString(), reason };
      this.#pingOutstanding = false;
      this.#host.hung(reason, silentMs, pending);
      return;
    }
    if (silentMs >= this.#timeoutMs / 2 && !this.#pingOutstanding) {
      this.#pingOutstanding = true;
      this.#host.ping();
    }
    this.#schedule();
  }
}
