// Delivers one client message to the gateway and reads back what the gateway streams for it:
// retries only while the gateway certainly has not seen it (no connection, 429/503 at the door; a
// restart is waited out), SSE resumption (GET + Last-Event-ID) when a response stream ends before the
// answer, a re-send in the same session of a request whose answer was lost when the gateway promised
// to answer a repeat without running it again (Mcp-Relay-Retries), and otherwise an honest "outcome
// unknown" for a request that may have run.

import { errorText } from '../errors.ts';
import {
  isInvalid,
  isRequest,
  type JsonRpcMessage,
  type JsonRpcRequest,
  validateMessage,
} from '../protocol/jsonrpc.ts';
import { plainResponseId } from '../protocol/raw-response.ts';
import type { DeliveryHooks } from './connection.ts';
import { GatewayError } from './errors.ts';
import type { GatewayClient, Reply } from './gateway-client.ts';
import { RAW_PASS_THROUGH_CHARS } from './output.ts';
import type { SseEvent } from './sse.ts';

/** Resumption gives up after this many reconnects in a row that brought nothing. */
const MAX_RESUME_ATTEMPTS = 5;
const DEFAULT_RESUME_DELAY_MS = 500;
/**
 * Waits before each re-send of a request whose answer was lost; its length bounds the re-sends. More
 * than one, because a re-send into a network that is still down (a black hole) is lost as well; each
 * is the same request in the same session, which the gateway joins to the first or answers from memory.
 * Fewer than the gateway's `MAX_JOINED_REPLIES` (8) replies per call.
 */
const RESEND_DELAYS_MS = [250, 500, 1_000, 2_000, 4_000];
/** A re-send goes out only while the gateway keeps the answer this much longer (it may be slow to arrive). */
const RESEND_MARGIN_MS = 10_000;
/** A server's Retry-After longer than this is not "a quick retry": fail and let the client decide. */
const MAX_RETRY_AFTER_MS = 5_000;

/** Resolves when the message was accepted and, for a request, its answer was seen or is no longer wanted. */
export async function deliver(
  client: GatewayClient,
  message: JsonRpcMessage,
  hooks: DeliveryHooks,
): Promise<void> {
  if (!isRequest(message)) {
    const reply = await postWithRetries(client, message, hooks);
    if (reply.kind === 'json') await forwardJson(reply, hooks);
    // A stream for a notification or response is unusual but legal: forward what it carries.
    else if (reply.kind === 'stream') await readStream(reply.events, hooks, () => false);
    return;
  }
  // A re-send must reach the session that may have run the request: never a replacement session.
  const session = client.sessionId;
  const firstSent = Date.now();
  let lost: GatewayError;
  try {
    await deliverRequest(client, message, hooks);
    return;
  } catch (error) {
    if (!(error instanceof GatewayError) || error.kind !== 'outcome-unknown' || hooks.signal.aborted)
      throw error;
    lost = error;
  }
  for (let resends = 0; ; resends++) {
    const refusal = resendRefusal(client, session, firstSent, resends);
    if (refusal !== undefined) {
      if (resends === 0) throw lost;
      throw outcomeUnknown(message, lost, `${resentSoFar(resends)}, ${refusal}`);
    }
    const delay = RESEND_DELAYS_MS[resends] ?? 0;
    hooks.log.info(
      `${describeRequest(message)}: ${errorText(lost.cause ?? lost)}; sending it again in the same session in ${delay} ms (the gateway answers a repeat without running it again)`,
    );
    await sleep(delay, hooks.signal);
    if (client.sessionId !== session) {
      throw outcomeUnknown(message, lost, `${resentSoFar(resends)} and then the session ended`);
    }
    try {
      await deliverRequest(client, message, hooks, session);
      hooks.log.info(`${describeRequest(message)}: answered after ${resends + 1} re-send(s)`);
      return;
    } catch (error) {
      if (hooks.signal.aborted) throw error;
      // Whatever the re-send met (a 404 included: the session and its memory are gone), the first may have run.
      lost = error instanceof GatewayError ? error : new GatewayError('protocol', errorText(error));
      if (lost.kind === 'session-expired') {
        throw outcomeUnknown(
          message,
          lost,
          `sent again ${resends + 1}× but the gateway session ended (a restart), so it is not sent into a new one`,
        );
      }
      // A refusal (401, 403, another 4xx) will not change by sending again.
      if (!RESENDABLE.has(lost.kind)) throw outcomeUnknown(message, lost, `sent again ${resends + 1}×`);
    }
  }
}

