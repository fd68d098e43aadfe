// Test helpers: an in-process gateway on 127.0.0.1:0, fixture backends, API keys, SDK clients.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type Dispatcher, fetch as undiciFetch } from 'undici';
import { createKey } from '../../src/auth/key-admin.ts';
import { buildConfig } from '../../src/config/load.ts';
import { createGateway, type Gateway } from '../../src/gateway/create-gateway.ts';
import { createLogger, type Logger, silentLogger } from '../../src/log.ts';

export const FIXTURE_SERVER = fileURLToPath(new URL('../fixtures/stdio-server.mjs', import.meta.url));

/** The server config entry for the hand-written fixture backend in `mode`. */
export function fixtureServer(mode = 'well', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { command: process.execPath, args: [FIXTURE_SERVER, mode], ...extra };
}

export interface TestGateway {
  gateway: Gateway;
  url: string;
  dir: string;
  keysFile: string;
  /** API keys of the users named in `options.users`, created before the gateway started. */
  keys: Record<string, string>;
  close(): Promise<void>;
}

/** Starts a gateway with API-key auth (unless `auth: false`) from a partial config object. */
export async function startGateway(
  input: Record<string, unknown>,
  options: { auth?: boolean; users?: string[]; groups?: Record<string, string[]>; log?: Logger } = {},
): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-test-'));
  const keysFile = join(dir, 'keys.yaml');
  const keys: Record<string, string> = {};
  for (const user of options.users ?? []) {
    keys[user] = (await createKey(keysFile, { user, groups: options.groups?.[user] ?? [] })).key;
  }
  const config = buildConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      ...(options.auth === false ? {} : { auth: { apiKeys: { file: keysFile } } }),
      ...input,
    },
    dir,
  );
  const log = options.log ?? (process.env.MCP_RELAY_TEST_LOG ? createLogger('debug') : silentLogger);
  const gateway = createGateway({ config, log });
  await gateway.listen();
  return {
    gateway,
    url: gateway.url,
    dir,
    keysFile,
    keys,
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An official SDK client connected over Streamable HTTP with a bearer key. */
export async function connectClient(
  url: string,
  key: string | undefined,
  capabilities: Record<string, unknown> = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: key ? { headers: { authorization: `Bearer ${key}` } } : {},
  });
  const client = new Client({ name: 'test-client', version: '1.0.0' }, { capabilities });
  await client.connect(transport);
  return { client, transport };
}

/** The first text content of a tools/call result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content.find((item) => item.type === 'text')?.text ?? '';
}

/**
 * Raw POST with MCP headers, for bad-input tests; `dispatcher` (an undici Agent: a test CA, a pool)
 * sends it with undici's fetch instead of the platform's.
 */
export async function rawPost(
  url: string,
  body: string,
  headers: Record<string, string> = {},
  dispatcher?: Dispatcher,
): Promise<{ status: number; headers: Headers; json: unknown; text: string }> {
  const init = {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      ...headers,
    },
    body,
  };
  const response = dispatcher ? await undiciFetch(url, { ...init, dispatcher }) : await fetch(url, init);
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers as Headers, json, text };
}

/**
 * A reply's answer: its JSON body, or, when the gateway chose a stream (a backend slow to start, on a
 * loaded machine, turns a JSON reply into SSE after a second), the stream's last response.
 */
export function answerOf(reply: { json: unknown; text: string }): unknown {
  if (reply.json !== undefined) return reply.json;
  const messages = [...reply.text.matchAll(/^data: (.+)$/gm)].map((match) => {
    try {
      return JSON.parse(match[1] as string) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  });
  return messages.findLast((message) => message !== undefined && 'id' in message && !('method' in message));
}

export const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

/** A raw session: initialize, then post JSON-RPC with the session id. */
export async function rawSession(url: string, key: string) {
  const auth = { authorization: `Bearer ${key}` };
  const init = await rawPost(url, INITIALIZE, auth);
  if (init.status !== 200) throw new Error(`initialize failed: ${init.status} ${init.text}`);
  const headers = { ...auth, 'mcp-session-id': init.headers.get('mcp-session-id') as string };
  await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers);
  return {
    headers,
    init: answerOf(init) as { result: { protocolVersion: string; serverInfo: { name: string } } },
    call: (
      id: string | number,
      name: string,
      args: Record<string, unknown> = {},
      meta?: Record<string, unknown>,
    ) =>
      rawPost(
        url,
        JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
        }),
        headers,
      ),
    request: (id: string | number, method: string, params: Record<string, unknown> = {}) =>
      rawPost(url, JSON.stringify({ jsonrpc: '2.0', id, method, params }), headers),
    /** Any message, as is. */
    post: (message: unknown) => rawPost(url, JSON.stringify(message), headers),
  };
}

/**
 * Runs `call` and returns, beside its result, the progress values that reached the client's transport
 * and then 'answer': what the gateway delivered, in order. The SDK runs notification handlers a
 * microtask late but takes an answer at once, so progress read together with the answer (one read
 * on a busy machine) never reaches `onprogress`: the SDK drops it, not the gateway.
 */
export async function deliveredDuring<T>(
  client: Client,
  call: () => Promise<T>,
): Promise<{ result: T; delivered: unknown[] }> {
  const transport = client.transport;
  if (!transport) throw new Error('the client is not connected');
  const delivered: unknown[] = [];
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if ('method' in message && message.method === 'notifications/progress')
      delivered.push(message.params?.progress);
    else if ('id' in message && !('method' in message)) delivered.push('answer');
    deliver?.(message, extra);
  };
  try {
    return { result: await call(), delivered };
  } finally {
    transport.onmessage = deliver;
  }
}
