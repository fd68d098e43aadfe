// The backend's initialize, done once for all its sessions: the first client's params (widened to
// what the gateway can route on a shared backend), each later client answered from the result with
// the protocol version agreed with it, and the backend initialized again after each restart.

import type { BackendChannel } from '../backends/channel.ts';
import type { IsolationMode } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import {
  errorResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import { Method } from '../protocol/mcp.ts';
import { isNegotiableProtocolVersion, LATEST_PROTOCOL_VERSION } from '../protocol/versions.ts';
import type { MuxLink } from './link.ts';

/** Capabilities the gateway can route for a shared backend: it answers with an error where a session lacks one. */
const ROUTABLE_CLIENT_CAPABILITIES = { roots: { listChanged: true }, sampling: {}, elicitation: {} };

/** What the handshake needs of its multiplexer. */
export interface HandshakeHost {
  readonly channel: BackendChannel;
  /** False when the request could not be written (no process yet: it is still being spawned). */
  internalRequest(
    method: string,
    params: Record<string, unknown>,
    onResponse: (response: JsonRpcResponse) => void,
  ): boolean;
  toBackend(message: JsonRpcMessage): boolean;
  /** Answers `request` with an error while the backend sits out its crash-loop cool-down; true if it did. */
  refusedAsUnhealthy(link: MuxLink, request: JsonRpcRequest): boolean;
  /** The backend took initialize (again, after a restart): what waited for it may go now. */
  initialized(restart: boolean): void;
}

export interface InitWaiter {
  link: MuxLink;
  request: JsonRpcRequest;
}

export class Handshake {
  readonly #mode: IsolationMode;
  readonly #log: Logger;
  readonly #host: HandshakeHost;
  /** What the backend is initialized with: the first client's params. */
  #params: Record<string, unknown> | undefined;
  /** The backend's answer; undefined while it is not initialized (not yet, or a new process). */
  #result: Record<string, unknown> | undefined;
  #initializing = false;
  #waiters: InitWaiter[] = [];

  constructor(mode: IsolationMode, log: Logger, host: HandshakeHost) {
    this.#mode = mode;
    this.#log = log;
    this.#host = host;
  }

  /** Whether the backend is initialized, so requests may go to it. */
  get ready(): boolean {
    return this.#result !== undefined;
  }

  /** What the backend was initialized with (the first client's params), to initialize a replacement alike. */
  get params(): Record<string, unknown> | undefined {
    return this.#params;
  }

  /** A replacement process took initialize (a graceful restart): its answer is the one sessions get now. */
  replaced(result: Record<string, unknown>): void {
    this.#result = result;
  }

  /** Whether the backend declared `name` among its capabilities. */
  capability(name: string): boolean {
    const capabilities = this.#result?.capabilities as Record<string, unknown> | undefined;
    return capabilities?.[name] !== undefined;
  }

  /** A session's initialize: answered from the backend's result, once there is one. */
  clientInitialize(link: MuxLink, request: JsonRpcRequest): void {
    link.clientInit = request.params ?? {};
    if (this.#result) {
      link.deliver({ jsonrpc: '2.0', id: request.id, result: this.#resultFor(link) });
      return;
    }
    if (this.#host.refusedAsUnhealthy(link, request)) return;
    this.#waiters.push({ link, request });
    if (!this.#params) {
      const params = request.params ?? {};
      // A backend of one session sees that client exactly; a shared one sees what the gateway can route.
      this.#params =
        this.#mode === 'per-session'
          ? params
          : {
              ...params,
              capabilities: { ...(params.capabilities as object), ...ROUTABLE_CLIENT_CAPABILITIES },
            };
    }
    if (this.#host.channel.state === 'running') this.#initialize(false);
    else void this.#host.channel.start();
  }

  /** A backend process is up: initialized if a client has asked already. */
  backendStarted(restart: boolean): void {
    if (this.#params) this.#initialize(restart);
  }

  backendDown(): void {
    this.#result = undefined;
    this.#initializing = false;
  }

  /** The sessions still waiting for initialize, taken (the backend is unhealthy). */
  takeWaiters(): InitWaiter[] {
    return this.#waiters.splice(0);
  }

  /** A session left: it waits no more. */
  forget(link: MuxLink): void {
    this.#waiters = this.#waiters.filter((entry) => entry.link !== link);
  }

  #initialize(restart: boolean): void {
    if (this.#initializing || !this.#params) return;
    this.#initializing = true;
    const sent = this.#host.internalRequest(Method.initialize, this.#params, (response) => {
      this.#initializing = false;
      if ('error' in response) {
        this.#log.error({ error: response.error }, 'backend refused initialize');
        for (const { link, request } of this.#waiters.splice(0)) {
          link.deliver(
            errorResponse(request.id, response.error.code, response.error.message, response.error.data),
          );
        }
        return;
      }
      this.#result = response.result;
      this.#host.toBackend({ jsonrpc: '2.0', method: Method.initialized });
      for (const { link, request } of this.#waiters.splice(0)) {
        link.deliver({ jsonrpc: '2.0', id: request.id, result: this.#resultFor(link) });
      }
      this.#host.initialized(restart);
    });
    // The channel says running while its process is still being spawned: backendStarted tries again.
    if (!sent) this.#initializing = false;
  }

  /** The backend's initialize result, with the protocol version agreed with this client. */
  #resultFor(link: MuxLink): Record<string, unknown> {
    const result = this.#result ?? {};
    const backendVersion =
      typeof result.protocolVersion === 'string' ? result.protocolVersion : LATEST_PROTOCOL_VERSION;
    const requested = link.clientInit?.protocolVersion;
    const version =
      typeof requested === 'string' && isNegotiableProtocolVersion(requested) && requested <= backendVersion
        ? requested
        : backendVersion;
    return { ...result, protocolVersion: version };
  }
}