/**
 * Why a request whose answer was lost may not be sent again, or undefined when it may: only into the
 * same session, while the gateway promised to keep its answer, a bounded number of times.
 */
function resendRefusal(
  client: GatewayClient,
  session: string | undefined,
  firstSent: number,
  resends: number,
): string | undefined {
  if (session === undefined || client.sessionId !== session) return 'and then the session ended';
  const window = client.promises.retryWindowMs;
  if (window === undefined) return 'and then the gateway stopped promising to keep answers';
  if (resends >= RESEND_DELAYS_MS.length) return 'and every answer was lost';
  const delay = RESEND_DELAYS_MS[resends] ?? 0;
  if (Date.now() - firstSent + delay + RESEND_MARGIN_MS > window)
    return 'until the gateway would no longer keep the answer';
  return undefined;
}

/** Failures of a re-send that another re-send may get past: the network, the gateway busy, a lost stream. */
const RESENDABLE = new Set(['outcome-unknown', 'unreachable', 'unavailable', 'stream-lost', 'protocol']);

function resentSoFar(resends: number): string {
  return resends === 0 ? 'not sent again' : `sent again ${resends}× in the same session`;
}

function describeRequest(request: JsonRpcRequest): string {
  return `${request.method.slice(0, 60)} (${String(request.id).slice(0, 40)})`;
}

/**
 * Sends a request once and reads its answer; a lost answer becomes an "outcome unknown" error. A
 * re-send is `pinned` to the session the first one went to: it may only ever go there.
 */
async function deliverRequest(
  client: GatewayClient,
  message: JsonRpcRequest,
  hooks: DeliveryHooks,
  pinned?: string,
): Promise<void> {
  let reply: Reply;
  try {
    reply = await postWithRetries(client, message, hooks, pinned);
  } catch (error) {
    throw mayHaveRun(error, hooks.signal) ? outcomeUnknown(message, error) : error;
  }
  // From here on the gateway has the request: whatever goes wrong, it may have run.
  try {
    if (reply.kind === 'stream') {
      await readUntilAnswered(client, reply.events, hooks);
      return;
    }
    if (reply.kind === 'json') await forwardJson(reply, hooks);
    if (!hooks.answered()) {
      throw new GatewayError('protocol', 'the gateway answered without a response to this request');
    }
  } catch (error) {
    if (hooks.signal.aborted) throw error;
    throw outcomeUnknown(message, error);
  }
}

/** True when a failed POST may still have reached the backend: no clear "not sent" and no refusal. */
function mayHaveRun(error: unknown, signal: AbortSignal): boolean {
  if (signal.aborted) return false; // answered, timed out or cancelled: nobody reads this error
  if (!(error instanceof GatewayError)) return true;
  if (error.unsent) return false;
  return (
    error.kind === 'unreachable' ||
    error.kind === 'unavailable' ||
    error.kind === 'protocol' ||
    error.kind === 'stream-lost'
  );
}

/**
 * The honest answer for a request that may have run: say so. `resent` says what re-sending it in the
 * same session did; without it, it was not sent again (the gateway promised no memory for repeats).
 */
export function outcomeUnknown(request: JsonRpcRequest, cause: unknown, resent?: string): GatewayError {
  if (resent === undefined && cause instanceof GatewayError && cause.kind === 'outcome-unknown') return cause;
  const what = request.method === 'tools/call' ? 'the tool' : `${request.method.slice(0, 60)}`;
  const reason = cause instanceof GatewayError && cause.kind === 'outcome-unknown' ? cause.cause : cause;
  const after =
    resent === undefined ? 'not sent again, so it cannot run twice' : `${resent}; it ran at most once`;
  return new GatewayError(
    'outcome-unknown',
    `the answer was lost after the request was sent (${errorText(reason)}): the outcome is unknown and ${what} may have run; ${after}`,
    { cause: reason },
  );
}

