// An SDK client over the gateway's WebSocket front. The SDK's WebSocketClientTransport uses the
// global (browser) WebSocket, which cannot send an Authorization header, so this transport is the
// same few lines over the `ws` package with headers; both offer the subprotocol `mcp`.

import type { ClientRequestArgs } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { type JSONRPCMessage, JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';
import WebSocket from 'ws';
import { connectLegacyClient } from './fronts.ts';
import { connectClient } from './gateway.ts';

/** `http://host:port/mcp/x` → `ws://host:port/ws/x`. */
export function wsUrlOf(base: string, server?: string): string {
  const url = new URL(base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = server === undefined ? '/ws' : `/ws/${server}`;
  return url.toString();
}

export class BearerWebSocketTransport implements Transport {
  readonly socket: WebSocket;
  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  /** The close code and reason the gateway sent, once closed. */
  closed: Promise<{ code: number; reason: string }>;

  constructor(
    url: string,
    key: string | undefined,
    headers: Record<string, string> = {},
    /** TLS and connection options of the socket (a test CA, a lookup). */
    options: WebSocket.ClientOptions | ClientRequestArgs = {},
  ) {
    this.socket = new WebSocket(url, 'mcp', {
      ...options,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
      autoPong: true,
    });
    this.closed = new Promise((resolve) =>
      this.socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve());
      this.socket.once('error', reject);
      this.socket.once('unexpected-response', (_req, res) => {
        // The refusal's JSON-RPC error message, as the HTTP client shows it.
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => reject(new Error(`upgrade refused: ${res.statusCode} ${body}`)));
      });
      this.socket.on('message', (data) => {
        let message: JSONRPCMessage;
        try {
          message = JSONRPCMessageSchema.parse(JSON.parse(String(data)));
        } catch (error) {
          this.onerror?.(error as Error);
          return;
        }
        this.onmessage?.(message);
      });
      this.socket.on('close', () => this.onclose?.());
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    this.socket.send(JSON.stringify(message));
  }

  async close(): Promise<void> {
    this.socket.close();
  }
}

export type Front = 'http' | 'ws' | 'sse';

/** An SDK client of `server` over any front with a bearer key: the same tests run over each. */
export async function connectOver(
  front: Front,
  base: string,
  server: string,
  key: string | undefined,
  capabilities: Record<string, unknown> = {},
): Promise<{ client: Client; close(): Promise<void> }> {
  if (front === 'http') {
    const { client } = await connectClient(`${base}/mcp/${server}`, key, capabilities);
    return { client, close: () => client.close() };
  }
  if (front === 'sse') {
    const client = await connectLegacyClient(`${base}/mcp/${server}/sse`, key);
    return { client, close: () => client.close() };
  }
  const transport = new BearerWebSocketTransport(wsUrlOf(base, server), key);
  const client = new Client({ name: 'test-client', version: '1.0.0' }, { capabilities });
  await client.connect(transport);
  return { client, close: () => client.close() };
}

/** The HTTP status a refused upgrade was answered with, and its headers and body. */
export function refusedUpgrade(
  url: string,
  headers: Record<string, string> = {},
  protocols: string | string[] = 'mcp',
  options: WebSocket.ClientOptions | ClientRequestArgs = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocols, { ...options, headers });
    socket.once('open', () => {
      socket.close();
      reject(new Error('the upgrade was accepted'));
    });
    socket.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    socket.once('error', (error) => {
      if (!String(error.message).startsWith('Unexpected server response')) reject(error);
    });
  });
}
