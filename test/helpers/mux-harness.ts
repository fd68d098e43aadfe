// A multiplexer over a FakeBackend with sessions that record what reaches them, for the in-process
// routing-rule tests (mux-unit*.test.ts): no process, no socket, each rule checked in milliseconds.

import type { IsolationMode } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log.ts';
import { Multiplexer } from '../../src/mux/multiplexer.ts';
import type {
  JsonRpcId,
  JsonRpcMessage,
  JsonRpcRequest,
  JsonRpcResponse,
} from '../../src/protocol/jsonrpc.ts';
import type { Upstream } from '../../src/sessions/types.ts';
import { FakeBackend } from './fake-backend.ts';

/** Lets queued microtasks and the current turn's callbacks run (the fake answers on microtasks). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class TestSession {
  readonly received: JsonRpcMessage[] = [];
  readonly upstream: Upstream;

  constructor(mux: Multiplexer, user: string) {
    this.upstream = mux.attach({ deliver: (message) => this.received.push(message) }, user);
  }

  send(message: JsonRpcMessage): void {
    this.upstream.send(message);
  }

  request(id: JsonRpcId, method: string, params?: Record<string, unknown>): void {
    const message: JsonRpcRequest = { jsonrpc: '2.0', id, method };
    if (params) message.params = params;
    this.send(message);
  }

  notify(method: string, params: Record<string, unknown>): void {
    this.send({ jsonrpc: '2.0', method, params });
  }

  /** Initializes as a client with `capabilities` and `protocolVersion`; resolves with its answer. */
  async initialize(capabilities: Record<string, unknown> = {}, protocolVersion = '2025-11-25') {
    this.request(`init-${this.received.length}`, 'initialize', {
      protocolVersion,
      capabilities,
      clientInfo: { name: 'test', version: '1' },
    });
    await settle();
    return this.responses().at(-1);
  }

  responses(): JsonRpcResponse[] {
    return this.received.filter((m): m is JsonRpcResponse => 'id' in m && !('method' in m));
  }

  responseTo(id: JsonRpcId): JsonRpcResponse | undefined {
    return this.responses().find((response) => response.id === id);
  }

  /** Messages with a method (notifications and server→client requests). */
  calls(method: string): JsonRpcMessage[] {
    return this.received.filter((m) => 'method' in m && m.method === method);
  }
}

export interface Harness {
  backend: FakeBackend;
  mux: Multiplexer;
  session(user: string): TestSession;
  emptied: () => number;
  unhealthy: string[];
}

export function harness(mode: IsolationMode = 'shared', livenessTimeoutMs = 0): Harness {
  const backend = new FakeBackend();
  let emptied = 0;
  const unhealthy: string[] = [];
  const mux = new Multiplexer(backend, {
    server: 's',
    mode,
    log: silentLogger,
    onEmpty: () => {
      emptied++;
    },
    onUnhealthy: (reason) => unhealthy.push(reason),
    livenessTimeoutMs,
  });
  return {
    backend,
    mux,
    session: (user) => new TestSession(mux, user),
    emptied: () => emptied,
    unhealthy,
  };
}

/** The id the backend saw for the last `method` request it got. */
export function lastBackendId(backend: FakeBackend, method: string): JsonRpcId {
  const request = backend.requests(method).at(-1);
  if (!request) throw new Error(`the backend got no ${method}`);
  return request.id;
}
