// Delivers one client message to the gateway and reads back what the gateway streams for it:
// quick retries when the gateway cannot be reached, and SSE resumption (GET + Last-Event-ID) when a
// response stream ends before the answer (network drop, or a 2025-11-25 server polling on purpose).

import { isInvalid, isRequest, type JsonRpcMessage, validateMessage } from '../protocol/jsonrpc.ts';
import type { BridgeLog } from './diagnostics.ts';
import { GatewayError } from './errors.ts';
import type { GatewayClient, Reply } from './gateway-client.ts';
import type { SseEvent } from './sse.ts';

export interface DeliveryHooks {
  /** Every message the gateway sends back while this one is delivered, the answer included. */
  onMessage(message: JsonRpcMessage): void;
  /** True once nobody waits for the answer any more (answered, timed out, cancelled). */
  answered(): boolean;
  signal: AbortSignal;
  log: BridgeLog;
  /** Waits before each retry of a failed POST; its length is the number of retries. */
  retryDelaysMs: readonly number[];
}

/** Resumption gives up after this many reconnects in a row that brought nothing. */
const MAX_RESUME_ATTEMPTS = 5;
const DEFAULT_RESUME_DELAY_MS = 500;
/** A server's Retry-After longer than this is not "a quick retry": fail and let the client decide. */
const MAX_RETRY_AFTER_MS = 5_000;

/** Resolves when the message was accepted and, for a request, its answer was seen or is no longer wanted. */
export async function deliver(
  client: GatewayClient,
  message: JsonRpcMessage,
  hooks: DeliveryHooks,
): Promise<void> {
  const reply = await postWithRetries(client, message, hooks);
  if (reply.kind === 'accepted') return;
  if (reply.kind === 'json') {
    for (const item of reply.messages) hooks.onMessage(item);
    if (isRequest(message) && !hooks.answered()) {
      throw new GatewayError('protocol', 'the gateway answered without a response to this request');
    }
    return;
  }
  if (!isRequest(message)) {
    // A stream for a notification or response is unusual but legal: forward what it carries.
    await readStream(reply.events, hooks, () => false);
    return;
  }
  await readUntilAnswered(client, reply.events, hooks);
}

async function postWithRetries(
  client: GatewayClient,
  message: JsonRpcMessage,
  hooks: DeliveryHooks,
): Promise<Reply> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.post(message, hooks.signal);
    } catch (error) {
      const delay = hooks.retryDelaysMs[attempt];
      if (!(error instanceof GatewayError) || !error.retryable || delay === undefined || hooks.signal.aborted)
        throw error;
      if (error.retryAfterMs !== undefined && error.retryAfterMs > MAX_RETRY_AFTER_MS) throw error;
      hooks.log.debug(`${error.message}; retrying (${attempt + 1}/${hooks.retryDelaysMs.length})`);
      await sleep(Math.max(delay, error.retryAfterMs ?? 0), hooks.signal);
    }
  }
}

/** Reads a request's response stream, resuming it from the last event id until the answer arrives. */
async function readUntilAnswered(
  client: GatewayClient,
  first: AsyncGenerator<SseEvent>,
  hooks: DeliveryHooks,
): Promise<void> {
  const cursor: StreamCursor = { lastEventId: undefined, retryMs: undefined };
  let events: AsyncGenerator<SseEvent> | undefined = first;
  let fruitless = 0;
  for (;;) {
    let progressed = false;
    if (events) {
      const outcome = await readStream(events, hooks, () => hooks.answered(), cursor);
      progressed = outcome.received > 0;
      if (hooks.answered() || hooks.signal.aborted) return;
      if (outcome.error) hooks.log.debug(`response stream broke: ${describe(outcome.error)}`);
    }
    if (cursor.lastEventId === undefined) {
      throw new GatewayError(
        'stream-lost',
        `the gateway at ${client.displayUrl} closed the response stream before answering`,
      );
    }
    fruitless = progressed ? 0 : fruitless + 1;
    if (fruitless >= MAX_RESUME_ATTEMPTS) {
      throw new GatewayError(
        'stream-lost',
        `lost the response stream from ${client.displayUrl} and could not resume it`,
      );
    }
    await sleep(cursor.retryMs ?? DEFAULT_RESUME_DELAY_MS * 2 ** Math.max(0, fruitless - 1), hooks.signal);
    try {
      events = await client.listen(cursor.lastEventId, hooks.signal);
      hooks.log.debug(`resumed the response stream after event ${cursor.lastEventId}`);
    } catch (error) {
      if (hooks.signal.aborted) throw error;
      // The session is gone: the caller re-initializes and re-sends; no point retrying here.
      if (error instanceof GatewayError && !error.retryable && error.kind !== 'protocol') throw error;
      hooks.log.debug(`could not resume the response stream: ${describe(error)}`);
      events = undefined;
    }
  }
}

interface StreamCursor {
  lastEventId: string | undefined;
  retryMs: number | undefined;
}

/** Forwards the messages of one SSE stream until it ends, breaks or `stop()` says enough. */
async function readStream(
  events: AsyncGenerator<SseEvent>,
  hooks: DeliveryHooks,
  stop: () => boolean,
  cursor: StreamCursor = { lastEventId: undefined, retryMs: undefined },
): Promise<{ received: number; error: unknown }> {
  let received = 0;
  try {
    for await (const event of events) {
      received++;
      if (event.id !== undefined) cursor.lastEventId = event.id;
      if (event.retry !== undefined) cursor.retryMs = event.retry;
      if (event.event === 'message' && event.data.trim() !== '') forwardEventData(event.data, hooks);
      if (stop()) break;
    }
    return { received, error: undefined };
  } catch (error) {
    return { received, error };
  } finally {
    // Leaving the loop early must release the HTTP stream.
    await events.return(undefined).catch(() => undefined);
  }
}

function forwardEventData(data: string, hooks: DeliveryHooks): void {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    hooks.log.warn('the gateway sent an event that is not JSON; skipped');
    return;
  }
  const checked = validateMessage(value);
  if (isInvalid(checked)) {
    hooks.log.debug(`skipped an invalid message from the gateway: ${checked.reason}`);
    return;
  }
  hooks.onMessage(checked);
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
