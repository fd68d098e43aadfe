// The transports where one long-lived channel is the session — the legacy HTTP+SSE transport (a GET
// stream, messages POSTed beside it) and a WebSocket — as a GatewayConnection. Their recovery is one
// rule: the channel dropped, so the session is gone (neither can resume). A request written before the
// drop may have run (an honest "outcome unknown", never sent again); a message not yet written fails
// as 'session-expired', unsent, so the bridge re-initializes on a new channel and sends it there; with
// nothing in flight the listener re-initializes at once, with backoff, so server messages keep coming.

import { errorText } from '../errors.ts';
import {
  isInvalid,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  validateMessage,
} from '../protocol/jsonrpc.ts';
import { idKey } from '../protocol/mcp.ts';
import type { DeliveryHooks, EventStreamHooks, GatewayConnection, TransportKind } from './connection.ts';
import { outcomeUnknown, retryDelay, sleep } from './delivery.ts';
import type { BridgeLog } from './diagnostics.ts';
import { GatewayError } from './errors.ts';

/** What the server sent, in order; a returned promise holds back reading until it settles. */
export type Receive = (message: JsonRpcMessage, raw: string) => Promise<void> | undefined;

/** One open channel to the server: one session. */
export interface MessageChannel {
  /** The server's session id (legacy SSE), or one made up to tell sessions apart in the log. */
  readonly sessionId: string;
  /**
   * Writes one message. Rejects with a GatewayError: 'session-expired' and `unsent` when the channel is
   * already down (nothing was written), else whatever the transport knows (see connection.ts).
   */
  send(text: string, signal: AbortSignal): Promise<void>;
  /** Settles once the channel is down, with why. */
  readonly ended: Promise<string>;
  /** Closes the channel (the session ends with it); idempotent. */
  close(): void;
}

/** How a transport opens its channel. */
export interface ChannelOpener {
  readonly transport: TransportKind;
  readonly displayUrl: string;
  /** Opens a channel; rejects with a GatewayError, `unsent` and `retryable` when no connection was made. */
  open(receive: Receive, signal: AbortSignal, log: BridgeLog): Promise<MessageChannel>;
  /** Releases what the opener holds (connection pools); idempotent. */
  close(): Promise<void>;
}

interface Waiter {
  readonly hooks: DeliveryHooks;
  readonly channel: MessageChannel;
  resolve(): void;
  reject(error: unknown): void;
}

