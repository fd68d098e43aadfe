// The HTTP side of the bridge: one Streamable HTTP endpoint, spoken with undici. Holds the session
// id and protocol version, and maps every HTTP outcome to a reply or a typed GatewayError.

import type { Dispatcher } from 'undici';
import { isInvalid, isRequest, type JsonRpcMessage, validateMessage } from '../protocol/jsonrpc.ts';
import { RAW_PASS_THROUGH_BYTES, rawResponse } from '../protocol/raw-response.ts';
import { sanitize } from '../util/sanitize.ts';
import type { AuthProvider } from './auth.ts';
import { type ClientCertificate, createDispatcher, type ProxySettings } from './dispatcher.ts';
import { GatewayError, statusError } from './errors.ts';
import type { MessageText } from './output.ts';
import { parseSse, type SseEvent } from './sse.ts';

export interface GatewayClientOptions {
  url: URL;
  /** Extra headers for every request (from --header); they win over the auth provider's. */
  headers: Readonly<Record<string, string>>;
  auth: AuthProvider | undefined;
  /** PEM text of CA certificates to trust in addition to the system's. */
  ca: string | undefined;
  userAgent: string;
  /** Reach the gateway through this Unix socket instead of the URL's host (SSH attached mode). */
  socketPath?: string | undefined;
  /** The client certificate for gateways that require mTLS (--cert/--key). */
  clientCert?: ClientCertificate | undefined;
  /** HTTP(S) proxy settings (--proxy, HTTPS_PROXY/HTTP_PROXY/NO_PROXY). */
  proxy?: ProxySettings | undefined;
  /**
   * A connection that brings no byte for this long (no headers, no event, no keep-alive comment) is
   * dead (--idle-timeout). Undefined: `IDLE_KEEP_ALIVES` × the keep-alive interval the gateway
   * advertises, and none for a server that advertises none (its streams may rightly stay silent).
   * 0: never.
   */
  idleTimeoutMs?: number | undefined;
}

/** What the gateway advertised on its replies in this session (mcp-relay serve sets these headers). */
export interface SessionPromises {
  /** How long it keeps a finished answer for a retry of the same request (Mcp-Relay-Retries). */
  retryWindowMs: number | undefined;
  /** How often its streams carry a keep-alive comment (Mcp-Relay-Keep-Alive). */
  keepAliveMs: number | undefined;
}

/** Keep-alives missed in a row before a silent connection counts as dead. */
export const IDLE_KEEP_ALIVES = 3;
/**
 * The gateway sends a POST's headers within a second (a JSON answer, or the switch to a stream): an
 * automatic idle timeout never goes below this, however short the advertised keep-alive interval.
 */
const MIN_AUTO_IDLE_MS = 5_000;
const RETRIES_HEADER = 'mcp-relay-retries';
const KEEP_ALIVE_HEADER = 'mcp-relay-keep-alive';

/** What the gateway sent back for one POST. */
export type Reply =
  | { kind: 'accepted' }
  /** `raw`: the body's text when it holds one message, so a large one is passed on without re-serializing. */
  | { kind: 'json'; messages: JsonRpcMessage[]; raw?: MessageText }
  | { kind: 'stream'; events: AsyncGenerator<SseEvent> };

/** A JSON body larger than this is not an MCP answer we can hand to Claude Desktop anyway. */
const MAX_JSON_BODY_BYTES = 64 * 1024 * 1024;

/** Failures before a connection existed: the gateway cannot have seen the request. */
const NOT_CONNECTED_CODES = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** undici's idle timers: no headers, or no body bytes, for the idle timeout. */
const IDLE_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

const TLS_TRUST_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

export class GatewayClient {
  readonly #url: URL;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #auth: AuthProvider | undefined;
  readonly #userAgent: string;
  readonly #agent: Dispatcher;
  readonly #closedHint: string;
  readonly #socketPath: string | undefined;
  readonly #idleTimeoutMs: number | undefined;
  #promises: SessionPromises = { retryWindowMs: undefined, keepAliveMs: undefined };
  #sessionId: string | undefined;
  #protocolVersion: string | undefined;
  /** Between resetSession() and the answer to initialize: nothing else may go out without a session id. */
  #awaitingSession = false;

  constructor(options: GatewayClientOptions) {
    this.#url = options.url;
    this.#headers = options.headers;
    this.#auth = options.auth;
    this.#userAgent = options.userAgent;
    this.#agent = createDispatcher(options);
    this.#closedHint = closedConnectionHint(options.url, options.clientCert);
    this.#socketPath = options.socketPath;
    this.#idleTimeoutMs = options.idleTimeoutMs;
  }

