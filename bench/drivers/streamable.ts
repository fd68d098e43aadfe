// The lean Streamable HTTP driver: POST initialize → session id → notifications/initialized → tools/call,
// replies read as JSON or as an SSE body. Two ways to move the bytes: node:http with a keep-alive Agent
// (so throughput measures the gateway, not the client) and `fetch` (what the bare-HTTP floor is timed with).

import { Agent, type IncomingHttpHeaders, request } from 'node:http';
import { sseMessages } from './sse-parser.ts';
import {
  type BenchSession,
  CLIENT_INFO,
  type Connector,
  echoText,
  MODERN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  type SessionOptions,
} from './types.ts';

interface Reply {
  status: number;
  contentType: string;
  sessionId: string | undefined;
  body: string;
}

/** Moves one HTTP exchange; `stream` opens a GET stream that stays open until the returned closer runs. */
interface Exchange {
  send(method: 'POST' | 'DELETE', url: URL, headers: Record<string, string>, body?: string): Promise<Reply>;
  stream(url: URL, headers: Record<string, string>): Promise<() => void>;
  close(): void;
}

const CALL_TIMEOUT_MS = 30_000;

/** node:http with keep-alive: one socket per concurrent call, reused across calls and sessions. */
function nodeHttpExchange(): Exchange {
  const calls = new Agent({ keepAlive: true, maxSockets: 1_024, scheduling: 'lifo' });
  // Streams hold their socket for the session's life; they get their own pool so calls never wait for one.
  const streams = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  return {
    send(method, url, headers, body) {
      return new Promise((resolve, reject) => {
        const req = request(url, { method, agent: calls, headers, timeout: CALL_TIMEOUT_MS }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.once('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'] ?? '',
              sessionId: sessionHeader(res.headers),
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.once('error', reject);
        });
        req.once('timeout', () => req.destroy(new Error(`no reply within ${CALL_TIMEOUT_MS} ms`)));
        req.once('error', reject);
        req.end(body);
      });
    },
    stream(url, headers) {
      return new Promise((resolve, reject) => {
        const req = request(url, { method: 'GET', agent: streams, headers }, (res) => {
          res.resume();
          res.once('error', () => {});
          resolve(() => req.destroy());
        });
        req.once('error', reject);
        req.end();
      });
    },
    close() {
      calls.destroy();
      streams.destroy();
    },
  };
}

/** The platform `fetch` (undici), as the SDK's HTTP transport and most JavaScript clients use it. */
function fetchExchange(): Exchange {
  const aborts = new Set<AbortController>();
  return {
    async send(method, url, headers, body) {
      const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
      return {
        status: res.status,
        contentType: res.headers.get('content-type') ?? '',
        sessionId: res.headers.get('mcp-session-id') ?? undefined,
        body: await res.text(),
      };
    },
    async stream(url, headers) {
      const abort = new AbortController();
      aborts.add(abort);
      const res = await fetch(url, { method: 'GET', headers, signal: abort.signal });
      res.body?.pipeTo(new WritableStream()).catch(() => {});
      return () => {
        aborts.delete(abort);
        abort.abort();
      };
    },
    close() {
      for (const abort of aborts) abort.abort();
      aborts.clear();
    },
  };
}

