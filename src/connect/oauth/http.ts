// The OAuth client's HTTP: JSON GETs and form POSTs over the bridge's own dispatcher (so --ca,
// client certificates and proxies apply to the authorization server too), bounded in time and size,
// with failures as one-line OAuthErrors.

import { type Dispatcher, fetch } from 'undici';
import { sanitize } from '../../util/sanitize.ts';

/** A login, refresh or discovery step failed; the message is for the user (stderr, JSON-RPC error). */
export class OAuthError extends Error {
  override readonly name = 'OAuthError';
  /** The OAuth error code when the server sent one (`invalid_grant`, …). */
  readonly code: string | undefined;

  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = options.code;
  }
}

export interface JsonReply {
  status: number;
  /** The parsed body when it was a JSON object, else undefined. */
  body: Record<string, unknown> | undefined;
}

const TIMEOUT_MS = 15_000;
const MAX_BODY_CHARS = 256 * 1024;

export class OAuthHttp {
  readonly #dispatcher: Dispatcher;
  readonly #userAgent: string;

  constructor(dispatcher: Dispatcher, userAgent: string) {
    this.#dispatcher = dispatcher;
    this.#userAgent = userAgent;
  }

  /** GET a JSON document. Redirects are not followed: metadata must be where it is looked for. */
  getJson(url: string, signal?: AbortSignal): Promise<JsonReply> {
    return this.#send(url, { method: 'GET', headers: { accept: 'application/json' } }, signal);
  }

  /** POST `application/x-www-form-urlencoded` (token endpoint) and read the JSON answer. */
  postForm(
    url: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<JsonReply> {
    return this.#send(
      url,
      {
        method: 'POST',
        headers: {
          accept: 'application/json',
          'content-type': 'application/x-www-form-urlencoded',
          ...headers,
        },
        body: new URLSearchParams(form).toString(),
      },
      signal,
    );
  }

  /** POST a JSON body (dynamic client registration). */
  postJson(url: string, body: unknown, signal?: AbortSignal): Promise<JsonReply> {
    return this.#send(
      url,
      {
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      signal,
    );
  }

  async #send(
    url: string,
    init: { method: string; headers: Record<string, string>; body?: string },
    signal: AbortSignal | undefined,
  ): Promise<JsonReply> {
    const timeout = AbortSignal.timeout(TIMEOUT_MS);
    let response: Awaited<ReturnType<typeof fetch>>;
    try {
      response = await fetch(url, {
        ...init,
        headers: { 'user-agent': this.#userAgent, ...init.headers },
        redirect: 'manual',
        dispatcher: this.#dispatcher,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      throw new OAuthError(`${displayUrl(url)} unreachable: ${describeNetworkError(error)}`, {
        cause: error,
      });
    }
    const text = await response.text().catch(() => '');
    if (text.length > MAX_BODY_CHARS) throw new OAuthError(`${displayUrl(url)} answered with too much data`);
    let body: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      body =
        parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as typeof body) : undefined;
    } catch {
      body = undefined;
    }
    return { status: response.status, body };
  }
}

/** Origin and path only: never a query (it may carry codes) or credentials. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return sanitize(`${parsed.origin}${parsed.pathname}`, 160);
  } catch {
    return 'an invalid URL';
  }
}

/** `error: description` from an OAuth error body, cleaned for display; empty when there is none. */
export function oauthErrorOf(body: Record<string, unknown> | undefined): { code?: string; text: string } {
  const code = typeof body?.error === 'string' ? sanitize(body.error, 60) : undefined;
  const description =
    typeof body?.error_description === 'string' ? sanitize(body.error_description, 200) : '';
  if (code === undefined) return { text: '' };
  return { code, text: description ? `${code}: ${description}` : code };
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  return error instanceof Error ? sanitize(error.message, 120) : 'network error';
}
