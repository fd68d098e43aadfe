// The bridge's stdout: one write per message, and backpressure. A client that reads slowly (Claude
// Desktop busy with a large result) holds back the gateway streams feeding it, instead of the bridge
// buffering everything the gateway sends.

import type { Writable } from 'node:stream';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { RAW_PASS_THROUGH_BYTES } from '../protocol/raw-response.ts';

/**
 * A message at least this long is written as the text the gateway sent (validated, one line) rather
 * than parsed and serialized again: the same threshold as the gateway's own pass-through of large
 * backend lines. Smaller ones are re-serialized, so what reaches the client is normalized JSON.
 */
export const RAW_PASS_THROUGH_CHARS = RAW_PASS_THROUGH_BYTES;

/**
 * A message's text as the gateway sent it: a string (an SSE event's data), or the pieces of a large
 * JSON reply body that protocol/raw-response.ts found to be one plain response line, never decoded.
 */
export type MessageText = string | readonly Buffer[];

const LINE_BREAK = /[\r\n]/;

export class MessageOutput {
  readonly #output: Writable;
  #drained: Promise<void> | undefined;
  #release: (() => void) | undefined;
  /** Characters (or bytes, for pieces) written as the gateway's own text, without a second JSON.stringify. */
  passedThrough = 0;

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
  write(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined {
    if (!this.usable) return undefined;
    if (this.#writeLine(message, raw)) return undefined;
    return this.#whenDrained();
  }

  /** Whether the stream still takes more at once. */
  #writeLine(message: JsonRpcMessage, raw: MessageText | undefined): boolean {
    if (typeof raw === 'object') {
      for (const part of raw) {
        this.#output.write(part);
        this.passedThrough += part.length;
      }
      return this.#output.write('\n');
    }
    if (raw !== undefined && raw.length >= RAW_PASS_THROUGH_CHARS && !LINE_BREAK.test(raw)) {
      this.passedThrough += raw.length;
      return this.#output.write(`${raw}\n`);
    }
    return this.#output.write(`${JSON.stringify(message)}\n`);
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
