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
   */
  send(message: JsonRpcMessage, onWritten?: (failed: boolean) => void): boolean;
  /** Gives up on a backend that is there but of no use (hung, input closed): down now, then restarted. */
  replace(reason: string): void;
  /** Stops for good. Idempotent. */
  stop(): Promise<void>;
  /** Ends an unhealthy cool-down now (a config reload), so the next request tries the backend again. */
  endCooldown(): void;

  /** A message from the backend. */
  onmessage?: ((message: JsonRpcMessage) => void) | undefined;
  /** A backend is up (first start, or `restart`) and must be initialized. */
  onstarted?: ((restart: boolean) => void) | undefined;
  /** The running backend went away; what it had in flight is lost. */
  ondown?: ((reason: string) => void) | undefined;
  /** Too many failures: no restart until the cool-down ends; `reason` says when. */
  onunhealthy?: ((reason: string) => void) | undefined;
}
