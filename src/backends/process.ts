// One backend: an unchanged stdio MCP server in a child process, framed as newline-delimited JSON-RPC.
// It knows nothing of sessions or HTTP; the router above decides who a message belongs to.

import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from '../log.ts';
import { isInvalid, type JsonRpcMessage, validateMessage } from '../protocol/jsonrpc.ts';

export interface BackendSpec {
  /** Config name of the server, for logs. */
  server: string;
  command: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
}

export interface BackendExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  error?: Error;
}

/** Longest line a backend may write; a longer one is dropped (and logged) rather than buffered forever. */
const MAX_LINE_BYTES = 64 * 1_048_576;
const STOP_GRACE_MS = 2_000;

export class BackendProcess {
  readonly spec: BackendSpec;
  onmessage: (message: JsonRpcMessage) => void = () => {};
  onexit: (exit: BackendExit) => void = () => {};

  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #exited: Promise<BackendExit> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(spec: BackendSpec, log: Logger) {
    this.spec = spec;
    this.#log = log.child({ server: spec.server });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the process. A spawn failure is reported through `onexit` like any other exit. */
  start(): void {
    if (this.#child) throw new Error('backend already started');
    const { command, args, cwd, env } = this.spec;
    const child = spawn(command, args, {
      cwd,
      env,
      shell: false,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      let settled = false;
      const finish = (exit: BackendExit) => {
        if (settled) return;
        settled = true;
        resolve(exit);
        this.onexit(exit);
      };
      child.once('error', (error) => {
        this.#log.error({ err: error.message, command }, 'backend could not be started');
        finish({ code: null, signal: null, error });
      });
      child.once('exit', (code, signal) => {
        this.#log.info({ pid: child.pid, code, signal }, 'backend exited');
        finish({ code, signal });
      });
    });
    child.stdout?.on('data', (chunk: Buffer) => this.#onStdout(chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      for (const line of text.split('\n')) {
        if (line.trim()) this.#log.info({ pid: child.pid, stderr: line.slice(0, 4_000) }, 'backend stderr');
      }
    });
    // A backend that dies mid-write must not crash the gateway with EPIPE.
    child.stdin?.on('error', (error) => this.#log.debug({ err: error.message }, 'backend stdin closed'));
    if (child.pid) this.#log.info({ pid: child.pid, command }, 'backend started');
  }

  /** Writes one message; returns false when the process is not there to take it. */
  send(message: JsonRpcMessage): boolean {
    const stdin = this.#child?.stdin;
    if (!stdin?.writable || !this.running) return false;
    stdin.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  /**
   * Stops the process the polite way first: close stdin (how stdio servers learn the client left),
   * then SIGTERM, then SIGKILL. Idempotent; resolves when the process is gone.
   */
  stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.#stopping ??= this.#stop(graceMs);
    return this.#stopping;
  }

  async #stop(graceMs: number): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited || !this.running) return;
    child.stdin?.end();
    if (await settlesWithin(exited, graceMs)) return;
    child.kill('SIGTERM');
    if (await settlesWithin(exited, graceMs)) return;
    this.#log.warn({ pid: child.pid }, 'backend ignored SIGTERM; sending SIGKILL');
    child.kill('SIGKILL');
    await exited;
  }

  #onStdout(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(10);
    while (newline !== -1) {
      const piece = chunk.subarray(start, newline);
      if (this.#pending.length > 0) {
        this.#pending.push(piece);
        this.#handleLine(Buffer.concat(this.#pending));
        this.#pending = [];
        this.#pendingBytes = 0;
      } else {
        this.#handleLine(piece);
      }
      start = newline + 1;
      newline = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      this.#pendingBytes += chunk.length - start;
      if (this.#pendingBytes > MAX_LINE_BYTES) {
        this.#log.error({ bytes: this.#pendingBytes }, 'backend wrote an over-long line; dropped');
        this.#pending = [];
        this.#pendingBytes = 0;
        return;
      }
      this.#pending.push(chunk.subarray(start));
    }
  }

  #handleLine(line: Buffer): void {
    const text = line.toString('utf8').trim();
    if (!text) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.#log.warn({ line: text.slice(0, 200) }, 'backend wrote a line that is not JSON; ignored');
      return;
    }
    const message = validateMessage(value);
    if (isInvalid(message)) {
      this.#log.warn(
        { reason: message.reason, line: text.slice(0, 200) },
        'backend wrote an invalid message; ignored',
      );
      return;
    }
    this.onmessage(message);
  }
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
