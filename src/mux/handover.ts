// A graceful restart of one multiplexed backend: a new process is started beside the running one and
// initialized like it; only once it answers does new work go to it, while the old process finishes
// what it has in flight (bounded) and is then stopped. A new process that fails leaves the old serving.

import type { BackendChannel } from '../backends/channel.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { JsonRpcMessage, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { Method } from '../protocol/mcp.ts';
import type { Handshake } from './handshake.ts';
import type { RequestTable } from './request-table.ts';

export interface RestartOptions {
  /** How long the new process gets to answer initialize before it counts as failed. */
  startTimeoutMs: number;
  /** How long the old process may take to finish its calls in flight before the rest fail. */
  drainTimeoutMs: number;
}

/** What a restart of one backend did. */
export type RestartOutcome =
  | {
      status: 'restarted';
      oldPid: number | undefined;
      newPid: number | undefined;
      /** From the start of the new process to new work going to it. */
      switchMs: number;
      /** Requests in flight on the old process at the switch. */
      inFlight: number;
      /** From the switch until the old process was stopped. */
      drainMs: number;
      /** Of those, left unanswered at the drain bound (or when the old process died): failed with an error. */
      unfinished: number;
    }
  | { status: 'failed'; reason: string; stderr: readonly string[] }
  | { status: 'skipped'; reason: string };

/** What the handover needs of its multiplexer. */
export interface HandoverHost {
  readonly channel: BackendChannel;
  readonly log: Logger;
  readonly requests: RequestTable;
  readonly handshake: Handshake;
  internalRequest(
    method: string,
    params: Record<string, unknown>,
    onResponse: (response: JsonRpcResponse) => void,
    generation: number,
  ): boolean;
  toBackend(message: JsonRpcMessage, generation: number): boolean;
  /** New work goes to the new process from now: restore what it does not know and tell the sessions. */
  switched(): void;
  /** Answers what is still in flight on the process of `generation` with `message`; returns how many. */
  failGeneration(generation: number, message: string): number;
}

type Started = { kind: 'ready'; result: Record<string, unknown> } | { kind: 'failed'; reason: string };

interface Drain {
  /** Ends the drain when nothing is in flight on the process any more. */
  check(): void;
  /** Ends it now: what is left fails with `message`. */
  end(message: string): void;
}

export class Handover {
  readonly #host: HandoverHost;
  /** The generation of the new process while it is being initialized. */
  #candidate: number | undefined;
  #candidateExited: ((reason: string) => void) | undefined;
  readonly #draining = new Map<number, Drain>();
  #running = false;

  constructor(host: HandoverHost) {
    this.#host = host;
  }

  /** Whether `generation` is a process beside the current one (new and not yet switched to, or draining). */
  isSide(generation: number): boolean {
    return generation === this.#candidate || this.#draining.has(generation);
  }

  isCandidate(generation: number): boolean {
    return generation === this.#candidate;
  }

  isDraining(generation: number): boolean {
    return this.#draining.has(generation);
  }

  get draining(): boolean {
    return this.#draining.size > 0;
  }

