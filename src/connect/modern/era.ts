// Which MCP era the bridge's stdio client speaks, decided once by its first message (as the SDK's
// dual-era stdio servers do): a request claiming a version in `_meta` makes the rest of the process
// modern (link.ts), anything else keeps the 2025 path. A `server/discover` probe before that decides
// nothing: it is answered on the side (probe.ts), and withdrawn as -32601 once the client chooses
// `initialize` (Claude Code may send that before the probe's answer arrives).

import {
  ErrorCode,
  errorResponse,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../protocol/jsonrpc.ts';
import { cancelledRequestId, idKey } from '../../protocol/mcp.ts';
import { sanitize } from '../../util/sanitize.ts';
import type { BridgeLog } from '../diagnostics.ts';
import type { GatewayClientOptions } from '../gateway-client.ts';
import type { MessageText } from '../output.ts';
import { claimedVersion } from './envelope.ts';
import { ModernHttp } from './http.ts';
import { ModernLink } from './link.ts';
import { answerProbe } from './probe.ts';

export interface EraGateOptions {
  http: GatewayClientOptions;
  /** False where 2026-07-28 cannot run (not Streamable HTTP): probes get -32601 at once. */
  modernPossible: boolean;
  displayUrl: string;
  write(message: JsonRpcMessage, raw?: MessageText): Promise<void> | undefined;
  /** Runs a piece of work the bridge waits for when it closes. */
  track(work: Promise<void>): void;
  log: BridgeLog;
  requestTimeoutMs: number;
  retryDelaysMs: readonly number[];
  outageWaitMs: number;
  /** Aborted when the bridge closes. */
  signal: AbortSignal;
}

export class EraGate {
  readonly #options: EraGateOptions;
  #era: 'undecided' | 'legacy' | 'modern' = 'undecided';
  #http: ModernHttp | undefined;
  #modern: ModernLink | undefined;
  /** Probes waiting for the server, by id; an entry removed before the answer means "cancelled". */
  readonly #probes = new Map<string, AbortController>();

  constructor(options: EraGateOptions) {
    this.#options = options;
  }

  /** The modern relay, once the client turned out to speak 2026-07-28. */
  get modern(): ModernLink | undefined {
    return this.#modern;
  }

  /**
   * Looks at a message while the era is open: a probe is answered here, a cancel of one withdraws
   * it, and the first other request (or a notification with a claim) decides. True when handled here.
   */
  handledBefore(message: JsonRpcMessage): boolean {
    if (this.#era !== 'undecided') return false;
    if (isRequest(message) && message.method === 'server/discover') {
      this.#options.track(this.#answerProbe(message));
      return true;
    }
    if (isNotification(message) && message.method === 'notifications/cancelled') {
      const requestId = cancelledRequestId(message.params);
      const probe = requestId === undefined ? undefined : this.#probes.get(idKey(requestId));
      if (requestId !== undefined && probe) {
        this.#probes.delete(idKey(requestId));
        probe.abort();
        return true;
      }
    }
    const version = claimedVersion(message);
    // A 2025 client's notification before initialize decides nothing, as it did before eras.
    if (isNotification(message) && version === undefined) return false;
    if (version !== undefined && !isResponse(message) && this.#options.modernPossible) {
      this.#era = 'modern';
      this.#modern = new ModernLink({ ...this.#options, http: this.#client(), version });
      this.#options.log.info(
        `the client speaks MCP ${sanitize(version, 40)}: one POST per request to ${this.#options.displayUrl}`,
      );
      return false;
    }
    this.#era = 'legacy';
    // A probe still out is answered "Method not found" now: the client has chosen initialize.
    for (const probe of this.#probes.values()) probe.abort();
    return false;
  }

  /** Releases the modern client's connections; idempotent. */
  async close(): Promise<void> {
    for (const probe of this.#probes.values()) probe.abort();
    await this.#http?.close();
  }

  /** Answers a pre-era `server/discover`; never starts a sign-in or a session. */
  async #answerProbe(request: JsonRpcRequest): Promise<void> {
    const key = idKey(request.id);
    if (this.#probes.has(key)) {
      this.#options.write(
        errorResponse(request.id, ErrorCode.InvalidRequest, 'Invalid request: this id is already in use'),
      );
      return;
    }
    if (!this.#options.modernPossible) {
      this.#options.write(errorResponse(request.id, ErrorCode.MethodNotFound, 'Method not found'));
      return;
    }
    const withdrawn = new AbortController();
    this.#probes.set(key, withdrawn);
    const started = Date.now();
    try {
      const answer = await answerProbe(request, {
        http: this.#client(),
        log: this.#options.log,
        signal: AbortSignal.any([this.#options.signal, withdrawn.signal]),
      });
      // Cancelled by the client, or the bridge is closing: nobody wants the answer.
      if (this.#probes.get(key) !== withdrawn || this.#options.signal.aborted) return;
      const verdict = 'error' in answer ? 'no 2026-07-28 answer' : 'a 2026-07-28 server';
      this.#options.log.info(`server/discover answered in ${Date.now() - started} ms (${verdict})`);
      this.#options.write(answer);
    } finally {
      if (this.#probes.get(key) === withdrawn) this.#probes.delete(key);
    }
  }

  #client(): ModernHttp {
    this.#http ??= new ModernHttp(this.#options.http);
    return this.#http;
  }
}