/** The result of request `id` in a reply (JSON, or the SSE stream's message with that id); throws for anything else. */
function resultOf(reply: Reply, method: string, id: number): unknown {
  if (reply.status !== 200) throw new Error(`${method}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
  const messages = reply.contentType.includes('text/event-stream')
    ? sseMessages(reply.body)
    : [JSON.parse(reply.body) as unknown];
  const response = messages.find((message) => (message as { id?: unknown }).id === id) as
    | { result?: unknown; error?: { message?: string } }
    | undefined;
  if (!response) throw new Error(`${method}: no response with id ${id} in the reply`);
  if (response.error) throw new Error(`${method}: ${response.error.message ?? 'error'}`);
  return response.result;
}

function sessionHeader(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['mcp-session-id'];
  return Array.isArray(value) ? value[0] : value;
}

class StreamableSession implements BenchSession {
  readonly #exchange: Exchange;
  readonly #url: URL;
  #nextId = 1;
  #headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  #closeStream: (() => void) | undefined;

  constructor(exchange: Exchange, url: URL) {
    this.#exchange = exchange;
    this.#url = url;
  }

  async start(options: SessionOptions): Promise<void> {
    const { result, sessionId } = await this.#rpc('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: CLIENT_INFO,
    });
    const version = (result as { protocolVersion?: unknown }).protocolVersion;
    this.#headers = {
      ...this.#headers,
      ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
      'mcp-protocol-version': typeof version === 'string' ? version : PROTOCOL_VERSION,
    };
    const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const ack = await this.#exchange.send('POST', this.#url, this.#headers, initialized);
    if (ack.status !== 202 && ack.status !== 200)
      throw new Error(`notifications/initialized: HTTP ${ack.status}`);
    if (options.hold) {
      const { 'content-type': _, ...headers } = this.#headers;
      this.#closeStream = await this.#exchange.stream(this.#url, { ...headers, accept: 'text/event-stream' });
    }
  }

  async echo(text: string): Promise<string> {
    const { result } = await this.#rpc('tools/call', { name: 'echo', arguments: { text } });
    return echoText(result);
  }

  async close(): Promise<void> {
    this.#closeStream?.();
    if (!this.#headers['mcp-session-id']) return;
    await this.#exchange.send('DELETE', this.#url, this.#headers).catch(() => {});
  }

  async #rpc(method: string, params: unknown): Promise<{ result: unknown; sessionId: string | undefined }> {
    const id = this.#nextId++;
    const reply = await this.#exchange.send(
      'POST',
      this.#url,
      this.#headers,
      JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    );
    return { result: resultOf(reply, method, id), sessionId: reply.sessionId };
  }
}

/**
 * A 2026-07-28 client: nothing to open (a `server/discover` checks the era), and every call is one POST
 * carrying the `_meta` envelope and the `Mcp-Method`/`Mcp-Name` headers.
 */
class StatelessSession implements BenchSession {
  readonly #exchange: Exchange;
  readonly #url: URL;
  #nextId = 1;

  constructor(exchange: Exchange, url: URL) {
    this.#exchange = exchange;
    this.#url = url;
  }

  async start(): Promise<void> {
    const result = await this.#rpc('server/discover', {});
    const versions = (result as { supportedVersions?: unknown }).supportedVersions;
    if (!Array.isArray(versions) || !versions.includes(MODERN_PROTOCOL_VERSION))
      throw new Error(`server/discover does not offer ${MODERN_PROTOCOL_VERSION}`);
  }

  async echo(text: string): Promise<string> {
    return echoText(await this.#rpc('tools/call', { name: 'echo', arguments: { text } }, 'echo'));
  }

  async close(): Promise<void> {}

  async #rpc(method: string, params: Record<string, unknown>, name?: string): Promise<unknown> {
    const id = this.#nextId++;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL_VERSION,
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': CLIENT_INFO,
        },
      },
    });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_PROTOCOL_VERSION,
      'mcp-method': method,
      ...(name === undefined ? {} : { 'mcp-name': name }),
    };
    const reply = await this.#exchange.send('POST', this.#url, headers, body);
    return resultOf(reply, method, id);
  }
}

export function streamableConnector(
  url: string,
  flavour: 'lean' | 'fetch',
  era: 'sessions' | 'stateless' = 'sessions',
): Connector {
  const exchange = flavour === 'lean' ? nodeHttpExchange() : fetchExchange();
  const target = new URL(url);
  return {
    async open(options) {
      if (era === 'stateless') {
        const stateless = new StatelessSession(exchange, target);
        await stateless.start();
        return stateless;
      }
      const session = new StreamableSession(exchange, target);
      await session.start(options);
      return session;
    },
    pids: () => [],
    async close() {
      exchange.close();
    },
  };
}