  /** Something was answered or given up: drains with nothing left in flight end. */
  check(): void {
    for (const drain of [...this.#draining.values()]) drain.check();
  }

  /** A process beside the current one exited. */
  sideExited(generation: number, reason: string): void {
    if (generation === this.#candidate) this.#candidateExited?.(reason);
    else
      this.#draining
        .get(generation)
        ?.end(`${reason} while finishing its calls after a restart; whether the call ran is unknown`);
  }

  /** The multiplexer stops: nothing waits any more (the channel stops every process). */
  stop(): void {
    this.#candidateExited?.('the gateway is stopping');
    for (const drain of [...this.#draining.values()]) drain.end('the gateway is stopping');
  }

  async run(options: RestartOptions): Promise<RestartOutcome> {
    if (this.#running) return { status: 'skipped', reason: 'a restart of this backend is already under way' };
    this.#running = true;
    try {
      return await this.#run(options);
    } finally {
      this.#running = false;
    }
  }

  async #run(options: RestartOptions): Promise<RestartOutcome> {
    const { channel, handshake, log } = this.#host;
    if (!channel.startNext || !channel.promote || !channel.retire)
      return { status: 'skipped', reason: 'this backend cannot be replaced gracefully' };
    if (channel.state === 'unhealthy') {
      // Broken until now: the new code is tried at the next request rather than after the cool-down.
      channel.endCooldown();
      return {
        status: 'skipped',
        reason: 'in a crash-loop cool-down, now ended: the next request starts the new code',
      };
    }
    const params = handshake.params;
    if (channel.state !== 'running' || !handshake.ready || params === undefined)
      return {
        status: 'skipped',
        reason: `not running (${channel.state}); its next start runs the new code`,
      };
    const oldGeneration = channel.generation ?? 0;
    const oldPid = channel.pid;
    const started = Date.now();
    let generation: number;
    try {
      generation = await channel.startNext();
    } catch (error) {
      return { status: 'failed', reason: `could not be started: ${errorText(error)}`, stderr: [] };
    }
    this.#candidate = generation;
    const outcome = await this.#initialize(generation, params, options.startTimeoutMs);
    this.#candidate = undefined;
    this.#candidateExited = undefined;
    if (outcome.kind === 'failed') {
      this.#host.failGeneration(generation, outcome.reason);
      const stderr = await channel.retire(generation);
      log.error(
        { reason: outcome.reason, stderr, pid: oldPid },
        'new backend process failed; the old one goes on serving',
      );
      return { status: 'failed', reason: outcome.reason, stderr };
    }
    // The running process went down meanwhile (its crash path restarts it), or the gateway stops.
    if (channel.state !== 'running' || (channel.generation ?? 0) !== oldGeneration || !handshake.ready) {
      await channel.retire(generation);
      return {
        status: 'skipped',
        reason: 'the running backend went down during the restart and is restarted',
      };
    }
    this.#host.toBackend({ jsonrpc: '2.0', method: Method.initialized }, generation);
    // From here new requests go to the new process; the old one's answers still come back by id.
    channel.promote(generation);
    handshake.replaced(outcome.result);
    const inFlight = this.#host.requests.countOf(oldGeneration);
    const drainStarted = Date.now();
    const switchMs = drainStarted - started;
    this.#host.switched();
    log.info(
      { oldPid, newPid: channel.pid, switchMs, inFlight },
      'backend restarted: new requests go to the new process; the old one finishes its calls',
    );
    const unfinished = await this.#drain(oldGeneration, options.drainTimeoutMs);
    const drainMs = Date.now() - drainStarted;
    log.info({ oldPid, drainMs, unfinished }, 'old backend process drained and stopped');
    return { status: 'restarted', oldPid, newPid: channel.pid, switchMs, inFlight, drainMs, unfinished };
  }

  /** Sends initialize (the params the backend was first initialized with) to the new process only. */
  #initialize(generation: number, params: Record<string, unknown>, timeoutMs: number): Promise<Started> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (outcome: Started) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(
        () => done({ kind: 'failed', reason: `did not answer initialize within ${timeoutMs / 1000} s` }),
        timeoutMs,
      );
      this.#candidateExited = (reason) =>
        done({ kind: 'failed', reason: `${reason} before answering initialize` });
      const sent = this.#host.internalRequest(
        Method.initialize,
        params,
        (response) =>
          done(
            'error' in response
              ? { kind: 'failed', reason: `refused initialize: ${response.error.message}` }
              : { kind: 'ready', result: response.result },
          ),
        generation,
      );
      if (!sent) done({ kind: 'failed', reason: 'did not take input' });
    });
  }

  /**
   * Waits until nothing is in flight on the old process, or `boundMs`, fails what is left with the
   * honest "unknown" error, then stops the process. Resolves with how many calls were left.
   */
  #drain(generation: number, boundMs: number): Promise<number> {
    const { channel, requests } = this.#host;
    return new Promise((resolve) => {
      const end = (message: string | undefined) => {
        if (this.#draining.get(generation) !== drain) return;
        this.#draining.delete(generation);
        clearTimeout(timer);
        // Nothing is left to answer when it drained; its tasks go with it either way.
        const unfinished = this.#host.failGeneration(
          generation,
          message ?? 'the old backend process stopped',
        );
        void (channel.retire?.(generation) ?? Promise.resolve()).then(() => resolve(unfinished));
      };
      const drain: Drain = {
        check: () => {
          if (requests.countOf(generation) === 0) end(undefined);
        },
        end,
      };
      const timer = setTimeout(
        () =>
          end(
            `the server was restarted and its old process did not answer within the ${boundMs / 1000} s drain; it was stopped, whether the call ran is unknown`,
          ),
        boundMs,
      );
      timer.unref();
      this.#draining.set(generation, drain);
      drain.check();
    });
  }
}
