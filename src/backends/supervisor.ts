// Keeps one backend process alive behind a `BackendChannel`: restarts it with exponential backoff when
// it dies, and gives up for a cool-down when it crashes in a loop, so clients get a clear error instead.
// The cool-down ends early when the files the launch depends on change (the admin fixed it) or on
// `endCooldown` (a config reload), so a fixed server is tried at the next request.
// For a graceful restart it runs a second process beside the current one (`startNext`, `promote`,
// `retire`): the multiplexer initializes it, switches to it and drains the old one.

import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  backendDown,
  backendStarted,
  backendUnhealthy,
  type EventOwner,
  publishBackend,
  UNOWNED,
} from '../observe/events.ts';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import type { BackendChannel, ChannelState } from './channel.ts';
import type { BackendExit, BackendProcess } from './process.ts';

export interface RestartPolicy {
  /** First restart delay; doubled for each crash inside the window. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** This many exits within `crashWindowMs` mark the backend unhealthy. */
  crashLimit: number;
  crashWindowMs: number;
  /** How long an unhealthy backend is left alone before the next attempt. */
  cooldownMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 200,
  maxDelayMs: 30_000,
  crashLimit: 5,
  crashWindowMs: 60_000,
  cooldownMs: 60_000,
};

export interface SupervisorOptions {
  policy?: RestartPolicy;
  /**
   * A string that changes when the launch's files change (backends/preflight.ts `launchFingerprint`):
   * read when the backend is marked unhealthy and while it is, a change ends the cool-down at once.
   */
  fingerprint?: () => string;
  /** Names the gateway in this backend's events (observe/events.ts). */
  owner?: EventOwner;
}

export class Supervisor implements BackendChannel {
  readonly #spawn: () => Promise<BackendProcess>;
  readonly #policy: RestartPolicy;
  readonly #log: Logger;
  readonly #fingerprint: (() => string) | undefined;
  /** The fingerprint when the backend was marked unhealthy. */
  #lockedWith: string | undefined;
  #process: BackendProcess | undefined;
  /** The process of the current launch, named in backend events (observe/events.ts) after it is gone. */
  #launched: BackendProcess | undefined;
  #state: ChannelState = 'idle';
  #crashes: number[] = [];
  #restartTimer: NodeJS.Timeout | undefined;
  #unhealthyUntil = 0;
  #unhealthyReason = '';
  #everStarted = false;
  #restarts = 0;
  #startedAt: number | undefined;
  readonly #owner: EventOwner;
  /** The generation of the current process (each launch, and each `startNext`, takes the next number). */
  #generation = 0;
  #lastGeneration = 0;
  /** Processes beside the current one: a candidate being initialized, or an old one being drained. */
  readonly #sides = new Map<number, BackendProcess>();
  onmessage: ((message: JsonRpcMessage, generation?: number) => void) | undefined;
  onsideexit: ((generation: number, reason: string) => void) | undefined;
  onstarted: ((restart: boolean) => void) | undefined;
  ondown: ((reason: string) => void) | undefined;
  onunhealthy: ((reason: string) => void) | undefined;

  constructor(spawn: () => Promise<BackendProcess>, log: Logger, options: SupervisorOptions = {}) {
    this.#spawn = spawn;
    this.#log = log;
    this.#policy = options.policy ?? DEFAULT_RESTART_POLICY;
    this.#fingerprint = options.fingerprint;
    this.#owner = options.owner ?? UNOWNED;
  }

  /** Processes started after one went down (not the first start). */
  get restarts(): number {
    return this.#restarts;
  }

  /** When the running process started (ms since the epoch); undefined while none runs. */
  get startedAt(): number | undefined {
    return this.#process ? this.#startedAt : undefined;
  }

  get state(): ChannelState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  get generation(): number {
    return this.#generation;
  }

  /** The app port of the running process only: between a crash and the restart there is none. */
  get appPort(): number | undefined {
    return this.#state === 'running' ? this.#process?.spec.appPort : undefined;
  }

