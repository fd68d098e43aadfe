// One 2026-07-28 POST to the MCP endpoint: no session, the routing headers of envelope.ts, credentials
// from the same AuthProvider the session path uses (a sign-in on 401 only when the caller allows
// it: never for a probe). A refusal whose body is a JSON-RPC error is handed back as that message.

import type { Dispatcher } from 'undici';
import {
  isInvalid,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  validateMessage,
} from '../../protocol/jsonrpc.ts';
import { sanitize } from '../../util/sanitize.ts';
import type { AuthProvider } from '../auth.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { createDispatcher } from '../dispatcher.ts';
import { GatewayError, statusError } from '../errors.ts';
import {
  closedConnectionHint,
  discard,
  errorDetail,
  type GatewayClientOptions,
  headerValue,
  mediaType,
  networkError,
  type Reply,
  readJsonMessages,
} from '../gateway-client.ts';
import { parseSse, type SseEvent } from '../sse.ts';

export interface ModernPostOptions {
  signal: AbortSignal;
  /** Whether a 401 may start a sign-in or refresh (the auth provider's `unauthorized`). */
  interactive: boolean;
}

/** A JSON-RPC error body on a refusal is read up to this size; a larger one is not an MCP error. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export class ModernHttp {
  readonly #url: URL;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #auth: AuthProvider | undefined;
  readonly #userAgent: string;
  readonly #agent: Dispatcher;
  readonly #closedHint: string;
  readonly #socketPath: string | undefined;
  readonly #idleTimeoutMs: number;

  constructor(options: GatewayClientOptions) {
    this.#url = options.url;
    this.#headers = options.headers;
    this.#auth = options.auth;
    this.#userAgent = options.userAgent;
    this.#agent = createDispatcher(options);
    this.#closedHint = closedConnectionHint(options.url, options.clientCert);
    this.#socketPath = options.socketPath;
    // No keep-alive is advertised on a session-less exchange: only an explicit --idle-timeout applies.
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 0;
  }

  get displayUrl(): string {
    if (this.#socketPath !== undefined) return `${this.#url.pathname} on socket ${this.#socketPath}`;
    return `${this.#url.origin}${this.#url.pathname}`;
  }

  /** Resolves once the response headers are in; a stream is read by the caller. */
  async post(
    message: JsonRpcMessage,
    routing: Readonly<Record<string, string>>,
    options: ModernPostOptions,
  ): Promise<Reply> {
    const body = JSON.stringify(message);
    for (let signIns = 0; ; signIns++) {
      const response = await this.#send(body, routing, options.signal);
      const status = response.statusCode;
      if (status === 202 || status === 204) {
        await discard(response);
        return { kind: 'accepted' };
      }
      const type = mediaType(response.headers['content-type']);
      if (status >= 200 && status < 300) {
        if (type === 'text/event-stream') return { kind: 'stream', events: parseSse(response.body) };
        if (!isRequest(message)) {
          await discard(response);
          return { kind: 'accepted' };
        }
        if (type === 'application/json') return readJsonMessages(response);
        await discard(response);
        throw new GatewayError('protocol', `the server answered with content type "${sanitize(type, 60)}"`, {
          status,
        });
      }
      const challenge = headerValue(response.headers['www-authenticate']);
      const stepUp = status === 403 && /\berror="?insufficient_scope\b/.test(challenge ?? '');
      if ((status === 401 || stepUp) && this.#auth) {
        await discard(response);
        if (!options.interactive) {
          throw new GatewayError('unauthorized', `the server requires credentials (${status})`, { status });
        }
        const outcome = await this.#auth.unauthorized({ wwwAuthenticate: challenge, url: this.#url, status });
        if (outcome.retry && signIns < 2) continue;
        throw new GatewayError(
          stepUp ? 'forbidden' : 'unauthorized',
          outcome.retry ? `the server refused the new credentials (${status})` : outcome.hint,
          { status },
        );
      }
      if (type === 'application/json') {
        const carried = await jsonRpcError(response);
        if (carried) return { kind: 'json', messages: [carried] };
        throw this.#refusal(status, response, '');
      }
      throw this.#refusal(status, response, await errorDetail(response));
    }
  }

  #refusal(status: number, response: Dispatcher.ResponseData, detail: string): GatewayError {
    return statusError(status, {
      peer: 'server',
      displayUrl: this.displayUrl,
      detail,
      retryAfter: headerValue(response.headers['retry-after']),
    });
  }

  async #send(
    body: string,
    routing: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {
      'user-agent': this.#userAgent,
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      ...routing,
    };
    if (this.#auth) Object.assign(headers, await this.#auth.headers());
    Object.assign(headers, this.#headers);
    try {
      return await this.#agent.request({
        origin: this.#url.origin,
        path: `${this.#url.pathname}${this.#url.search}`,
        method: 'POST',
        headers,
        body,
        signal,
        headersTimeout: this.#idleTimeoutMs,
        bodyTimeout: this.#idleTimeoutMs,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      throw networkError(error, {
        displayUrl: this.displayUrl,
        idleTimeoutMs: this.#idleTimeoutMs,
        closedHint: this.#closedHint,
      });
    }
  }

  /** Drops every connection; idempotent. */
  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}

/** The JSON-RPC error a refusal's body carries (e.g. 400 with -32022), or undefined. */
async function jsonRpcError(response: Dispatcher.ResponseData): Promise<JsonRpcMessage | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_ERROR_BODY_BYTES) {
        response.body.destroy();
        return undefined;
      }
      chunks.push(chunk);
    }
    const checked = validateMessage(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    return !isInvalid(checked) && isResponse(checked) && 'error' in checked ? checked : undefined;
  } catch {
    return undefined;
  }
}

/** One SSE event as a message; priming events and junk are skipped. */
export function eventMessage(event: SseEvent, log: BridgeLog): JsonRpcMessage | undefined {
  if (event.event !== 'message' || event.data.trim() === '') return undefined;
  try {
    const checked = validateMessage(JSON.parse(event.data));
    if (!isInvalid(checked)) return checked;
  } catch {
    // not JSON: said below
  }
  log.warn('the server sent an event that is not a JSON-RPC message; skipped');
  return undefined;
}