  /** The endpoint without credentials or query, safe to show in messages. */
  get displayUrl(): string {
    if (this.#socketPath !== undefined) return `${this.#url.pathname} on socket ${this.#socketPath}`;
    return `${this.#url.origin}${this.#url.pathname}`;
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  /** What the gateway promised in this session; nothing until it said so, and nothing after resetSession(). */
  get promises(): Readonly<SessionPromises> {
    return this.#promises;
  }

  /** How long a connection may stay silent before it is dropped as dead; 0: never. */
  get idleTimeoutMs(): number {
    if (this.#idleTimeoutMs !== undefined) return this.#idleTimeoutMs;
    const keepAlive = this.#promises.keepAliveMs;
    return keepAlive === undefined ? 0 : Math.max(MIN_AUTO_IDLE_MS, keepAlive * IDLE_KEEP_ALIVES);
  }

  get protocolVersion(): string | undefined {
    return this.#protocolVersion;
  }

  /** Sent as MCP-Protocol-Version on every request after initialize, as the spec requires. */
  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  /** Forgets the session so the next initialize starts a new one. */
  resetSession(): void {
    this.#sessionId = undefined;
    this.#protocolVersion = undefined;
    this.#promises = { retryWindowMs: undefined, keepAliveMs: undefined };
    this.#awaitingSession = true;
  }

  /** POSTs one JSON-RPC message. Resolves once the response headers are in; a stream is read by the caller. */
  async post(message: JsonRpcMessage, signal: AbortSignal): Promise<Reply> {
    const initialize = isRequest(message) && message.method === 'initialize';
    if (!initialize) this.#checkSession();
    const response = await this.#request(
      'POST',
      { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      JSON.stringify(message),
      signal,
    );
    if (initialize) this.#awaitingSession = false;
    if (isRequest(message)) this.#notePromises(response.headers);
    if (response.statusCode === 202 || response.statusCode === 204) {
      await discard(response);
      return { kind: 'accepted' };
    }
    const type = mediaType(response.headers['content-type']);
    if (type === 'text/event-stream') return { kind: 'stream', events: parseSse(response.body) };
    // Older servers answer a notification with 200 and an empty or arbitrary body: that is a yes.
    if (!isRequest(message)) {
      await discard(response);
      return { kind: 'accepted' };
    }
    if (type === 'application/json') return readJsonMessages(response);
    await discard(response);
    throw new GatewayError(
      'protocol',
      `gateway answered with unexpected content type "${sanitize(type, 60)}"`,
      {
        status: response.statusCode,
      },
    );
  }

  /** A gateway that stops saying so (a different server behind the URL now) no longer promises it. */
  #notePromises(headers: Dispatcher.ResponseData['headers']): void {
    this.#promises = {
      retryWindowMs: secondsHeader(headerValue(headers[RETRIES_HEADER])),
      keepAliveMs: secondsHeader(headerValue(headers[KEEP_ALIVE_HEADER])),
    };
  }

  /** Opens a GET event stream: the standalone one, or a resumed one when `lastEventId` is set. */
  async listen(lastEventId: string | undefined, signal: AbortSignal): Promise<AsyncGenerator<SseEvent>> {
    this.#checkSession();
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    const response = await this.#request('GET', headers, undefined, signal);
    if (mediaType(response.headers['content-type']) !== 'text/event-stream') {
      await discard(response);
      throw new GatewayError('protocol', 'gateway answered a GET without an event stream', {
        status: response.statusCode,
      });
    }
    return parseSse(response.body);
  }

  /** Ends the session at the server (DELETE), best-effort and bounded; never throws. */
  async terminate(timeoutMs: number): Promise<void> {
    if (this.#sessionId === undefined) return;
    try {
      const response = await this.#request('DELETE', {}, undefined, AbortSignal.timeout(timeoutMs));
      await discard(response);
    } catch {
      // 405 (server keeps sessions) or the gateway is gone: nothing more to do on the way out.
    }
    this.#sessionId = undefined;
  }

  /**
   * A message sent while a new session is being started would go out without a session id and be
   * refused (400); instead it fails unsent, as for an ended session, and waits for the new one.
   */
  #checkSession(): void {
    if (!this.#awaitingSession) return;
    throw new GatewayError('session-expired', 'a new gateway session is being started', { unsent: true });
  }

  /** Drops every connection; idempotent. */
  async close(): Promise<void> {
    // undici's destroy() is idempotent: a second call resolves at once.
    await this.#agent.destroy();
  }

  async #request(
    method: 'GET' | 'POST' | 'DELETE',
    extra: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
    /** Sends with new credentials so far: a sign-in, then at most one step-up for more scopes. */
    authRetries = 0,
  ): Promise<Dispatcher.ResponseData> {
    const headers = await this.#headersFor(extra);
    // undici's timers are idle timers: the time to the headers, then the time between body chunks
    // (keep-alive comments included), so a live stream is never cut and a black-holed one is.
    const idle = this.idleTimeoutMs;
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#agent.request({
        origin: this.#url.origin,
        path: `${this.#url.pathname}${this.#url.search}`,
        method,
        headers,
        body,
        signal,
        headersTimeout: idle,
        bodyTimeout: idle,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      throw this.#networkError(error);
    }
    const status = response.statusCode;
    const sessionId = headerValue(response.headers['mcp-session-id']);
    if (sessionId !== undefined && status < 300) this.#sessionId = sessionId;
    if (status >= 200 && status < 300) return response;
    const challenge = headerValue(response.headers['www-authenticate']);
    // A 403 insufficient_scope asks for a token with more scopes (MCP step-up authorization).
    const stepUp = status === 403 && /\berror="?insufficient_scope\b/.test(challenge ?? '');
    if ((status === 401 || stepUp) && this.#auth) {
      await discard(response);
      const outcome = await this.#auth.unauthorized({ wwwAuthenticate: challenge, url: this.#url, status });
      if (outcome.retry && authRetries < 2)
        return this.#request(method, extra, body, signal, authRetries + 1);
      throw new GatewayError(
        stepUp ? 'forbidden' : 'unauthorized',
        outcome.retry ? `the gateway refused the new credentials (${status})` : outcome.hint,
        { status },
      );
    }
    throw await this.#statusError(response, method, headers['mcp-session-id'] !== undefined);
  }

