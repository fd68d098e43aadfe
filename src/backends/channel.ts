// The contract between the multiplexer and one backend, shaped like the MCP SDK's Transport: the
// multiplexer needs only this, so a backend over HTTP or in a container can plug in beside the supervisor.

import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';

/**
 * idle: not started (or between a crash and its restart being due); running: messages may be sent;
 * restarting: down, a restart is scheduled; unhealthy: given up for a cool-down; stopped: for good.
 */
export type ChannelState = 'idle' | 'running' | 'restarting' | 'unhealthy' | 'stopped';

export interface BackendChannel {
  readonly state: ChannelState;
  /** Why the backend is unhealthy and when it is tried again, while it is (for error messages). */
  readonly unhealthyReason: string | undefined;
  /** The process id behind the channel, where there is one (logs, tests). */
  readonly pid: number | undefined;
  /** The loopback port of the running backend's browser app (`app.portEnv`); a restart picks a new one. */
  readonly appPort?: number | undefined;

  /** Starts the backend if it is not running; after an unhealthy cool-down, tries again. */
  start(): Promise<void>;
  /**
   * Writes one message; false when it was not taken at all. `onWritten(failed)` tells later whether it
   * reached the backend whole: a failed write certainly did not (so it may be sent to the next one).
   * `generation`: to that process rather than the current one (one being drained, or a candidate).
   */
  send(message: JsonRpcMessage, onWritten?: (failed: boolean) => void, generation?: number): boolean;
  /** Gives up on a backend that is there but of no use (hung, input closed): down now, then restarted. */
  replace(reason: string): void;
  /** Stops for good. Idempotent. */
  stop(): Promise<void>;
  /** Ends an unhealthy cool-down now (a config reload), so the next request tries the backend again. */
  endCooldown(): void;

  // --- Graceful replacement (optional: a channel without it is replaced by its crash path only) ----
  // Each process is a generation; `send` and `onmessage` name it when it is not the current one, so
  // a process being drained is still answered (sampling) and told of cancellations.

  /** The current process's generation (a number that grows with each process); 0 without generations. */
  readonly generation?: number;
  /**
   * Starts a second process beside the running one (its own app port); resolves with its generation.
   * It is not the current one: nothing goes to it unless `send` names it, until `promote`.
   */
  startNext?(): Promise<number>;
  /** Makes the process of `generation` the current one; the previous one keeps running until `retire`. */
  promote?(generation: number): void;
  /** Stops a process that is not the current one (stdin end → SIGTERM → SIGKILL); resolves with its stderr tail. */
  retire?(generation: number): Promise<readonly string[]>;
  /** A process that is not the current one exited (a candidate that failed, or one being drained). */
  onsideexit?: ((generation: number, reason: string) => void) | undefined;

  /** A message from the backend (`generation`: which process, where the channel has several). */
  onmessage?: ((message: JsonRpcMessage, generation?: number) => void) | undefined;
  /** A backend is up (first start, or `restart`) and must be initialized. */
  onstarted?: ((restart: boolean) => void) | undefined;
  /** The running backend went away; what it had in flight is lost. */
  ondown?: ((reason: string) => void) | undefined;
  /** Too many failures: no restart until the cool-down ends; `reason` says when. */
  onunhealthy?: ((reason: string) => void) | undefined;
}
