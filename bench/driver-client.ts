// The orchestrator's handle on the load-generator process: forks bench/driver.ts and sends it one
// command at a time, each bounded in time; `mark` events tell when a measured window begins.

import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DriverCommand } from './driver.ts';
import { stopProcess, trackProcess } from './processes.ts';

const DRIVER = fileURLToPath(new URL('./driver.ts', import.meta.url));

interface Reply {
  seq: number;
  ok: boolean;
  data?: unknown;
  error?: string;
}

export class DriverProcess {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve(data: unknown): void; reject(error: Error): void }>();
  #seq = 0;
  #onMark: (() => void) | undefined;

  constructor() {
    this.#child = fork(DRIVER, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
      execArgv: ['--no-warnings'],
    });
    trackProcess(this.#child);
    this.#child.on('message', (message: Reply | { event: 'mark' }) => {
      if ('event' in message) {
        this.#onMark?.();
        return;
      }
      const waiter = this.#waiting.get(message.seq);
      if (!waiter) return;
      this.#waiting.delete(message.seq);
      if (message.ok) waiter.resolve(message.data);
      else waiter.reject(new Error(message.error ?? 'driver error'));
    });
    this.#child.once('exit', (code) => {
      for (const waiter of this.#waiting.values()) waiter.reject(new Error(`driver exited (${code})`));
      this.#waiting.clear();
    });
  }

  get pid(): number {
    return this.#child.pid as number;
  }

  /** Sends `command`; rejects when the driver fails it or does not answer within `timeoutMs`. */
  send<T>(command: DriverCommand, timeoutMs: number, onMark?: () => void): Promise<T> {
    const seq = ++this.#seq;
    this.#onMark = onMark;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(seq);
        reject(new Error(`driver did not finish "${command.op}" within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.#waiting.set(seq, {
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#child.send({ seq, command });
    });
  }

  async stop(): Promise<void> {
    await stopProcess(this.#child, 3_000);
  }
}
