// One backend: an unchanged stdio MCP server in a child process, framed as newline-delimited JSON-RPC.
// It knows nothing of sessions or HTTP; the multiplexer above decides who a message belongs to.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../protocol/json-depth.ts';
import {
  ErrorCode,
  errorResponse,
  isInvalid,
  type JsonRpcMessage,
  validateMessage,
} from '../protocol/jsonrpc.ts';
import { RAW_PASS_THROUGH_BYTES, rawResponse } from '../protocol/raw-response.ts';
import { OverlongLine } from './overlong-line.ts';

export interface BackendSpec {
  /** Config name of the server, for logs. */
  server: string;
  command: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** Longest message (line) taken from the backend; default 64 MiB. */
  maxMessageBytes?: number;
  /** The account to run as (servers.<name>.user/.group, see account.ts); undefined: the gateway's. */
  uid?: number | undefined;
  gid?: number | undefined;
  /** The loopback port its browser app was told to listen on (`app.portEnv`), when it has one. */
  appPort?: number;
}

export interface BackendExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  error?: Error;
}

/** Longest line a backend may write by default; a longer one is dropped (and logged) rather than buffered forever. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1_048_576;
const STOP_GRACE_MS = 2_000;
/** Lines of a backend's stderr kept for the message when it fails to start or dies (see `stderrTail`). */
const STDERR_TAIL_LINES = 10;

/** A message waiting for its turn's write. */
interface Outgoing {
  line: string;
  request: boolean;
  onWritten: ((failed: boolean) => void) | undefined;
}

export class BackendProcess {
  readonly spec: BackendSpec;
  onmessage: (message: JsonRpcMessage) => void = () => {};
  onexit: (exit: BackendExit) => void = () => {};

  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The line being dropped for its length, while its end has not arrived. */
  #overlong: OverlongLine | undefined;
  readonly #maxMessageBytes: number;
  #exited: Promise<BackendExit> | undefined;
  #stopping: Promise<void> | undefined;
  /** Messages `send` queued in this turn, written together by `#flush`. */
  #outgoing: Outgoing[] = [];
  /** /proc/<pid>/stat kept open (Linux), read before each write holding a request: see `dying`. */
  #statFd: number | undefined;
  /** The last lines the process wrote to stderr: why it failed, usually, when it did. */
  readonly #stderrTail: string[] = [];
  /** Resolves when the process's stderr has ended (it can end after the exit event). */
  #stderrEnded: Promise<void> = Promise.resolve();