  async #headersFor(extra: Record<string, string>): Promise<Record<string, string>> {
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...extra };
    if (this.#sessionId !== undefined) headers['mcp-session-id'] = this.#sessionId;
    if (this.#protocolVersion !== undefined) headers['mcp-protocol-version'] = this.#protocolVersion;
    if (this.#auth) Object.assign(headers, await this.#auth.headers());
    return Object.assign(headers, this.#headers);
  }

  #networkError(error: unknown): GatewayError {
    return networkError(error, {
      displayUrl: this.displayUrl,
      idleTimeoutMs: this.idleTimeoutMs,
      closedHint: this.#closedHint,
    });
  }

  /**
   * `carriedSession` is whether this request sent a session id: a recovery running concurrently may
   * already have dropped the client's session, and that must not turn "session expired" into "no endpoint".
   */
  async #statusError(
    response: Dispatcher.ResponseData,
    method: string,
    carriedSession: boolean,
  ): Promise<GatewayError> {
    const status = response.statusCode;
    const detail = await errorDetail(response);
    if (status >= 300 && status < 400) {
      const location = headerValue(response.headers.location);
      const where = location ? ` to ${sanitize(location, 120)}` : '';
      return new GatewayError(
        'rejected',
        `the gateway redirects${where} (${status}): connect to that URL instead`,
        {
          status,
        },
      );
    }
    // The SDK's own servers (server-everything, its examples) answer an unknown session with 400.
    const unknownSession = status === 400 && /\bsession\b/i.test(detail);
    if ((status === 404 || unknownSession) && carriedSession) {
      return new GatewayError('session-expired', `the gateway no longer knows this session (${status})`, {
        status,
        unsent: true,
      });
    }
    if (status === 405 && method === 'GET') {
      return new GatewayError('not-supported', 'the gateway offers no event stream (405)', { status });
    }
    return statusError(status, {
      peer: 'gateway',
      displayUrl: this.displayUrl,
      detail,
      retryAfter: headerValue(response.headers['retry-after']),
    });
  }
}

/** What a connection closed right after the TLS handshake may mean, for the error message. */
export function closedConnectionHint(url: URL, clientCert: ClientCertificate | undefined): string {
  if (url.protocol !== 'https:' && url.protocol !== 'wss:') return '';
  return clientCert
    ? ' (the gateway may have refused the client certificate: expired, revoked or from another CA)'
    : ' (if the gateway requires a client certificate, pass --cert FILE --key FILE)';
}

