// Starts a fresh gateway session behind the client's back after the old one ended (404): replays
// the client's original initialize, keeps its answer (the client already has one), then sends
// notifications/initialized, then restores the client's log level and subscriptions. The client never
// notices, apart from state only the server itself held.

import {
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import { sanitize } from '../util/sanitize.ts';
import type { GatewayConnection } from './connection.ts';
import type { BridgeLog } from './diagnostics.ts';
import { GatewayError } from './errors.ts';

export interface ReinitializeOptions {
  client: GatewayConnection;
  /** The client's initialize request, exactly as it first sent it. */
  initialize: JsonRpcRequest;
  /** Protocol version of the session being replaced, to warn when the server now picks another. */
  previousVersion: string | undefined;
  /** Requests that restore what the old session knew (log level, subscriptions); answers are not forwarded. */
  replay?: readonly JsonRpcRequest[];
  /** Anything else the gateway sends meanwhile (logging, list_changed) still goes to the client. */
  forward(message: JsonRpcMessage): void;
  signal: AbortSignal;
  log: BridgeLog;
  retryDelaysMs: readonly number[];
  /** How long to wait for a gateway that refuses connections (still restarting). */
  outageWaitMs?: number;
}

/** Resolves with the new session's protocol version; throws a GatewayError when the gateway refuses. */
export async function reinitialize(options: ReinitializeOptions): Promise<string | undefined> {
  const { client, initialize, signal, log, retryDelaysMs } = options;
  const outageWaitMs = options.outageWaitMs ?? 0;
  client.resetSession();
  let answer: JsonRpcResponse | undefined;
  await client.deliver(initialize, {
    onMessage: (message) => {
      if (isResponse(message) && message.id === initialize.id) answer = message;
      else options.forward(message);
    },
    answered: () => answer !== undefined,
    signal,
    log,
    retryDelaysMs,
    outageWaitMs,
  });
  if (answer === undefined) throw new GatewayError('protocol', 'the gateway did not answer initialize');
  if ('error' in answer) {
    throw new GatewayError(
      'rejected',
      `the gateway refused to re-initialize: ${sanitize(answer.error.message)}`,
    );
  }
  const version =
    typeof answer.result.protocolVersion === 'string' ? answer.result.protocolVersion : undefined;
  if (version !== undefined) client.setProtocolVersion(version);
  if (options.previousVersion !== undefined && version !== options.previousVersion) {
    log.warn(
      `the new session speaks protocol ${sanitize(version ?? 'unknown', 40)} instead of ${options.previousVersion}`,
    );
  }
  await client.deliver(
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { onMessage: options.forward, answered: () => true, signal, log, retryDelaysMs },
  );
  for (const request of options.replay ?? []) await restore(request, options);
  return version;
}

/** Sends one replayed request; a refusal is logged, since the client's own calls can still succeed. */
async function restore(request: JsonRpcRequest, options: ReinitializeOptions): Promise<void> {
  const { client, signal, log, retryDelaysMs } = options;
  let answer: JsonRpcResponse | undefined;
  await client.deliver(request, {
    onMessage: (message) => {
      if (isResponse(message) && message.id === request.id) answer = message;
      else options.forward(message);
    },
    answered: () => answer !== undefined,
    signal,
    log,
    retryDelaysMs,
  });
  if (answer !== undefined && 'error' in answer) {
    log.warn(`the new session refused ${request.method}: ${sanitize(answer.error.message)}`);
  }
}
