// The legacy HTTP+SSE transport (MCP 2024-11-05), as a channel: GET the SSE URL, read the `endpoint`
// event, POST each message there (202); every answer and server message arrives as a `message` event
// on the one stream. The stream is the session: it has no resumption, so when it drops the session is
// gone (channel-connection.ts then re-initializes on a new stream).

import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { sanitize } from '../util/sanitize.ts';
import type { AuthProvider } from './auth.ts';
import {
  type ChannelOpener,
  type MessageChannel,
  parseServerMessage,
  type Receive,
} from './channel-connection.ts';
import type { BridgeLog } from './diagnostics.ts';
import { type ClientCertificate, createDispatcher, type ProxySettings } from './dispatcher.ts';
import { GatewayError, statusError } from './errors.ts';
import {
  closedConnectionHint,
  discard,
  errorDetail,
  headerValue,
  mediaType,
  networkError,
} from './gateway-client.ts';
import { parseSse, type SseEvent } from './sse.ts';

export interface LegacySseOptions {
  /** The SSE URL (GET), e.g. http://localhost:8000/sse. */
  url: URL;
  headers: Readonly<Record<string, string>>;
  auth: AuthProvider | undefined;
  ca: string | undefined;
  clientCert?: ClientCertificate | undefined;
  proxy?: ProxySettings | undefined;
  socketPath?: string | undefined;
  userAgent: string;
  /** The stream or a POST silent this long is dead; undefined or 0: never (legacy servers send no keep-alives). */
  idleTimeoutMs?: number | undefined;
}

/** How long the server may take to name its message endpoint after the stream opened. */
const ENDPOINT_WAIT_MS = 30_000;

export class LegacySseOpener implements ChannelOpener {
  readonly transport = 'sse';
  readonly #options: LegacySseOptions;
  readonly #agent: Dispatcher;
  readonly #closedHint: string;

  constructor(options: LegacySseOptions) {
    this.#options = options;
    this.#agent = createDispatcher(options);
    this.#closedHint = closedConnectionHint(options.url, options.clientCert);
  }

