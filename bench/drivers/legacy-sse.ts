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
import { ReplyWaiters } from './waiters.ts';

const CALL_TIMEOUT_MS = 30_000;

class LegacySseSession implements BenchSession {
  readonly #calls: Agent;
  readonly #streams: Agent;
  readonly #url: URL;
  readonly #replies = new ReplyWaiters();
  #endpoint: URL | undefined;
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
    this.#replies.failAll(new Error('session closed'));
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
          res.once('close', () => this.#replies.failAll(new Error('SSE stream closed')));
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
    this.#replies.settle(data);
  }

  async #rpc(method: string, params: unknown): Promise<unknown> {
    const { id, reply } = this.#replies.expect(method, CALL_TIMEOUT_MS);
    // It may settle while the POST is still under way; the caller awaits it below.
    reply.catch(() => {});
    try {
      await this.#post({ jsonrpc: '2.0', id, method, params });
    } catch (error) {
      this.#replies.forget(id);
      throw error;
    }
    return reply;
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
