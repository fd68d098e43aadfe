// The lean driver for the legacy HTTP+SSE transport (2024-11-05): GET the SSE stream, learn the POST
// endpoint from its `endpoint` event, POST each message (202), and read every reply from the stream.
// Replies are matched by JSON-RPC id within the session, exactly as an SDK client matches them.

import { Agent, request } from 'node:http';
import { SseParser } from './sse-parser.ts';
import {
  type BenchSession,
  CLIENT_INFO,
  type Connector,
  echoText,
  PROTOCOL_VERSION,
  type SessionOptions,
} from './types.ts';

const CALL_TIMEOUT_MS = 30_000;

interface Waiter {
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

class LegacySseSession implements BenchSession {
  readonly #calls: Agent;
  readonly #streams: Agent;
  readonly #url: URL;
  readonly #waiting = new Map<number, Waiter>();
  #endpoint: URL | undefined;
  #nextId = 1;
  #closeStream: (() => void) | undefined;

  constructor(calls: Agent, streams: Agent, url: URL) {
    this.#calls = calls;
    this.#streams = streams;
    this.#url = url;
  }

  async start(_options: SessionOptions): Promise<void> {
    this.#endpoint = await this.#openStream();
    await this.#rpc('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: CLIENT_INFO,
    });
    await this.#post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  async echo(text: string): Promise<string> {
    return echoText(await this.#rpc('tools/call', { name: 'echo', arguments: { text } }));
  }

  async close(): Promise<void> {
    this.#closeStream?.();
    this.#failAll(new Error('session closed'));
  }

  #openStream(): Promise<URL> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.#url,
        { method: 'GET', agent: this.#streams, headers: { accept: 'text/event-stream' } },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`SSE stream: HTTP ${res.statusCode}`));
            return;
          }
          const parser = new SseParser();
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            for (const event of parser.feed(chunk)) {
              if (event.event === 'endpoint') resolve(new URL(event.data, this.#url));
              else if (event.event === 'message') this.#onMessage(event.data);
            }
          });
          res.once('close', () => this.#failAll(new Error('SSE stream closed')));
          res.once('error', () => {});
        },
      );
      this.#closeStream = () => req.destroy();
      req.setTimeout(CALL_TIMEOUT_MS, () => reject(new Error('no endpoint event')));
      req.once('error', reject);
      req.end();
    });
  }

  #onMessage(data: string): void {
    let message: { id?: unknown; result?: unknown; error?: { message?: string } };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof message.id !== 'number') return;
    const waiter = this.#waiting.get(message.id);
    if (!waiter) return;
    this.#waiting.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.error) waiter.reject(new Error(message.error.message ?? 'error'));
    else waiter.resolve(message.result);
  }

  async #rpc(method: string, params: unknown): Promise<unknown> {
    const id = this.#nextId++;
    const answered = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${method}: no reply within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.#waiting.set(id, { resolve, reject, timer });
    });
    // It may settle while the POST is still under way; the caller awaits it below.
    answered.catch(() => {});
    try {
      await this.#post({ jsonrpc: '2.0', id, method, params });
    } catch (error) {
      const waiter = this.#waiting.get(id);
      this.#waiting.delete(id);
      if (waiter) clearTimeout(waiter.timer);
      throw error;
    }
    return answered;
  }

  #post(message: unknown): Promise<void> {
    const endpoint = this.#endpoint;
    if (!endpoint) return Promise.reject(new Error('no endpoint yet'));
    return new Promise((resolve, reject) => {
      const body = JSON.stringify(message);
      const req = request(
        endpoint,
        { method: 'POST', agent: this.#calls, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.once('end', () =>
            res.statusCode === 202 || res.statusCode === 200
              ? resolve()
              : reject(new Error(`POST: HTTP ${res.statusCode}`)),
          );
        },
      );
      req.setTimeout(CALL_TIMEOUT_MS, () => req.destroy(new Error('POST timed out')));
      req.once('error', reject);
      req.end(body);
    });
  }

  #failAll(error: Error): void {
    for (const waiter of this.#waiting.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiting.clear();
  }
}

export function legacySseConnector(url: string): Connector {
  const calls = new Agent({ keepAlive: true, maxSockets: 1_024, scheduling: 'lifo' });
  const streams = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const target = new URL(url);
  return {
    async open(options) {
      const session = new LegacySseSession(calls, streams, target);
      try {
        await session.start(options);
      } catch (error) {
        await session.close();
        throw error;
      }
      return session;
    },
    pids: () => [],
    async close() {
      calls.destroy();
      streams.destroy();
    },
  };
}
