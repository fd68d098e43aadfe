// The gateway with the official SDK client as the peer: sessions, users, progress, sampling, backends.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import {
  connectClient,
  fixtureServer,
  INITIALIZE,
  rawPost,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';

describe('gateway with the SDK client', () => {
  let gw: TestGateway;
  let aliceKey: string;
  let bobKey: string;

  before(async () => {
    gw = await startGateway({ servers: { echo: fixtureServer() } }, { users: ['alice', 'bob'] });
    aliceKey = gw.keys.alice as string;
    bobKey = gw.keys.bob as string;
  });
  after(() => gw.close());

  it('initializes, lists and calls tools through /mcp/<name> and /mcp', async () => {
    for (const path of ['/mcp/echo', '/mcp']) {
      const { client } = await connectClient(`${gw.url}${path}`, aliceKey);
      const tools = await client.listTools();
      assert.ok(tools.tools.some((tool) => tool.name === 'echo'));
      const result = await client.callTool({ name: 'echo', arguments: { text: `hello via ${path}` } });
      assert.equal(textOf(result), `hello via ${path}`);
      await client.close();
    }
  });

  it('gives each session its own backend that knows the user', async () => {
    const alice = await connectClient(`${gw.url}/mcp/echo`, aliceKey);
    const bob = await connectClient(`${gw.url}/mcp/echo`, bobKey);
    assert.equal(textOf(await alice.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    assert.equal(textOf(await bob.client.callTool({ name: 'whoami', arguments: {} })), 'bob');
    await Promise.all([alice.client.close(), bob.client.close()]);
  });

  it("answers 404 when one user presents another user's session id", async () => {
    const alice = await connectClient(`${gw.url}/mcp/echo`, aliceKey);
    const sessionId = alice.transport.sessionId;
    assert.ok(sessionId);
    const call = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' });
    const asBob = await rawPost(`${gw.url}/mcp/echo`, call, {
      authorization: `Bearer ${bobKey}`,
      'mcp-session-id': sessionId,
    });
    assert.equal(asBob.status, 404);
    assert.deepEqual((asBob.json as { id: number }).id, 7);
    const asAlice = await rawPost(`${gw.url}/mcp/echo`, call, {
      authorization: `Bearer ${aliceKey}`,
      'mcp-session-id': sessionId,
    });
    assert.equal(asAlice.status, 200);
    await alice.client.close();
  });

  it('streams progress notifications before the result (SSE)', async () => {
    const { client } = await connectClient(`${gw.url}/mcp/echo`, aliceKey);
    const seen: number[] = [];
    const result = await client.callTool({ name: 'progress', arguments: { steps: 4 } }, undefined, {
      onprogress: (progress) => seen.push(progress.progress),
    });
    assert.equal(textOf(result), 'done 4');
    assert.deepEqual(seen, [1, 2, 3, 4]);
    await client.close();
  });

  it('carries a sampling request to the client and its answer back to the backend', async () => {
    const { client } = await connectClient(`${gw.url}/mcp/echo`, aliceKey, { sampling: {} });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'from alice' },
      model: 'test',
    }));
    const result = await client.callTool({ name: 'sample', arguments: {} });
    assert.equal(textOf(result), 'sampled: from alice');
    await client.close();
  });

  it('ends the session and stops its backend on DELETE', async () => {
    const { client, transport } = await connectClient(`${gw.url}/mcp/echo`, aliceKey);
    const sessionId = transport.sessionId as string;
    const before = (await (await fetch(`${gw.url}/healthz`)).json()) as { backends: number };
    assert.ok(before.backends >= 1);
    await transport.terminateSession();
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const afterDelete = await rawPost(`${gw.url}/mcp/echo`, call, {
      authorization: `Bearer ${aliceKey}`,
      'mcp-session-id': sessionId,
    });
    assert.equal(afterDelete.status, 404);
    await client.close();
  });

  it('keeps number and string ids apart', async () => {
    const init = await rawPost(`${gw.url}/mcp/echo`, INITIALIZE, { authorization: `Bearer ${aliceKey}` });
    const session = init.headers.get('mcp-session-id') as string;
    const headers = { authorization: `Bearer ${aliceKey}`, 'mcp-session-id': session };
    const [numeric, textual] = await Promise.all([
      rawPost(`${gw.url}/mcp/echo`, JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' }), headers),
      rawPost(`${gw.url}/mcp/echo`, JSON.stringify({ jsonrpc: '2.0', id: '5', method: 'ping' }), headers),
    ]);
    assert.deepEqual(numeric.json, { jsonrpc: '2.0', id: 5, result: {} });
    assert.deepEqual(textual.json, { jsonrpc: '2.0', id: '5', result: {} });
  });
});

/**
 * An SDK client on `url` once its backend answers. A server's short requestTimeout also bounds the
 * initialize that starts its backend, which a loaded machine can take longer than; so initialize is
 * tried again within a start-up budget (the backend, one per user, keeps starting meanwhile), and the
 * short timeout is left to bound only the calls under test.
 */
async function connectOnceStarted(url: string, key: string, budgetMs = 30_000): Promise<Client> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    });
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    try {
      await client.connect(transport);
      return client;
    } catch (error) {
      await client.close();
      if (Date.now() > deadline) throw error;
    }
  }
}

describe('misbehaving backends', () => {
  let gw: TestGateway;
  let key: string;

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          crash: fixtureServer('crash-on-call'),
          hang: fixtureServer('hang', { requestTimeout: '700ms' }),
          garbage: fixtureServer('garbage', { requestTimeout: '700ms' }),
          missing: { command: '/nonexistent/binary' },
        },
      },
      { users: ['carol'] },
    );
    key = gw.keys.carol as string;
  });
  after(() => gw.close());

  it('fails the call at once when the backend crashes mid-call', async () => {
    const { client } = await connectClient(`${gw.url}/mcp/crash`, key);
    const started = Date.now();
    await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'x' } }), /backend exited/);
    assert.ok(Date.now() - started < 5_000);
    await client.close();
  });

  it('answers a call the backend never answers with a timeout error', async () => {
    const client = await connectOnceStarted(`${gw.url}/mcp/hang`, key);
    await assert.rejects(
      client.callTool({ name: 'echo', arguments: { text: 'x' } }),
      /timed out after 700 ms/,
    );
    // The session is still usable afterwards.
    assert.ok((await client.listTools()).tools.length > 0);
    await client.close();
  });

  it('ignores garbage on stdout and still answers (with a timeout error)', async () => {
    const client = await connectOnceStarted(`${gw.url}/mcp/garbage`, key);
    await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'x' } }), /timed out/);
    assert.ok((await client.listTools()).tools.length > 0);
    await client.close();
  });

  it('answers initialize with an error when the command cannot be started', async () => {
    const reply = await rawPost(`${gw.url}/mcp/missing`, INITIALIZE, { authorization: `Bearer ${key}` });
    const body = reply.json as { error?: { code: number; message: string } };
    assert.equal(body.error?.code, -32000);
    assert.match(body.error?.message ?? '', /could not be started/);
  });
});
