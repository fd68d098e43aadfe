// `mcp-relay connect` without a server: its SSE parser, and its flags parsed by the CLI in-process.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { collectRepeatedFlag } from '../src/cli/flags.ts';
import { deliver } from '../src/connect/delivery.ts';
import { silentBridgeLog } from '../src/connect/diagnostics.ts';
import { GatewayClient } from '../src/connect/gateway-client.ts';
import { type ConnectFlags, parseHeaderFlags, resolveConnectSetup } from '../src/connect/options.ts';
import { parseSse, type SseEvent } from '../src/connect/sse.ts';
import { BRIDGE_BASE_ENV, runCliInProcess } from './helpers/cli.ts';

/** `${NAME}` as a user types it in a flag value (a literal, not a template). */
const envRef = (name: string) => `\${${name}}`;

describe('connect: SSE parser', () => {
  async function collect(chunks: string[]): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    async function* body() {
      for (const chunk of chunks) yield new TextEncoder().encode(chunk);
    }
    for await (const event of parseSse(body())) events.push(event);
    return events;
  }

  it('handles fields split across chunks, CRLF, comments, priming events and multi-line data', async () => {
    const events = await collect([
      ': keep-alive\r\n\r\nid: 1\r',
      '\nretry: 50\r\ndata:\r\n\r\nevent: message\ndata: {"a":',
      '1}\ndata: 2\nid: 7\n\n',
      'data: unfinished',
    ]);
    assert.deepEqual(events, [
      { id: '1', event: 'message', data: '', retry: 50 },
      { id: '7', event: 'message', data: '{"a":1}\n2', retry: undefined },
    ]);
  });
});

describe('connect: flags', () => {
  it('exits with a usage error on a bad flag, without echoing the header value', async () => {
    // Refused before any connection: no server is needed, and stdin is empty (a bridge would end at once).
    const args = ['connect', 'http://127.0.0.1:9/mcp', '--header', 'no-colon-secret'];
    const bridge = await runCliInProcess(args, { env: BRIDGE_BASE_ENV });
    assert.equal(bridge.code, 2);
    assert.match(bridge.stderr, /--header needs "Name: Value"/);
    assert.doesNotMatch(bridge.stderr, /secret/);
  });

  it('collects repeated --header flags in every spelling, up to --', () => {
    assert.deepEqual(
      collectRepeatedFlag(
        ['u', '--header', 'A: 1', '-H', 'B: 2', '--header=C: 3', '--', '-H', 'D'],
        '--header',
        '-H',
      ),
      ['A: 1', 'B: 2', 'C: 3'],
    );
  });

  it('expands environment references (with and without default) and refuses managed headers', () => {
    const env = { TEAM: 'design' };
    assert.deepEqual(parseHeaderFlags([`X-Team: ${envRef('TEAM')}`, `X-Zone: ${envRef('ZONE:-eu')}`], env), {
      'x-team': 'design',
      'x-zone': 'eu',
    });
    assert.throws(() => parseHeaderFlags([`X-Key: ${envRef('MISSING')}`], env), /MISSING is not set/);
    assert.throws(() => parseHeaderFlags(['Mcp-Session-Id: x'], env), /sets this header itself/);
  });
});

describe('connect: --transport', () => {
  const flags = (url: string, transport?: string): ConnectFlags => ({
    url,
    headers: [],
    tokenEnv: 'MCP_RELAY_TOKEN',
    caFile: undefined,
    timeout: '5m',
    transport,
  });
  const env = { MCP_RELAY_TOKEN: 'key' };

  it('defaults to auto and takes http, sse and ws where the URL fits', () => {
    assert.equal(resolveConnectSetup(flags('https://relay.test/mcp/x'), env).transport, 'auto');
    assert.equal(resolveConnectSetup(flags('https://relay.test/mcp/x', 'http'), env).transport, 'http');
    assert.equal(resolveConnectSetup(flags('http://127.0.0.1:8000/sse', 'sse'), env).transport, 'sse');
    assert.equal(resolveConnectSetup(flags('wss://relay.test/ws/x', 'ws'), env).transport, 'ws');
    assert.equal(resolveConnectSetup(flags('ws://127.0.0.1:8000/message'), env).transport, 'auto');
  });

  it('refuses a transport the URL cannot speak, and an unknown one', () => {
    assert.throws(
      () => resolveConnectSetup(flags('wss://relay.test/ws/x', 'sse'), env),
      /needs an http:\/\/ or https:\/\/ URL/,
    );
    assert.throws(
      () => resolveConnectSetup(flags('https://relay.test/mcp/x', 'ws'), env),
      /needs a ws:\/\/ or wss:\/\/ URL/,
    );
    assert.throws(
      () => resolveConnectSetup(flags('https://relay.test/mcp/x', 'stdio'), env),
      /not one of auto, http, sse, ws/,
    );
    assert.throws(() => resolveConnectSetup(flags('ftp://relay.test/x'), env), /ftp: URLs are not supported/);
  });

  it('doctor sends a ws:// URL to connect --verbose', async () => {
    const result = await runCliInProcess(['doctor', 'ws://127.0.0.1:9/message'], {
      env: { ...BRIDGE_BASE_ENV },
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /mcp-relay connect --verbose/);
  });
});

describe('connect: a re-send stays in its session', () => {
  it('a request whose answer was lost is not re-sent into a session started while it waited', async () => {
    let sessions = 0;
    let busy = true;
    const seen: string[] = [];
    let firstRefusal: () => void = () => {};
    const refused = new Promise<void>((resolve) => {
      firstRefusal = resolve;
    });
    const server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += String(chunk);
      const message = JSON.parse(body) as { id?: string; method: string };
      const headers = { 'content-type': 'application/json', 'mcp-relay-retries': '60' };
      if (message.method === 'initialize') {
        sessions++;
        res.writeHead(200, { ...headers, 'mcp-session-id': `S${sessions}` });
        res.end(
          JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-06-18' } }),
        );
        return;
      }
      const session = String(req.headers['mcp-session-id']);
      seen.push(session);
      if (seen.length === 1) {
        req.socket.destroy(); // it ran, and its answer is lost
      } else if (busy) {
        res.writeHead(503, headers).end(); // refused at the door: the re-send waits and tries again
        firstRefusal();
      } else {
        res.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = new GatewayClient({
      url: new URL(`http://127.0.0.1:${port}/mcp`),
      headers: {},
      auth: undefined,
      ca: undefined,
      userAgent: 'test',
    });
    const hooks = (answered: { done: boolean }) => ({
      onMessage: () => {
        answered.done = true;
      },
      answered: () => answered.done,
      signal: AbortSignal.timeout(20_000),
      log: silentBridgeLog,
      retryDelaysMs: [300, 300, 300, 300, 300, 300],
    });
    try {
      await deliver(
        client,
        { jsonrpc: '2.0', id: 'init-1', method: 'initialize', params: {} },
        hooks({ done: false }),
      );
      const call = deliver(
        client,
        { jsonrpc: '2.0', id: 'x', method: 'tools/call', params: { name: 'count' } },
        hooks({ done: false }),
      );
      call.catch(() => undefined);
      await refused;
      // The bridge starts a new session meanwhile (its GET stream saw the gateway restart).
      client.resetSession();
      await deliver(
        client,
        { jsonrpc: '2.0', id: 'init-2', method: 'initialize', params: {} },
        hooks({ done: false }),
      );
      busy = false;
      await assert.rejects(call, /outcome is unknown/);
      assert.ok(seen.length >= 2, 'it was sent again in its session');
      assert.deepEqual([...new Set(seen)], ['S1'], 'never sent into the new session S2');
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
