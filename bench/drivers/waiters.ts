// Replies awaited by id, for the drivers that read responses off a stream of their own (stdio pipes,
// the legacy SSE stream) rather than off each request's HTTP response.

interface Waiter {
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class ReplyWaiters {
  readonly #waiting = new Map<number, Waiter>();
  #nextId = 1;

  /** A fresh request id and the promise of its result, rejected after `timeoutMs` without a reply. */
  expect(method: string, timeoutMs: number): { id: number; reply: Promise<unknown> } {
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${method}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, { resolve, reject, timer });
    });
    return { id, reply };
  }

  /** Settles the waiter a JSON-RPC response (as text) answers; anything else is ignored. */
  settle(text: string): void {
    let message: { id?: unknown; result?: unknown; error?: { message?: string } };
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message.id !== 'number') return;
    const waiter = this.#waiting.get(message.id);
    if (!waiter) return;
    this.#waiting.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.error) waiter.reject(new Error(message.error.message ?? 'error'));
    else waiter.resolve(message.result);
  }

  /** Stops waiting for `id` (its request could not be sent). */
  forget(id: number): void {
    const waiter = this.#waiting.get(id);
    this.#waiting.delete(id);
    if (waiter) clearTimeout(waiter.timer);
  }

  failAll(error: Error): void {
    for (const waiter of this.#waiting.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiting.clear();
  }
}
