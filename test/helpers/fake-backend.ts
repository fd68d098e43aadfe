// An in-memory BackendChannel for in-process tests of the multiplexer: it records what it is sent,
// answers by script (initialize out of the box), and goes down, restarts or turns unhealthy on demand.
// For graceful restarts it runs "processes" beside the current one under generations (startNext, promote,
// retire), each answering by the same script; `written` records which generation got each message.

import type { BackendChannel, ChannelState } from '../../src/backends/channel.ts';
import type { JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from '../../src/protocol/jsonrpc.ts';

/** What a scripted handler returns: a result, an error, or undefined to leave the request unanswered. */
export type FakeAnswer =
  | { result: Record<string, unknown> }
  | { error: { code: number; message: string } }
  | undefined;

export const FAKE_CAPABILITIES = {
  tools: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  prompts: {},
  logging: {},
};

export class FakeBackend implements BackendChannel {
  state: ChannelState = 'idle';
  unhealthyReason: string | undefined;
  pid: number | undefined;
  /** Every message the multiplexer wrote, in order, across restarts. */
  readonly sent: JsonRpcMessage[] = [];
  /** Why each `replace` was asked for. */
  readonly replaced: string[] = [];
  /** Answers by method; a request with no handler stays unanswered (call `answer` for it). */
  readonly handlers = new Map<string, (request: JsonRpcRequest) => FakeAnswer>();
  /** Makes `send` refuse (false), as a process whose stdin is gone does. */
  refuseWrites = false;
  starts = 0;
  /** The current process's generation; a new one per `startNext`. */
  generation = 1;
  #lastGeneration = 1;
  /** Generations running beside the current one (a new one not yet promoted, an old one draining). */
  readonly sides = new Set<number>();
  /** Generations retired (stopped), in order. */
  readonly retired: number[] = [];
  /** Every message written, with the generation it went to. */
  readonly written: Array<{ generation: number; message: JsonRpcMessage }> = [];
  /** The answer a new process (startNext) gives initialize; undefined: the `initialize` handler's. */
  nextInitialize: FakeAnswer | null = undefined;
  onsideexit: ((generation: number, reason: string) => void) | undefined;
  onmessage: ((message: JsonRpcMessage, generation?: number) => void) | undefined;
  onstarted: ((restart: boolean) => void) | undefined;
  ondown: ((reason: string) => void) | undefined;
  onunhealthy: ((reason: string) => void) | undefined;

  constructor(initializeResult: Record<string, unknown> = {}) {
    this.handlers.set('initialize', () => ({
      result: {
        protocolVersion: '2025-11-25',
        capabilities: FAKE_CAPABILITIES,
        serverInfo: { name: 'fake', version: '1' },
        ...initializeResult,
      },
    }));
    this.handlers.set('ping', () => ({ result: {} }));
    this.handlers.set('logging/setLevel', () => ({ result: {} }));
    this.handlers.set('resources/subscribe', () => ({ result: {} }));
    this.handlers.set('resources/unsubscribe', () => ({ result: {} }));
  }

  endCooldown(): void {
    this.unhealthyReason = undefined;
  }

  /** Starts like a spawn does: up on a later turn, then `onstarted`. */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    await Promise.resolve();
    this.#up();
  }

  send(message: JsonRpcMessage, onWritten?: (failed: boolean) => void, generation?: number): boolean {
    if (generation !== undefined && generation !== this.generation) {
      if (!this.sides.has(generation)) return false;
      this.written.push({ generation, message });
      if (onWritten) queueMicrotask(() => onWritten(false));
      if ('method' in message && 'id' in message) {
        const answer =
          message.method === 'initialize' && this.nextInitialize !== undefined
            ? (this.nextInitialize ?? undefined)
            : this.handlers.get(message.method)?.(message);
        if (answer) queueMicrotask(() => this.answerFrom(generation, message.id, answer));
      }
      return true;
    }
    if (this.state !== 'running' || this.refuseWrites) return false;
    this.sent.push(message);
    this.written.push({ generation: this.generation, message });
    if (onWritten) queueMicrotask(() => onWritten(false));
    if ('method' in message && 'id' in message) {
      const answer = this.handlers.get(message.method)?.(message);
      if (answer) queueMicrotask(() => this.answer(message.id, answer));
    }
    return true;
  }

  replace(reason: string): void {
    if (this.state !== 'running') return;
    this.replaced.push(reason);
    this.down(reason);
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
  }

  async startNext(): Promise<number> {
    if (this.state !== 'running') throw new Error('not running');
    const generation = ++this.#lastGeneration;
    this.sides.add(generation);
    return generation;
  }

  promote(generation: number): void {
    this.sides.delete(generation);
    this.sides.add(this.generation);
    this.generation = generation;
    this.starts++;
    this.pid = 1000 + this.starts;
  }

  async retire(generation: number): Promise<readonly string[]> {
    if (this.sides.delete(generation)) this.retired.push(generation);
    return [`stderr of ${generation}`];
  }

  /** Sends a message as the process of `generation`. */
  emitFrom(generation: number, message: JsonRpcMessage): void {
    this.onmessage?.(message, generation);
  }

  /** Answers, as the process of `generation`, the request it got under `id`. */
  answerFrom(generation: number, id: JsonRpcResponse['id'], answer: NonNullable<FakeAnswer>): void {
    if (!this.sides.has(generation) && generation !== this.generation) return;
    this.emitFrom(generation, { jsonrpc: '2.0', id, ...answer } as JsonRpcResponse);
  }

  /** The requests for `method` written to the process of `generation`, oldest first. */
  requestsTo(generation: number, method: string): JsonRpcRequest[] {
    return this.written
      .filter((entry) => entry.generation === generation)
      .map((entry) => entry.message)
      .filter((m): m is JsonRpcRequest => 'method' in m && 'id' in m && m.method === method);
  }

  /** The notifications for `method` written to the process of `generation`. */
  notificationsTo(generation: number, method: string): JsonRpcMessage[] {
    return this.written
      .filter((entry) => entry.generation === generation)
      .map((entry) => entry.message)
      .filter((m) => 'method' in m && !('id' in m) && m.method === method);
  }

  // --- Scripting ---------------------------------------------------------------------------------

  /** Sends a message as the backend. */
  emit(message: JsonRpcMessage): void {
    this.onmessage?.(message);
  }

  /** Answers the request the backend got under `id`. */
  answer(id: JsonRpcResponse['id'], answer: NonNullable<FakeAnswer>): void {
    if (this.state !== 'running') return;
    this.emit({ jsonrpc: '2.0', id, ...answer } as JsonRpcResponse);
  }

  /** The process died; a restart is due (call `restart`). */
  down(reason = 'backend exited (code 1)'): void {
    this.state = 'restarting';
    this.ondown?.(reason);
  }

  /** The restart after `down` happened. */
  restart(): void {
    this.state = 'running';
    this.#up();
  }

  /** The process died once too often: given up for a cool-down. */
  crashLoop(reason: string): void {
    this.ondown?.(reason);
    this.state = 'unhealthy';
    this.unhealthyReason = `${reason}; next attempt in 60s`;
    this.onunhealthy?.(this.unhealthyReason);
  }

  /** The requests written for `method`, oldest first. */
  requests(method: string): JsonRpcRequest[] {
    return this.sent.filter((m): m is JsonRpcRequest => 'method' in m && 'id' in m && m.method === method);
  }

  /** The notifications written for `method`, oldest first. */
  notifications(method: string): JsonRpcMessage[] {
    return this.sent.filter((m) => 'method' in m && !('id' in m) && m.method === method);
  }

  #up(): void {
    this.starts++;
    this.pid = 1000 + this.starts;
    this.onstarted?.(this.starts > 1);
  }
}