  get displayUrl(): string {
    const url = this.#options.url;
    if (this.#options.socketPath !== undefined)
      return `${url.pathname} on socket ${this.#options.socketPath}`;
    return `${url.origin}${url.pathname}`;
  }

  async open(receive: Receive, signal: AbortSignal, log: BridgeLog): Promise<MessageChannel> {
    const stream = new AbortController();
    const lifetime = AbortSignal.any([signal, stream.signal]);
    const response = await this.#request(
      this.#options.url,
      'GET',
      { accept: 'text/event-stream' },
      undefined,
      lifetime,
    );
    if (mediaType(response.headers['content-type']) !== 'text/event-stream') {
      await discard(response);
      throw new GatewayError(
        'protocol',
        `no legacy SSE stream at ${this.displayUrl}: the server answered the GET without an event stream`,
        { status: response.statusCode },
      );
    }
    const events = parseSse(response.body);
    const endpoint = await this.#readEndpoint(events, lifetime).catch((error: unknown) => {
      stream.abort();
      throw error;
    });
    const sessionId = endpoint.searchParams.get('sessionId') ?? endpoint.pathname ?? randomUUID();
    let down = false;
    let resolveEnded!: (reason: string) => void;
    const done = new Promise<string>((resolve) => {
      resolveEnded = resolve;
    });
    const ended = (reason: string) => {
      down = true;
      resolveEnded(reason);
    };
    void (async () => {
      try {
        for await (const event of events) {
          if (event.event !== 'message' || event.data.trim() === '') continue;
          const message = parseServerMessage(event.data, log);
          if (message) await receive(message, event.data);
        }
        ended('the server ended the stream');
      } catch (error) {
        ended(stream.signal.aborted ? 'closed' : networkError(error, this.#where()).message);
      }
    })();
    return {
      sessionId,
      ended: done,
      send: (text, sendSignal) =>
        this.#post(endpoint, text, AbortSignal.any([sendSignal, lifetime]), () => down),
      close: () => stream.abort(),
    };
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }

  /** The first `endpoint` event, resolved against the SSE URL; it must stay on the same origin. */
  async #readEndpoint(events: AsyncGenerator<SseEvent>, signal: AbortSignal): Promise<URL> {
    const timeout = AbortSignal.timeout(ENDPOINT_WAIT_MS);
    const waiting = AbortSignal.any([signal, timeout]);
    const read = (async () => {
      // next(), not for-await: leaving a for-await loop would end the stream the messages come on.
      for (let next = await events.next(); !next.done; next = await events.next()) {
        const event = next.value;
        if (event.event !== 'endpoint') continue;
        let url: URL;
        try {
          url = new URL(event.data.trim(), this.#options.url);
        } catch {
          throw new GatewayError('protocol', 'the server named a message endpoint that is not a URL');
        }
        if (url.origin !== this.#options.url.origin) {
          throw new GatewayError(
            'protocol',
            `the server named a message endpoint on another origin (${sanitize(url.origin, 80)}); credentials are not sent there`,
          );
        }
        return url;
      }
      throw new GatewayError(
        'protocol',
        `the SSE stream at ${this.displayUrl} ended before naming its message endpoint`,
      );
    })();
    const gaveUp = new Promise<never>((_resolve, reject) => {
      waiting.addEventListener(
        'abort',
        () =>
          reject(
            timeout.aborted
              ? new GatewayError('protocol', `the SSE stream at ${this.displayUrl} named no message endpoint`)
              : signal.reason,
          ),
        { once: true },
      );
    });
    gaveUp.catch(() => undefined);
    return Promise.race([read, gaveUp]);
  }

  /** POSTs one message to the endpoint; the answer comes on the stream. */
  async #post(endpoint: URL, text: string, signal: AbortSignal, streamDown: () => boolean): Promise<void> {
    if (streamDown()) throw sessionGone('the SSE stream closed');
    const response = await this.#request(
      endpoint,
      'POST',
      { 'content-type': 'application/json' },
      text,
      signal,
    ).catch((error: unknown) => {
      // The stream is the session: with it gone, the server has no session to run this in; and a
      // connection refused means no server is there, so the stream is about to report its end too.
      if (error instanceof GatewayError && error.unsent && (streamDown() || error.kind === 'unreachable')) {
        throw sessionGone(streamDown() ? 'the SSE stream closed' : 'the server refused the connection');
      }
      throw error;
    });
    await discard(response);
  }

  #where() {
    return {
      displayUrl: this.displayUrl,
      idleTimeoutMs: this.#options.idleTimeoutMs ?? 0,
      closedHint: this.#closedHint,
    };
  }

  async #request(
    url: URL,
    method: 'GET' | 'POST',
    extra: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
    authRetries = 0,
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent, ...extra };
    if (this.#options.auth) Object.assign(headers, await this.#options.auth.headers());
    Object.assign(headers, this.#options.headers);
    const idle = this.#options.idleTimeoutMs ?? 0;
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method,
        headers,
        body,
        signal,
        headersTimeout: idle,
        bodyTimeout: idle,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      throw networkError(error, this.#where());
    }
    const status = response.statusCode;
    if (status >= 200 && status < 300) return response;
    const challenge = headerValue(response.headers['www-authenticate']);
    if (status === 401 && this.#options.auth) {
      await discard(response);
      const outcome = await this.#options.auth.unauthorized({
        wwwAuthenticate: challenge,
        url: this.#options.url,
        status,
      });
      if (outcome.retry && authRetries < 2)
        return this.#request(url, method, extra, body, signal, authRetries + 1);
      throw new GatewayError(
        'unauthorized',
        outcome.retry ? `the server refused the new credentials (${status})` : outcome.hint,
        {
          status,
        },
      );
    }
    const detail = await errorDetail(response);
    if (method === 'POST' && (status === 404 || (status === 400 && /\bsession|transport\b/i.test(detail)))) {
      return Promise.reject(sessionGone(`the server no longer knows this session (${status})`));
    }
    throw statusError(status, {
      peer: 'server',
      displayUrl: this.displayUrl,
      detail,
      retryAfter: headerValue(response.headers['retry-after']),
      // A refused GET opened no session and carried no message.
      ...(method === 'GET' ? { unsent: true } : {}),
      refused: `the ${method}`,
    });
  }
}

function sessionGone(reason: string): GatewayError {
  return new GatewayError('session-expired', `${reason}; the session ended with it`, { unsent: true });
}
