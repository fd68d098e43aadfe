// Keeps the standalone GET event stream open for one session, so server-initiated messages
// (list_changed, logging, sampling) reach the client between requests. Reconnects with backoff and
// Last-Event-ID for as long as the bridge runs; a 404 hands over to session recovery.

import { errorText } from '../errors.ts';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { isInvalid, validateMessage } from '../protocol/jsonrpc.ts';
import type { EventStreamHooks } from './connection.ts';
import { sleep } from './delivery.ts';
import { GatewayError } from './errors.ts';
import type { GatewayClient } from './gateway-client.ts';

const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

/** Runs until the signal aborts or the server says it has no such stream; never throws. */
export async function runEventStream(client: GatewayClient, hooks: EventStreamHooks): Promise<void> {
  let lastEventId: string | undefined;
  let retryMs: number | undefined;
  let failures = 0;
  let lossReported = false;
  while (!hooks.signal.aborted) {
    const attemptStarted = Date.now();
    try {
      const events = await client.listen(lastEventId, hooks.signal);
      if (lossReported) hooks.log.info('event stream from the gateway is back');
      lossReported = false;
      hooks.log.debug('event stream open');
      let received = 0;
      for await (const event of events) {
        received++;
        if (event.id !== undefined) lastEventId = event.id;
        if (event.retry !== undefined) retryMs = event.retry;
        if (event.event !== 'message' || event.data.trim() === '') continue;
        const message = parse(event.data);
        if (message) await hooks.onMessage(message, event.data);
        else hooks.log.debug('skipped an invalid message on the event stream');
      }
      // A stream that closes without a word counts as a failure, so a server that does so at once
      // is not hammered with reconnects.
      failures = received > 0 ? 0 : failures + 1;
      hooks.log.debug('event stream ended; reopening');
    } catch (error) {
      if (hooks.signal.aborted) return;
      if (error instanceof GatewayError) {
        if (error.kind === 'not-supported') {
          hooks.log.debug('the gateway offers no standalone event stream');
          return;
        }
        if (error.kind === 'session-expired') {
          await recover(hooks);
          if (hooks.signal.aborted) return;
        } else if (error.kind === 'unauthorized' || error.kind === 'forbidden') {
          hooks.log.warn(`event stream refused: ${error.message}`);
          return;
        } else if (error.kind === 'rejected') {
          // Some servers (stateless ones) answer GET with 400 rather than 405: no stream, no alarm.
          hooks.log.debug(`no event stream: ${error.message}`);
          return;
        }
      }
      failures++;
      const note = `event stream from the gateway lost (${errorText(error)}); reconnecting`;
      if (lossReported) hooks.log.debug(note);
      else hooks.log.info(note);
      lossReported = true;
    }
    const backoff = failures === 0 ? 0 : Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** (failures - 1));
    // An attempt that hung until the idle timeout (a black hole) already waited that long: after the
    // network heals, the stream is back within about one idle timeout, not that plus the backoff.
    const waited = Date.now() - attemptStarted;
    try {
      await sleep(Math.max(backoff - waited, retryMs ?? 0, 0), hooks.signal);
    } catch {
      return;
    }
  }
}

async function recover(hooks: EventStreamHooks): Promise<void> {
  try {
    await hooks.onSessionExpired();
  } catch (error) {
    hooks.log.debug(`could not re-initialize yet: ${errorText(error)}`);
  }
}

function parse(data: string): JsonRpcMessage | undefined {
  try {
    const checked = validateMessage(JSON.parse(data));
    return isInvalid(checked) ? undefined : checked;
  } catch {
    return undefined;
  }
}