/**
 * A failure with no HTTP answer, as a GatewayError: `unsent` when no connection was made (the server
 * cannot have seen anything), plain words for TLS trust, idle timers and proxy refusals.
 */
export function networkError(
  error: unknown,
  where: { displayUrl: string; idleTimeoutMs: number; closedHint: string },
): GatewayError {
  const code = errorCode(error);
  const unsent = code !== undefined && NOT_CONNECTED_CODES.has(code);
  if (
    code !== undefined &&
    (TLS_TRUST_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('CERT_'))
  ) {
    return new GatewayError(
      'unreachable',
      `gateway at ${where.displayUrl}: TLS certificate not trusted (${code}); pass --ca FILE with the CA that signed it`,
      { cause: error, unsent: true },
    );
  }
  const reason =
    (code !== undefined && IDLE_CODES.has(code)
      ? `no answer for ${where.idleTimeoutMs} ms (the connection went silent)`
      : undefined) ??
    proxyRefusal(error) ??
    code ??
    (error instanceof Error ? sanitize(error.message, 120) : 'network error');
  // A gateway that requires client certificates closes the connection right after the handshake.
  const hint = code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' ? where.closedHint : '';
  return new GatewayError('unreachable', `gateway at ${where.displayUrl} unreachable: ${reason}${hint}`, {
    retryable: true,
    unsent,
    cause: error,
  });
}

export async function discard(response: Dispatcher.ResponseData): Promise<void> {
  try {
    await response.body.dump();
  } catch {
    // The connection is going away anyway.
  }
}

/**
 * Reads a JSON reply: its bytes kept as they come and decoded once at the end (linear), and stopped at
 * the size limit rather than after buffering whatever the gateway sends.
 */
export async function readJsonMessages(response: Dispatcher.ResponseData): Promise<Reply> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BODY_BYTES) {
      response.body.destroy();
      throw new GatewayError('protocol', 'gateway answer too large (over 64 MiB)', {
        status: response.statusCode,
      });
    }
    chunks.push(chunk);
  }
  // A large answer that plainly is one response line goes out as its bytes: no decode, parse or copy.
  const passed = size >= RAW_PASS_THROUGH_BYTES ? rawResponse(chunks, size) : undefined;
  if (passed) return { kind: 'json', messages: [passed], raw: chunks };
  const text = Buffer.concat(chunks, size).toString('utf8');
  chunks.length = 0;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('protocol', 'gateway answered with invalid JSON', { status: response.statusCode });
  }
  const messages: JsonRpcMessage[] = [];
  for (const item of Array.isArray(value) ? value : [value]) {
    const checked = validateMessage(item);
    if (isInvalid(checked))
      throw new GatewayError('protocol', `gateway sent an invalid message: ${checked.reason}`);
    messages.push(checked);
  }
  return Array.isArray(value) ? { kind: 'json', messages } : { kind: 'json', messages, raw: text };
}

/** A short reason from an error body: a JSON-RPC error message if there is one, else the text. */
export async function errorDetail(response: Dispatcher.ResponseData): Promise<string> {
  let text: string;
  try {
    text = (await response.body.text()).slice(0, 4096);
  } catch {
    return '';
  }
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const message =
      typeof parsed.error === 'object' && typeof parsed.error?.message === 'string'
        ? parsed.error.message
        : typeof parsed.error === 'string'
          ? parsed.error
          : typeof parsed.message === 'string'
            ? parsed.message
            : undefined;
    if (message !== undefined) return sanitize(message);
  } catch {
    // Not JSON: fall through to the plain text.
  }
  return /^\s*</.test(text) ? '' : sanitize(text);
}

export function mediaType(header: string | string[] | undefined): string {
  const value = headerValue(header) ?? '';
  return (value.split(';')[0] ?? '').trim().toLowerCase();
}

export function headerValue(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

/** undici's "Proxy response (407) !== 200 when HTTP Tunneling", said plainly. */
function proxyRefusal(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : '';
  const status = /^Proxy response \((\d{3})\)/.exec(message)?.[1];
  return status === undefined ? undefined : `the proxy refused the tunnel (${status})`;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined || cause === error ? undefined : errorCode(cause);
}

/** A positive number of seconds (fractions allowed) → ms; anything else → undefined. */
function secondsHeader(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d+(?:\.\d+)?\s*$/.test(value)) return undefined;
  const ms = Math.round(Number(value) * 1_000);
  return ms > 0 ? ms : undefined;
}
