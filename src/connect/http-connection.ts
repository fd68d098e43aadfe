// Streamable HTTP as a GatewayConnection: the gateway client (gateway-client.ts) for the wire, the
// delivery rules (delivery.ts: retries while unsent, SSE resumption, re-sends the gateway promised to
// answer from memory) for one message, the standalone GET stream (event-stream.ts) for the rest.

import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import type { DeliveryHooks, EventStreamHooks, GatewayConnection } from './connection.ts';
import { deliver } from './delivery.ts';
import { runEventStream } from './event-stream.ts';
import { GatewayClient, type GatewayClientOptions } from './gateway-client.ts';

export class StreamableHttpConnection implements GatewayConnection {
  readonly transport = 'http';
  readonly #client: GatewayClient;

  constructor(options: GatewayClientOptions) {
    this.#client = new GatewayClient(options);
  }

  get displayUrl(): string {
    return this.#client.displayUrl;
  }

  get sessionId(): string | undefined {
    return this.#client.sessionId;
  }

  get protocolVersion(): string | undefined {
    return this.#client.protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#client.setProtocolVersion(version);
  }

  resetSession(): void {
    this.#client.resetSession();
  }

  deliver(message: JsonRpcMessage, hooks: DeliveryHooks): Promise<void> {
    return deliver(this.#client, message, hooks);
  }

  listen(hooks: EventStreamHooks): Promise<void> {
    return runEventStream(this.#client, hooks);
  }

  terminate(timeoutMs: number): Promise<void> {
    return this.#client.terminate(timeoutMs);
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}