  constructor(spec: BackendSpec, log: Logger) {
    this.spec = spec;
    this.#log = log.child({ server: spec.server });
    this.#maxMessageBytes = spec.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The last lines (up to 10) the process wrote on stderr, for the error when it fails to start or dies. */
  get stderrTail(): readonly string[] {
    return this.#stderrTail;
  }

  /**
   * The stderr tail once the stream has ended, or after `maxWaitMs` (a grandchild may hold it open): the
   * exit event can come before the last lines are read.
   */
  async finalStderrTail(maxWaitMs = 500): Promise<readonly string[]> {
    await settlesWithin(this.#stderrEnded, maxWaitMs);
    return this.#stderrTail;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the process. A spawn failure is reported through `onexit` like any other exit. */
  start(): void {
    if (this.#child) throw new Error('backend already started');
    const { command, args, cwd, env, uid, gid } = this.spec;
    const child = spawn(command, args, {
      cwd,
      env,
      uid,
      gid,
      shell: false,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.#child = child;
    this.#statFd = openStat(child.pid);
    this.#exited = new Promise((resolve) => {
      let settled = false;
      const finish = (exit: BackendExit) => {
        if (settled) return;
        settled = true;
        if (this.#statFd !== undefined) closeSync(this.#statFd);
        this.#statFd = undefined;
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
    const stderr = child.stderr;
    if (stderr) this.#stderrEnded = new Promise((resolve) => stderr.once('close', () => resolve()));
    child.stderr?.on('data', (text: string) => {
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        this.#log.info({ pid: child.pid, stderr: line.slice(0, 4_000) }, 'backend stderr');
        this.#stderrTail.push(line.slice(0, 500));
        if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      }
    });
    // A backend that dies mid-write must not crash the gateway with EPIPE.
    child.stdin?.on('error', (error) => this.#log.debug({ err: error.message }, 'backend stdin closed'));
    if (child.pid) this.#log.info({ pid: child.pid, command }, 'backend started');
  }

  /**
   * Queues one message for this turn's write; returns false when the process is not there to take it.
   * `onWritten` learns how the write ended: failed means the line never reached the process whole (the
   * process was dying, gone, or closed its stdin first: EPIPE), so it cannot have acted on it.
   */
  send(message: JsonRpcMessage, onWritten?: (failed: boolean) => void): boolean {
    if (!this.#child?.stdin?.writable || !this.running) return false;
    const request = 'method' in message && 'id' in message;
    this.#outgoing.push({ line: `${JSON.stringify(message)}\n`, request, onWritten });
    if (this.#outgoing.length === 1) setImmediate(this.#flush);
    return true;
  }

  /**
   * Writes the messages queued in this turn of the event loop, together: one write, and one wake-up of
   * the process, for what many sessions sent at once. Requests are left out when the process is dying,
   * read right before the write (so a kill that landed anywhere in the turn is seen): one written now
   * would sit unread in the pipe and be lost with the process, while one not written is certain not
   * to have run (DESIGN.md, "Exactly once").
   */
  readonly #flush = (): void => {
    const batch = this.#outgoing;
    if (batch.length === 0) return;
    this.#outgoing = [];
    const stdin = this.#child?.stdin;
    if (!stdin?.writable || !this.running) {
      for (const message of batch) message.onWritten?.(true);
      return;
    }
    const dying = batch.some((message) => message.request) && this.dying;
    let text = '';
    const callbacks: ((failed: boolean) => void)[] = [];
    for (const message of batch) {
      if (dying && message.request) {
        message.onWritten?.(true);
        continue;
      }
      text += message.line;
      if (message.onWritten) callbacks.push(message.onWritten);
    }
    if (text === '') return;
    stdin.write(text, (error) => {
      for (const callback of callbacks) callback(error != null);
    });
  };

  /**
   * Killed but its exit not yet seen: a fatal signal pending, exiting, or a zombie (Linux, from
   * /proc/<pid>/stat). Such a process never returns to user space, so it reads nothing more; a
   * request not written to it is certain not to have run (DESIGN.md, "Exactly once"). False where
   * /proc is not there.
   */
  get dying(): boolean {
    if (this.#statFd === undefined) return false;
    const buffer = Buffer.allocUnsafe(1024);
    let length: number;
    try {
      length = readSync(this.#statFd, buffer, 0, buffer.length, 0);
    } catch {
      return true; // ESRCH: already reaped
    }
    return statSaysDying(buffer.toString('latin1', 0, length));
  }

  /** Kills the process at once (SIGKILL works on a stopped or hung process too); its exit is reported as usual. */
  kill(): void {
    if (this.running) this.#child?.kill('SIGKILL');
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
    this.#flush(); // what was sent before the stop is written before stdin closes
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
      this.#lineEnd(chunk.subarray(start, newline));
      start = newline + 1;
      newline = chunk.indexOf(10, start);
    }
    if (start < chunk.length) this.#lineContinues(chunk.subarray(start));
  }

  #lineContinues(piece: Buffer): void {
    if (this.#overlong) {
      this.#overlong.add(piece);
      return;
    }
    this.#pending.push(piece);
    this.#pendingBytes += piece.length;
    if (this.#pendingBytes > this.#maxMessageBytes) {
      // From here on the line's bytes are counted and dropped, never buffered.
      this.#overlong = new OverlongLine();
      for (const kept of this.#pending) this.#overlong.add(kept);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
  }

  #lineEnd(piece: Buffer): void {
    const overlong = this.#overlong;
    if (overlong || this.#pendingBytes + piece.length > this.#maxMessageBytes) {
      const line = overlong ?? new OverlongLine();
      for (const kept of this.#pending) line.add(kept);
      line.add(piece);
      this.#overlong = undefined;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#tooLong(line);
      return;
    }
    if (this.#pending.length === 0) {
      this.#handleLine(piece);
      return;
    }
    const parts = this.#pending;
    parts.push(piece);
    const length = this.#pendingBytes + piece.length;
    this.#pending = [];
    this.#pendingBytes = 0;
    // A large response goes through as its bytes: parsing and re-serializing it would stall every user.
    const raw = length >= RAW_PASS_THROUGH_BYTES ? rawResponse(parts, length) : undefined;
    if (raw) this.#deliver(raw);
    else this.#handleLine(Buffer.concat(parts, length));
  }

  /** A line over maxMessageBytes: the request it answers gets an error, when the line shows which. */
  #tooLong(line: OverlongLine): void {
    const id = line.responseId();
    this.#log.error(
      { bytes: line.bytes, limit: this.#maxMessageBytes, id },
      'backend wrote a message over the size limit; dropped',
    );
    if (id === undefined) return;
    this.#deliver(
      errorResponse(
        id,
        ErrorCode.InternalError,
        `the server's response (${line.bytes} bytes) exceeds the gateway's limit of ${this.#maxMessageBytes} bytes; not delivered`,
      ),
    );
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
    // Serializing it toward a client would overflow the stack: answered like an over-long line.
    if (nestsDeeperThan(line, message)) {
      this.#tooDeep(message);
      return;
    }
    this.#deliver(message);
  }

  /** A message nested deeper than the gateway re-serializes: an error for its request, never a crash. */
  #tooDeep(message: JsonRpcMessage): void {
    const reason = `nested deeper than ${MAX_JSON_DEPTH} levels`;
    const method = 'method' in message ? message.method.slice(0, 100) : undefined;
    this.#log.error(
      { method, id: 'id' in message ? message.id : undefined },
      `backend message ${reason}; dropped`,
    );
    if (!('id' in message) || message.id === null) return;
    if (method === undefined) {
      this.#deliver(
        errorResponse(
          message.id,
          ErrorCode.InternalError,
          `the server's response is ${reason}; not delivered`,
        ),
      );
    } else {
      // The backend's own request: it learns at once that no client will answer it.
      this.send(errorResponse(message.id, ErrorCode.InvalidRequest, `request ${reason}; not forwarded`));
    }
  }

  /** Hands one message up; a fault above is logged here, so no backend output can throw out of the data handler. */
  #deliver(message: JsonRpcMessage): void {
    try {
      this.onmessage(message);
    } catch (error) {
      this.#log.error(
        { err: errorText(error), stack: (error as Error).stack },
        'a backend message could not be routed; dropped',
      );
      // Its request still gets an answer, so the client does not wait for its timeout.
      if ('method' in message || !('id' in message) || message.id === null || 'error' in message) return;
      try {
        this.onmessage(
          errorResponse(message.id, ErrorCode.InternalError, "the server's response could not be delivered"),
        );
      } catch {
        // Logged above; nothing more to do for this message.
      }
    }
  }
}

function openStat(pid: number | undefined): number | undefined {
  if (pid === undefined || process.platform !== 'linux') return undefined;
  try {
    return openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return undefined;
  }
}

const PF_EXITING = 0x4;
const SIGKILL_BIT = 1 << 8;

/** From a /proc/<pid>/stat line: zombie or dead, PF_EXITING set, or SIGKILL pending on the main thread. */
export function statSaysDying(stat: string): boolean {
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0] ?? '';
  const flags = Number(fields[6] ?? 0);
  const pending = Number(fields[28] ?? 0);
  return (
    state === 'Z' ||
    state === 'X' ||
    state === 'x' ||
    (flags & PF_EXITING) !== 0 ||
    (pending & SIGKILL_BIT) !== 0
  );
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