async function postWithRetries(
  client: GatewayClient,
  message: JsonRpcMessage,
  hooks: DeliveryHooks,
  pinned?: string,
): Promise<Reply> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    // Checked before every attempt, not once: while this one waits out a restart (connection refused),
    // the bridge may start a new session, and a re-send that went there would run the call again.
    // post() reads the session id synchronously, so nothing can change in between.
    if (pinned !== undefined && client.sessionId !== pinned) {
      throw new GatewayError('session-expired', 'the gateway session ended before it could be sent again', {
        unsent: true,
      });
    }
    try {
      return await client.post(message, hooks.signal);
    } catch (error) {
      if (!(error instanceof GatewayError) || !error.retryable || hooks.signal.aborted) throw error;
      // A request the gateway may have seen is never sent twice (DESIGN: exactly once, or an error).
      if (isRequest(message) && !error.unsent) throw error;
      if (error.retryAfterMs !== undefined && error.retryAfterMs > MAX_RETRY_AFTER_MS) throw error;
      const delay = retryDelay(error, attempt, Date.now() - started, hooks);
      if (delay === undefined) throw error;
      hooks.log.debug(`${error.message}; retrying (attempt ${attempt + 1})`);
      await sleep(Math.max(delay, error.retryAfterMs ?? 0), hooks.signal);
    }
  }
}

/**
 * The wait before the next attempt, or undefined to give up: the quick retries first, then, while no
 * connection can be made at all (a gateway restarting), the last delay again until `outageWaitMs`.
 */
export function retryDelay(
  error: GatewayError,
  attempt: number,
  elapsedMs: number,
  hooks: Pick<DeliveryHooks, 'retryDelaysMs' | 'outageWaitMs'>,
): number | undefined {
  const quick = hooks.retryDelaysMs[attempt];
  if (quick !== undefined) return quick;
  const last = hooks.retryDelaysMs.at(-1);
  if (last === undefined || error.kind !== 'unreachable' || !error.unsent) return undefined;
  return elapsedMs + last <= (hooks.outageWaitMs ?? 0) ? last : undefined;
}

/** Reads a request's response stream, resuming it from the last event id until the answer arrives. */
async function readUntilAnswered(
  client: GatewayClient,
  first: AsyncGenerator<SseEvent>,
  hooks: DeliveryHooks,
): Promise<void> {
  const cursor: StreamCursor = { lastEventId: undefined, retryMs: undefined };
  // Event ids belong to the session the request was sent in; a replacement session cannot resume them.
  const session = client.sessionId;
  let events: AsyncGenerator<SseEvent> | undefined = first;
  let fruitless = 0;
  for (;;) {
    let progressed = false;
    if (events) {
      const outcome = await readStream(events, hooks, () => hooks.answered(), cursor);
      progressed = outcome.received > 0;
      if (hooks.answered() || hooks.signal.aborted) return;
      if (outcome.error) hooks.log.debug(`response stream broke: ${errorText(outcome.error)}`);
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
    if (client.sessionId !== session) {
      throw new GatewayError(
        'stream-lost',
        'the gateway session ended (a restart) before the answer arrived',
      );
    }
    try {
      events = await client.listen(cursor.lastEventId, hooks.signal);
      hooks.log.debug(`resumed the response stream after event ${cursor.lastEventId}`);
    } catch (error) {
      if (hooks.signal.aborted) throw error;
      // The session is gone (a restart): no point retrying here; the request may have run.
      if (error instanceof GatewayError && !error.retryable && error.kind !== 'protocol') throw error;
      hooks.log.debug(`could not resume the response stream: ${errorText(error)}`);
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
      if (event.event === 'message' && event.data.trim() !== '') await forwardEventData(event.data, hooks);
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

async function forwardJson(reply: Extract<Reply, { kind: 'json' }>, hooks: DeliveryHooks): Promise<void> {
  const [only] = reply.messages;
  if (reply.messages.length === 1 && only !== undefined) await hooks.onMessage(only, reply.raw);
  else for (const item of reply.messages) await hooks.onMessage(item);
}

async function forwardEventData(data: string, hooks: DeliveryHooks): Promise<void> {
  // A large result that plainly is one response line goes out as the gateway's text, unparsed: only
  // its id is needed here, and stdout gets `data` itself (see output.ts).
  const id = data.length >= RAW_PASS_THROUGH_CHARS ? plainResponseId(data) : undefined;
  if (id !== undefined) {
    await hooks.onMessage({ jsonrpc: '2.0', id, result: unparsedResult(data) }, data);
    return;
  }
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
  await hooks.onMessage(checked, data);
}

/** Stands for the result of an unparsed response: serializing it the ordinary way still gives the right text. */
function unparsedResult(data: string): Record<string, unknown> {
  return { toJSON: () => (JSON.parse(data) as { result: unknown }).result };
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
