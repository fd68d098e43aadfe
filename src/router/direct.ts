// The per-session link: one backend process for one session, messages passed through unchanged.
// Ids need no rewriting because nobody else talks to this process.

import type { PooledBackend } from '../backends/pool.ts';
import { ErrorCode, errorResponse, isRequest, type JsonRpcMessage } from '../protocol/jsonrpc.ts';
import type { Downstream, Upstream } from '../sessions/types.ts';

export class DirectLink implements Upstream {
  readonly #backend: PooledBackend;
  readonly #downstream: Downstream;
  readonly #release: (backend: PooledBackend) => Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(
    backend: PooledBackend,
    downstream: Downstream,
    release: (backend: PooledBackend) => Promise<void>,
  ) {
    this.#backend = backend;
    this.#downstream = downstream;
    this.#release = release;
    const { process } = backend;
    process.onmessage = (message) => downstream.deliver(message);
    process.onexit = (exit) => {
      const why = exit.error
        ? `backend could not be started: ${exit.error.message}`
        : `backend exited (${exit.signal ?? `code ${exit.code}`})`;
      downstream.lost(why);
    };
  }

  send(message: JsonRpcMessage): void {
    if (this.#closing) return;
    if (!this.#backend.process.send(message) && isRequest(message)) {
      this.#downstream.deliver(
        errorResponse(message.id, ErrorCode.BackendUnavailable, 'backend is not running'),
      );
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#release(this.#backend);
    return this.#closing;
  }
}
