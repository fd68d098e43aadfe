// The lean WebSocket driver: one socket per session (subprotocol `mcp`), one JSON-RPC message per text
// frame each way; initialize, notifications/initialized, then tools/call, replies matched by id.

import WebSocket from 'ws';
import { type BenchSession, CLIENT_INFO, type Connector, echoText, PROTOCOL_VERSION } from './types.ts';
import { ReplyWaiters } from './waiters.ts';

const CALL_TIMEOUT_MS = 30_000;

class WebSocketSession implements BenchSession {
  readonly #socket: WebSocket;
  readonly #replies = new ReplyWaiters();
  readonly #opened: Promise<void>;

  constructor(url: string) {
    this.#socket = new WebSocket(url, 'mcp', { perMessageDeflate: false });
    this.#opened = new Promise((resolve, reject) => {
      this.#socket.once('open', () => resolve());
      this.#socket.once('error', reject);
    });
    this.#socket.on('message', (data) => this.#replies.settle(String(data)));
    this.#socket.on('error', () => {});
    this.#socket.once('close', (code) => this.#replies.failAll(new Error(`socket closed (${code})`)));
  }

  async start(): Promise<void> {
    await this.#opened;
    await this.#rpc('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: CLIENT_INFO,
    });
    this.#socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  }

  async echo(text: string): Promise<string> {
    return echoText(await this.#rpc('tools/call', { name: 'echo', arguments: { text } }));
  }

  async close(): Promise<void> {
    this.#socket.close();
    this.#replies.failAll(new Error('session closed'));
  }

  #rpc(method: string, params: unknown): Promise<unknown> {
    const { id, reply } = this.#replies.expect(method, CALL_TIMEOUT_MS);
    this.#socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }), (error) => {
      if (error) this.#replies.failAll(error);
    });
    return reply;
  }
}

export function websocketConnector(url: string): Connector {
  const sessions = new Set<WebSocketSession>();
  return {
    async open() {
      const session = new WebSocketSession(url);
      sessions.add(session);
      try {
        await session.start();
      } catch (error) {
        sessions.delete(session);
        await session.close();
        throw error;
      }
      return {
        echo: (text) => session.echo(text),
        close: async () => {
          sessions.delete(session);
          await session.close();
        },
      };
    },
    pids: () => [],
    async close() {
      await Promise.all([...sessions].map((session) => session.close()));
      sessions.clear();
    },
  };
}