  /** Why the backend is unhealthy and when it will be tried again, while its cool-down lasts (error messages). */
  get unhealthyReason(): string | undefined {
    return this.#lockedOut() ? this.#describeUnhealthy() : undefined;
  }

  /** Ends a cool-down now (a config reload: the admin may have fixed the server); the next start tries. */
  endCooldown(): void {
    if (this.#state === 'unhealthy') this.#unhealthyUntil = 0;
  }

  /**
   * Unhealthy and its cool-down not over: not ended (`endCooldown`), not timed out, and the command and
   * script on disk unchanged since it began.
   */
  #lockedOut(): boolean {
    if (this.#state !== 'unhealthy' || Date.now() >= this.#unhealthyUntil) return false;
    if (this.#fingerprint === undefined || this.#lockedWith === undefined) return true;
    if (this.#fingerprint() === this.#lockedWith) return true;
    this.#log.info("the server's command or script changed on disk; ending its cool-down");
    this.#unhealthyUntil = 0;
    return false;
  }

  #describeUnhealthy(): string {
    const seconds = Math.max(0, Math.ceil((this.#unhealthyUntil - Date.now()) / 1000));
    return `${this.#unhealthyReason}; next attempt in ${seconds}s`;
  }

  /** Starts the process; after an unhealthy cool-down has passed, tries again. */
  async start(): Promise<void> {
    if (this.#state === 'running' || this.#state === 'restarting' || this.#state === 'stopped') return;
    if (this.#lockedOut()) return;
    if (this.#state === 'unhealthy') this.#crashes = [];
    await this.#launch();
  }

  /** Writes to the running process; `onWritten` as in `BackendProcess.send`. */
  send(message: JsonRpcMessage, onWritten?: (failed: boolean) => void, generation?: number): boolean {
    if (generation !== undefined && generation !== this.#generation)
      return this.#sides.get(generation)?.send(message, onWritten) ?? false;
    return this.#state === 'running' && (this.#process?.send(message, onWritten) ?? false);
  }

  /** Launches a process beside the running one; it takes messages only when `send` names its generation. */
  async startNext(): Promise<number> {
    if (this.#state !== 'running' || !this.#process)
      throw new RelayError('BACKEND_RESTART', 'the backend is not running');
    const generation = ++this.#lastGeneration;
    const process = await this.#spawn();
    // Stopped while spawning (the gateway stops): the state changed under the await.
    if ((this.#state as ChannelState) === 'stopped') {
      await process.stop();
      throw new RelayError('BACKEND_RESTART', 'the gateway is stopping');
    }
    this.#wire(process, generation);
    this.#sides.set(generation, process);
    process.start();
    return generation;
  }

  /** The process of `generation` becomes the current one; the one it replaces is kept (drained) until `retire`. */
  promote(generation: number): void {
    const next = this.#sides.get(generation);
    if (!next || this.#state !== 'running') throw new RelayError('BACKEND_RESTART', 'nothing to switch to');
    const previous = this.#process;
    this.#sides.delete(generation);
    if (previous) this.#sides.set(this.#generation, previous);
    this.#process = this.#launched = next;
    this.#generation = generation;
    this.#startedAt = Date.now();
    this.#restarts++;
    publishBackend(backendStarted, this.#owner, next.spec.server, next.pid, undefined, true);
  }

  /** Stops a process beside the current one; resolves once it is gone, with its last stderr lines. */
  async retire(generation: number): Promise<readonly string[]> {
    const process = this.#sides.get(generation);
    if (!process) return [];
    // Out of the table first: its exit, coming, is the one asked for and not reported.
    this.#sides.delete(generation);
    await process.stop();
    return process.finalStderrTail();
  }

  /**
   * Gives up on a process that is there but of no use (it stopped responding, or closed its stdin):
   * kills it and handles it as a crash at once, without waiting for its exit, so what it had in
   * flight is answered now and a new process starts with the usual backoff.
   */
  replace(reason: string): void {
    const process = this.#process;
    if (!process || this.#state !== 'running') return;
    // Killed already: its exit, coming, tells the real reason.
    if (process.dying) return;
    this.#process = undefined;
    process.kill();
    this.#exited({ code: null, signal: null }, reason);
  }

  /** Stops for good (no restart). Idempotent. */
  async stop(): Promise<void> {
    this.#state = 'stopped';
    clearTimeout(this.#restartTimer);
    const process = this.#process;
    this.#process = undefined;
    const sides = [...this.#sides.values()];
    this.#sides.clear();
    await Promise.all([process?.stop(), ...sides.map((side) => side.stop())]);
  }

  async #launch(): Promise<void> {
    this.#state = 'running';
    this.#launched = undefined;
    let process: BackendProcess;
    try {
      process = await this.#spawn();
    } catch (error) {
      this.#exited({ code: null, signal: null, error: error as Error });
      return;
    }
    if (this.#state !== 'running') {
      await process.stop();
      return;
    }
    this.#process = this.#launched = process;
    this.#generation = ++this.#lastGeneration;
    this.#wire(process, this.#generation);
    process.start();
    const restart = this.#everStarted;
    this.#everStarted = true;
    this.#startedAt = Date.now();
    if (restart) this.#restarts++;
    if (this.#state !== 'running' || this.#process !== process) return;
    publishBackend(backendStarted, this.#owner, process.spec.server, process.pid, undefined, restart);
    this.onstarted?.(restart);
  }

  /**
   * Routes a process's messages under its generation, and its exit: the current process's is a crash
   * (restart, backoff), a side process's is told as such (`onsideexit`) and restarts nothing.
   */
  #wire(process: BackendProcess, generation: number): void {
    process.onmessage = (message) => this.onmessage?.(message, generation);
    process.onexit = (exit) => {
      if (this.#process === process) this.#exited(exit);
      else if (this.#sides.get(generation) === process && this.#state !== 'stopped')
        this.onsideexit?.(generation, exitReason(exit));
    };
  }

  #exited(exit: BackendExit, why?: string): void {
    this.#process = undefined;
    if (this.#state === 'stopped') return;
    const reason = why ?? exitReason(exit);
    const now = Date.now();
    this.#crashes = [...this.#crashes.filter((time) => now - time < this.#policy.crashWindowMs), now];
    publishBackend(backendDown, this.#owner, this.#launched?.spec.server, this.#launched?.pid, reason);
    this.ondown?.(reason);
    // A command that cannot be started at all (missing, not executable) will not start on a retry either.
    if (exit.error || this.#crashes.length >= this.#policy.crashLimit) {
      this.#state = 'unhealthy';
      this.#unhealthyUntil = now + this.#policy.cooldownMs;
      this.#lockedWith = this.#fingerprint?.();
      this.#unhealthyReason = exit.error
        ? reason
        : `crashed ${this.#crashes.length} times within ${Math.round(this.#policy.crashWindowMs / 1000)}s (last: ${reason})`;
      // Its last stderr lines usually say why (a missing module, a bad option): the admin's first clue.
      this.#log.error(
        { crashes: this.#crashes.length, reason, stderr: this.#launched?.stderrTail },
        'backend cannot be kept running; marked unhealthy until its cool-down ends, its command or script changes, or the config is reloaded',
      );
      publishBackend(
        backendUnhealthy,
        this.#owner,
        this.#launched?.spec.server,
        this.#launched?.pid,
        this.#unhealthyReason,
      );
      this.onunhealthy?.(this.#describeUnhealthy());
      return;
    }
    const delay = Math.min(
      this.#policy.maxDelayMs,
      this.#policy.initialDelayMs * 2 ** (this.#crashes.length - 1),
    );
    this.#state = 'restarting';
    this.#log.warn({ reason, delayMs: delay }, 'backend down; restarting');
    this.#restartTimer = setTimeout(() => {
      if (this.#state !== 'restarting') return;
      this.#state = 'idle';
      void this.#launch();
    }, delay);
    this.#restartTimer.unref();
  }
}

function exitReason(exit: BackendExit): string {
  return exit.error
    ? `backend could not be started: ${exit.error.message}`
    : `backend exited (${exit.signal ?? `code ${exit.code}`})`;
}