/** Server messages kept while nobody listens yet (between initialize and the listener); more are dropped. */
const MAX_EARLY_MESSAGES = 100;
const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export class ChannelConnection implements GatewayConnection {
  readonly #opener: ChannelOpener;
  readonly #log: BridgeLog;
  readonly #root = new AbortController();
  /** Requests written on a channel and waiting for their answer, by id. */
  readonly #waiting = new Map<string, Waiter>();
  readonly #early: { message: JsonRpcMessage; raw: string }[] = [];
  #channel: MessageChannel | undefined;
  /** Set when the channel dropped; cleared by the next initialize. */
  #lost: (() => void) | undefined;
  #lostSignal: Promise<void> | undefined;
  #listener: EventStreamHooks | undefined;
  #protocolVersion: string | undefined;

  constructor(opener: ChannelOpener, log: BridgeLog) {
    this.#opener = opener;
    this.#log = log;
  }

  get transport(): TransportKind {
    return this.#opener.transport;
  }

  get displayUrl(): string {
    return this.#opener.displayUrl;
  }

  get sessionId(): string | undefined {
    return this.#channel?.sessionId;
  }

  get protocolVersion(): string | undefined {
    return this.#protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  resetSession(): void {
    const channel = this.#channel;
    this.#channel = undefined;
    this.#protocolVersion = undefined;
    if (channel) {
      this.#dropped(channel, 'a new session was started');
      channel.close();
    }
  }

  async deliver(message: JsonRpcMessage, hooks: DeliveryHooks): Promise<void> {
    const initialize = isRequest(message) && message.method === 'initialize';
    let channel = this.#channel;
    if (initialize && channel === undefined) channel = await this.#openWithRetries(hooks);
    if (channel === undefined) {
      throw new GatewayError(
        'session-expired',
        `the ${describeTransport(this.transport)} to ${this.displayUrl} closed, and with it the session`,
        { unsent: true },
      );
    }
    if (!isRequest(message)) {
      await this.#send(channel, JSON.stringify(message), hooks);
      return;
    }
    const key = idKey(message.id);
    if (this.#waiting.has(key)) {
      throw new GatewayError('rejected', 'a request with this id is already waiting for its answer');
    }
    const answered = new Promise<void>((resolve, reject) => {
      this.#waiting.set(key, { hooks, channel, resolve, reject });
    });
    // Nobody may be left holding a rejection nobody reads (a send that failed first).
    answered.catch(() => undefined);
    const onAbort = () => this.#settle(key, (waiter) => waiter.reject(hooks.signal.reason));
    hooks.signal.addEventListener('abort', onAbort, { once: true });
    try {
      try {
        await this.#send(channel, JSON.stringify(message), hooks);
      } catch (error) {
        this.#settle(key, () => undefined);
        throw error instanceof GatewayError && error.unsent ? error : this.#mayHaveRun(message, error, hooks);
      }
      try {
        await answered;
      } catch (error) {
        throw this.#mayHaveRun(message, error, hooks);
      }
    } finally {
      hooks.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Writes on the channel; a refusal at the door (429, 503: certainly not taken) is tried again, as on HTTP. */
  async #send(channel: MessageChannel, text: string, hooks: DeliveryHooks): Promise<void> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await channel.send(text, hooks.signal);
        return;
      } catch (error) {
        if (!(error instanceof GatewayError) || !error.unsent || !error.retryable || hooks.signal.aborted)
          throw error;
        const delay = retryDelay(error, attempt, Date.now() - started, hooks);
        if (delay === undefined) throw error;
        hooks.log.debug(`${error.message}; retrying (attempt ${attempt + 1})`);
        await sleep(Math.max(delay, error.retryAfterMs ?? 0), hooks.signal);
        if (this.#channel !== channel) {
          throw new GatewayError('session-expired', 'the session ended while this waited to be sent', {
            unsent: true,
          });
        }
      }
    }
  }

  /** The honest error for a written request whose answer will not come; the signal's reason when nobody waits. */
  #mayHaveRun(message: JsonRpcRequest, error: unknown, hooks: DeliveryHooks): unknown {
    if (hooks.signal.aborted) return error;
    return outcomeUnknown(message, error);
  }

  async listen(hooks: EventStreamHooks): Promise<void> {
    if (hooks.signal.aborted) return;
    this.#listener = hooks;
    for (const { message, raw } of this.#early.splice(0)) await hooks.onMessage(message, raw);
    const aborted = new Promise<void>((resolve) => {
      hooks.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    try {
      for (let failures = 0; !hooks.signal.aborted; failures++) {
        await Promise.race([aborted, this.#whenLost()]);
        if (hooks.signal.aborted) return;
        if (failures > 0) {
          const backoff = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** (failures - 1));
          await sleep(backoff, hooks.signal).catch(() => undefined);
          if (hooks.signal.aborted) return;
        }
        try {
          // On success the bridge listens again with a new signal, which ends this loop.
          await hooks.onSessionExpired();
        } catch (error) {
          hooks.log.debug(`could not re-initialize yet: ${errorText(error)}`);
        }
      }
    } finally {
      if (this.#listener === hooks) this.#listener = undefined;
    }
  }

  async terminate(_timeoutMs: number): Promise<void> {
    // Closing the channel is how these transports end a session.
    this.resetSession();
  }

  async close(): Promise<void> {
    this.#root.abort(new Error('connection closed'));
    this.resetSession();
    await this.#opener.close();
  }

  /** Resolves once the current session is lost (at once when it already is). */
  #whenLost(): Promise<void> {
    if (this.#channel === undefined) return Promise.resolve();
    this.#lostSignal ??= new Promise<void>((resolve) => {
      this.#lost = resolve;
    });
    return this.#lostSignal;
  }

  async #openWithRetries(hooks: DeliveryHooks): Promise<MessageChannel> {
    const started = Date.now();
    const signal = AbortSignal.any([hooks.signal, this.#root.signal]);
    for (let attempt = 0; ; attempt++) {
      try {
        // The channel lives as long as the connection, not as long as this one request.
        const channel = await this.#opener.open(
          (message, raw) => this.#receive(message, raw),
          this.#root.signal,
          this.#log,
        );
        this.#adopt(channel);
        return channel;
      } catch (error) {
        if (!(error instanceof GatewayError) || !error.retryable || !error.unsent || signal.aborted)
          throw error;
        const delay = retryDelay(error, attempt, Date.now() - started, hooks);
        if (delay === undefined) throw error;
        hooks.log.debug(`${error.message}; retrying (attempt ${attempt + 1})`);
        await sleep(Math.max(delay, error.retryAfterMs ?? 0), signal);
      }
    }
  }

  #adopt(channel: MessageChannel): void {
    this.#channel = channel;
    this.#lostSignal = undefined;
    this.#lost = undefined;
    void channel.ended.then((reason) => {
      if (this.#channel !== channel) return;
      this.#channel = undefined;
      if (!this.#root.signal.aborted) {
        this.#log.info(
          `${describeTransport(this.transport)} to ${this.displayUrl} closed (${reason}); the session ended with it`,
        );
      }
      this.#dropped(channel, reason);
    });
  }

  /** Fails what waited on `channel` (it may have run) and wakes the listener to re-initialize. */
  #dropped(channel: MessageChannel, reason: string): void {
    for (const [key, waiter] of this.#waiting) {
      if (waiter.channel !== channel) continue;
      this.#waiting.delete(key);
      waiter.reject(
        new GatewayError(
          'stream-lost',
          `the ${describeTransport(this.transport)} closed before the answer (${reason})`,
        ),
      );
    }
    if (this.#channel === undefined) {
      this.#lost?.();
      this.#lost = undefined;
    }
  }

  #settle(key: string, how: (waiter: Waiter) => void): void {
    const waiter = this.#waiting.get(key);
    if (!waiter) return;
    this.#waiting.delete(key);
    how(waiter);
  }

  /** Routes one message from the server: an answer to whoever waits for it, the rest to the listener. */
  #receive(message: JsonRpcMessage, raw: string): Promise<void> | undefined {
    if (isResponse(message) && message.id !== null) {
      const key = idKey(message.id);
      const waiter = this.#waiting.get(key);
      if (waiter) {
        this.#waiting.delete(key);
        const forwarded = waiter.hooks.onMessage(message, raw);
        if (forwarded === undefined) {
          waiter.resolve();
          return undefined;
        }
        return forwarded.then(
          () => waiter.resolve(),
          (error: unknown) => waiter.reject(error),
        );
      }
    }
    if (this.#listener) return this.#listener.onMessage(message, raw) ?? undefined;
    // Before anyone listens (during initialize or a re-initialize), whoever waits forwards it.
    const [first] = this.#waiting.values();
    if (first) return first.hooks.onMessage(message, raw) ?? undefined;
    if (this.#early.length < MAX_EARLY_MESSAGES) this.#early.push({ message, raw });
    else this.#log.debug('dropped a message from the server: nobody listens yet');
    return undefined;
  }
}

/** Parses one message from the server's text; undefined (logged) when it is none. */
export function parseServerMessage(text: string, log: BridgeLog): JsonRpcMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    log.warn('the server sent a message that is not JSON; skipped');
    return undefined;
  }
  const checked = validateMessage(value);
  if (isInvalid(checked)) {
    log.debug(`skipped an invalid message from the server: ${checked.reason}`);
    return undefined;
  }
  return checked;
}

function describeTransport(kind: TransportKind): string {
  return kind === 'ws' ? 'WebSocket' : kind === 'sse' ? 'SSE stream' : 'connection';
}
