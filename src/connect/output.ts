// The bridge's stdout: one write per message, and backpressure. A client that reads slowly (Claude
// Desktop busy with a large result) holds back the gateway streams feeding it, instead of the bridge
// buffering everything the gateway sends.

import type { Writable } from 'node:stream';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';

/**
 * A message at least this long is written as the text the gateway sent (validated, one line) rather
 * than parsed and serialized again: the same threshold as the gateway's own pass-through of large
 * backend lines. Smaller ones are re-serialized, so what reaches the client is normalized JSON.
 */
export const RAW_PASS_THROUGH_CHARS = 256 * 1024;

const LINE_BREAK = /[\r\n]/;

export class MessageOutput {
  readonly #output: Writable;
  #drained: Promise<void> | undefined;
  #release: (() => void) | undefined;
  /** Characters written as the gateway's own text, without a second JSON.stringify (for tests). */
  passedThroughChars = 0;

  constructor(output: Writable) {
    this.#output = output;
  }

  get usable(): boolean {
    return !this.#output.destroyed && !this.#output.writableEnded;
  }

  /**
   * Writes one message as one line. Returns undefined when the stream can take more at once, else a
   * promise that settles once it drained (or closed): whoever feeds the bridge from the gateway waits
   * for it before reading the next message, so at most one message per stream sits in the buffer.
   */
  write(message: JsonRpcMessage, raw?: string): Promise<void> | undefined {
    if (!this.usable) return undefined;
    let line: string;
    if (raw !== undefined && raw.length >= RAW_PASS_THROUGH_CHARS && !LINE_BREAK.test(raw)) {
      line = raw;
      this.passedThroughChars += raw.length;
    } else line = JSON.stringify(message);
    if (this.#output.write(`${line}\n`)) return undefined;
    return this.#whenDrained();
  }

  /** Lets every waiter go (the bridge is closing): nothing more will be read for them anyway. */
  release(): void {
    this.#release?.();
  }

  /** One shared wait per congestion, whoever asks; it settles on drain, close, error or release(). */
  #whenDrained(): Promise<void> {
    this.#drained ??= new Promise<void>((resolve) => {
      const done = () => {
        this.#output.off('drain', done);
        this.#output.off('close', done);
        this.#output.off('error', done);
        this.#drained = undefined;
        this.#release = undefined;
        resolve();
      };
      this.#release = done;
      this.#output.on('drain', done);
      this.#output.on('close', done);
      this.#output.on('error', done);
    });
    return this.#drained;
  }
}
