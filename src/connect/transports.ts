// Which transport `connect` speaks (--transport): Streamable HTTP, the legacy HTTP+SSE transport, a
// WebSocket, or auto — ws:// and wss:// URLs speak WebSocket, http(s):// ones Streamable HTTP first and,
// when the server refuses the initialize POST with 400, 404 or 405, the legacy transport on the same URL
// (the backward-compatibility rule of MCP 2025-03-26). The choice is made once, at the first initialize.

import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { isRequest } from '../protocol/jsonrpc.ts';
import type { AuthProvider } from './auth.ts';
import { ChannelConnection } from './channel-connection.ts';
import type { DeliveryHooks, EventStreamHooks, GatewayConnection, TransportKind } from './connection.ts';
import type { BridgeLog } from './diagnostics.ts';
import type { ClientCertificate, ProxySettings } from './dispatcher.ts';
import { GatewayError } from './errors.ts';
import { StreamableHttpConnection } from './http-connection.ts';
import { LegacySseOpener } from './legacy-sse.ts';
import { WebSocketOpener } from './websocket.ts';

export type TransportChoice = TransportKind | 'auto';
export const TRANSPORT_CHOICES: readonly TransportChoice[] = ['auto', 'http', 'sse', 'ws'];

export interface ConnectionOptions {
  url: URL;
  transport: TransportChoice;
  headers: Readonly<Record<string, string>>;
  auth: AuthProvider | undefined;
  ca: string | undefined;
  socketPath?: string | undefined;
  clientCert?: ClientCertificate | undefined;
  proxy?: ProxySettings | undefined;
  idleTimeoutMs?: number | undefined;
  userAgent: string;
  log: BridgeLog;
}

/** Statuses to the initialize POST that mean "no Streamable HTTP here" (the spec's fallback rule). */
const FALLBACK_STATUSES = new Set([400, 404, 405]);

export function createConnection(options: ConnectionOptions): GatewayConnection {
  if (options.url.protocol === 'ws:' || options.url.protocol === 'wss:') {
    return new ChannelConnection(new WebSocketOpener(options), options.log);
  }
  if (options.transport === 'sse') return legacySse(options);
  if (options.transport === 'http') return new StreamableHttpConnection(options);
  return new AutoConnection(options);
}

function legacySse(options: ConnectionOptions): GatewayConnection {
  return new ChannelConnection(new LegacySseOpener(options), options.log);
}

/** Streamable HTTP until its first initialize is refused as above; then the legacy transport for good. */
class AutoConnection implements GatewayConnection {
  readonly #options: ConnectionOptions;
  #current: GatewayConnection;
  #decided = false;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#current = new StreamableHttpConnection(options);
  }

  get transport(): TransportKind {
    return this.#current.transport;
  }

  get displayUrl(): string {
    return this.#current.displayUrl;
  }

  get sessionId(): string | undefined {
    return this.#current.sessionId;
  }

  get protocolVersion(): string | undefined {
    return this.#current.protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#current.setProtocolVersion(version);
  }

  resetSession(): void {
    this.#current.resetSession();
  }

  async deliver(message: JsonRpcMessage, hooks: DeliveryHooks): Promise<void> {
    if (this.#decided || !isRequest(message) || message.method !== 'initialize') {
      return this.#current.deliver(message, hooks);
    }
    try {
      await this.#current.deliver(message, hooks);
      this.#decided = true;
      return;
    } catch (error) {
      if (!isNoStreamableHttp(error)) throw error;
      const refused = error instanceof GatewayError ? error.status : undefined;
      hooks.log.info(
        `no Streamable HTTP at ${this.displayUrl} (${refused}); trying the legacy HTTP+SSE transport there`,
      );
      // Current while it delivers, so what the bridge logs about the answer names this transport.
      const streamable = this.#current;
      const legacy = legacySse(this.#options);
      this.#current = legacy;
      try {
        await legacy.deliver(message, hooks);
      } catch (fallbackError) {
        this.#current = streamable;
        await legacy.close();
        if (!(fallbackError instanceof GatewayError)) throw fallbackError;
        const legacySaid =
          fallbackError.kind === 'rejected' && fallbackError.status !== undefined
            ? `the legacy HTTP+SSE GET ${fallbackError.status}`
            : `the legacy HTTP+SSE transport: ${fallbackError.message}`;
        throw new GatewayError(
          fallbackError.kind,
          `no MCP endpoint at ${this.displayUrl}: the Streamable HTTP POST got ${refused}, ${legacySaid}; check the URL (or choose with --transport)`,
          {
            cause: fallbackError,
            ...(fallbackError.status === undefined ? {} : { status: fallbackError.status }),
          },
        );
      }
      this.#decided = true;
      await streamable.close();
    }
  }

  listen(hooks: EventStreamHooks): Promise<void> {
    return this.#current.listen(hooks);
  }

  terminate(timeoutMs: number): Promise<void> {
    return this.#current.terminate(timeoutMs);
  }

  close(): Promise<void> {
    return this.#current.close();
  }
}

function isNoStreamableHttp(error: unknown): boolean {
  return (
    error instanceof GatewayError &&
    error.kind === 'rejected' &&
    error.status !== undefined &&
    FALLBACK_STATUSES.has(error.status)
  );
}
