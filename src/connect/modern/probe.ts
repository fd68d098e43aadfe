// A `server/discover` that arrives before the era is known (spec basic/transports/stdio.mdx,
// "Backward Compatibility"): answered fast and without side effects. One modern POST with the
// credentials at hand — never a sign-in, never a session — bounded by a short timeout; a
// DiscoverResult (or a recognized modern error such as -32022) is relayed, anything else becomes the
// "Method not found" an SDK 1.x server gives, so a dual-era client falls back to `initialize`.

import { errorText } from '../../errors.ts';
import {
  ErrorCode,
  errorResponse,
  isInvalid,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  validateMessage,
} from '../../protocol/jsonrpc.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { claimedVersion, routingHeaders } from './envelope.ts';
import type { ModernHttp } from './http.ts';

/** Long enough for a gateway across the internet, short next to a client's probe timeout. */
export const PROBE_TIMEOUT_MS = 1_500;

/** Modern errors that are era evidence (spec basic/versioning.mdx): relayed, not turned into -32601. */
const MODERN_ERROR_CODES = new Set([-32020, -32021, -32022]);

export interface ProbeOptions {
  http: ModernHttp;
  log: BridgeLog;
  /** Aborted when the answer is no longer wanted (the client chose an era, the bridge closes). */
  signal: AbortSignal;
  timeoutMs?: number;
}

/** The answer to the probe: the server's own when it is modern, else -32601. Never throws. */
export async function answerProbe(request: JsonRpcRequest, options: ProbeOptions): Promise<JsonRpcMessage> {
  const legacy = errorResponse(request.id, ErrorCode.MethodNotFound, 'Method not found');
  const version = claimedVersion(request);
  if (version === undefined) return legacy;
  const started = Date.now();
  const signal = AbortSignal.any([
    options.signal,
    AbortSignal.timeout(options.timeoutMs ?? PROBE_TIMEOUT_MS),
  ]);
  try {
    // The signal bounds the credentials too: an OAuth refresh may wait on another bridge's lock.
    const reply = await untilAborted(
      options.http.post(request, routingHeaders(request, version), { signal, interactive: false }),
      signal,
    );
    let answer: JsonRpcMessage | undefined;
    if (reply.kind === 'json') answer = reply.messages.find((message) => isModernAnswer(message, request));
    else if (reply.kind === 'stream') {
      for await (const event of reply.events) {
        const message = parseEvent(event.data);
        if (message && isModernAnswer(message, request)) {
          answer = message;
          break;
        }
      }
      await reply.events.return(undefined);
    }
    const ms = Date.now() - started;
    if (answer) {
      options.log.debug(`server/discover: the server answered as a 2026-07-28 server in ${ms} ms`);
      return { ...answer, id: request.id };
    }
    options.log.debug(`server/discover: no modern answer in ${ms} ms; answered "Method not found"`);
  } catch (error) {
    options.log.debug(`server/discover: ${errorText(error)}; answered "Method not found"`);
  }
  return legacy;
}

/** The promise's outcome, or the signal's reason as soon as it aborts (the work goes on unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function isModernAnswer(message: JsonRpcMessage, request: JsonRpcRequest): boolean {
  if (!isResponse(message) || (message.id !== request.id && message.id !== null)) return false;
  if ('error' in message) return MODERN_ERROR_CODES.has(message.error.code);
  return Array.isArray(message.result.supportedVersions);
}

function parseEvent(data: string): JsonRpcMessage | undefined {
  if (data.trim() === '') return undefined;
  try {
    const checked = validateMessage(JSON.parse(data));
    return isInvalid(checked) ? undefined : checked;
  } catch {
    return undefined;
  }
}
