// Every Streamable HTTP rule the gateway enforces, each with its status code and JSON-RPC error.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  connectClient,
  fixtureServer,
  INITIALIZE,
  rawPost,
  startGateway,
  type TestGateway,
} from './helpers/gateway.ts';

describe('Streamable HTTP rules', () => {
  let gw: TestGateway;
  let endpoint: string;
  let auth: Record<string, string>;
  let session: string;

  before(async () => {
    gw = await startGateway(
      { servers: { echo: fixtureServer() }, limits: { maxBodyBytes: '2KiB' } },
      { users: ['alice'] },
    );
    endpoint = `${gw.url}/mcp/echo`;
    auth = { authorization: `Bearer ${gw.keys.alice}` };
    const init = await rawPost(endpoint, INITIALIZE, auth);
    assert.equal(init.status, 200);
    session = init.headers.get('mcp-session-id') as string;
    assert.match(session, /^[0-9a-f-]{36}$/);
  });
  after(() => gw.close());

  const listTools = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
  const errorOf = (json: unknown) => (json as { error: { code: number; message: string } }).error;

  it('401 with WWW-Authenticate when the key is missing or wrong', async () => {
    const missing = await rawPost(endpoint, INITIALIZE);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp-relay"/);
    const wrong = await rawPost(endpoint, INITIALIZE, { authorization: 'Bearer mcpr_not-a-real-key' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    const basic = await rawPost(endpoint, INITIALIZE, { authorization: 'Basic YWxpY2U6cHc=' });
    assert.equal(basic.status, 401);
  });

  it('406 when Accept does not list both JSON and SSE', async () => {
    const reply = await rawPost(endpoint, listTools, {
      ...auth,
      'mcp-session-id': session,
      accept: 'application/json',
    });
    assert.equal(reply.status, 406);
    assert.equal(errorOf(reply.json).code, -32600);
  });

  it('415 when Content-Type is not JSON', async () => {
    const reply = await rawPost(endpoint, listTools, {
      ...auth,
      'mcp-session-id': session,
      'content-type': 'text/plain',
    });
    assert.equal(reply.status, 415);
  });

  it('413 when the body is too large, declared or streamed', async () => {
    const big = JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { pad: 'x'.repeat(5_000) },
    });
    const reply = await rawPost(endpoint, big, { ...auth, 'mcp-session-id': session });
    assert.equal(reply.status, 413);
    assert.match(errorOf(reply.json).message, /exceeds 2048 bytes/);
    const chunked = await new Promise<number>((resolve, reject) => {
      const url = new URL(endpoint);
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: {
            ...auth,
            'mcp-session-id': session,
            accept: 'application/json, text/event-stream',
            'content-type': 'application/json',
            'transfer-encoding': 'chunked',
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(big.slice(0, 1_500));
      req.end(big.slice(1_500));
    });
    assert.equal(chunked, 413);
  });

  it('400 with -32700 for malformed JSON', async () => {
    const reply = await rawPost(endpoint, '{"jsonrpc": "2.0", "id": 1, "method": ', {
      ...auth,
      'mcp-session-id': session,
    });
    assert.equal(reply.status, 400);
    assert.equal(errorOf(reply.json).code, -32700);
  });

  it('400 for a batch array', async () => {
    const reply = await rawPost(endpoint, `[${listTools}]`, { ...auth, 'mcp-session-id': session });
    assert.equal(reply.status, 400);
    assert.match(errorOf(reply.json).message, /batches are not supported/);
  });

  it('400 with -32600 for something that is not a JSON-RPC message, echoing a usable id', async () => {
    const cases = [
      '42',
      '{"id": 1, "method": "tools/list"}',
      '{"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"}',
      '{"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": [1, 2]}',
      '{"jsonrpc": "2.0", "id": 9, "result": {}, "error": {"code": 1, "message": "x"}}',
    ];
    for (const body of cases) {
      const reply = await rawPost(endpoint, body, { ...auth, 'mcp-session-id': session });
      assert.equal(reply.status, 400, body);
      assert.equal(errorOf(reply.json).code, -32600, body);
    }
    const withId = await rawPost(endpoint, cases[3] as string, { ...auth, 'mcp-session-id': session });
    assert.equal((withId.json as { id: unknown }).id, 9);
  });

  it('400 without a session id, 404 with an unknown one', async () => {
    const missing = await rawPost(endpoint, listTools, auth);
    assert.equal(missing.status, 400);
    assert.match(errorOf(missing.json).message, /Mcp-Session-Id header is required/);
    const unknown = await rawPost(endpoint, listTools, { ...auth, 'mcp-session-id': 'no-such-session' });
    assert.equal(unknown.status, 404);
    assert.equal(errorOf(unknown.json).code, -32002);
  });

  it('400 for an unsupported MCP-Protocol-Version; absent is fine', async () => {
    const bad = await rawPost(endpoint, listTools, {
      ...auth,
      'mcp-session-id': session,
      'mcp-protocol-version': '1999-01-01',
    });
    assert.equal(bad.status, 400);
    const absent = await rawPost(endpoint, listTools, { ...auth, 'mcp-session-id': session });
    assert.equal(absent.status, 200);
    const known = await rawPost(endpoint, listTools, {
      ...auth,
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
    });
    assert.equal(known.status, 200);
  });

  it('403 for a foreign Origin, fine without one or from the same origin', async () => {
    const foreign = await rawPost(endpoint, listTools, {
      ...auth,
      'mcp-session-id': session,
      origin: 'https://evil.example',
    });
    assert.equal(foreign.status, 403);
    const same = await rawPost(endpoint, listTools, { ...auth, 'mcp-session-id': session, origin: gw.url });
    assert.equal(same.status, 200);
  });

  it('421 for a Host that is not loopback while bound to loopback (DNS rebinding)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(endpoint);
      const req = request(
        { host: url.hostname, port: url.port, path: '/healthz', headers: { host: 'attacker.example' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 421);
  });

  it('405 with Allow for other methods', async () => {
    const reply = await fetch(endpoint, { method: 'PUT', headers: auth });
    assert.equal(reply.status, 405);
    assert.equal(reply.headers.get('allow'), 'GET, POST, DELETE');
  });

  it('202 for notifications, 400 for a response to nothing this session was asked', async () => {
    const note = await rawPost(
      endpoint,
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      {
        ...auth,
        'mcp-session-id': session,
      },
    );
    assert.equal(note.status, 202);
    assert.equal(note.text, '');
    const response = await rawPost(endpoint, JSON.stringify({ jsonrpc: '2.0', id: 'srv-1', result: {} }), {
      ...auth,
      'mcp-session-id': session,
    });
    assert.equal(response.status, 400);
  });

  it('GET: 406 without text/event-stream, a second stream replaces the first, keep-alive comments', async () => {
    const wrong = await fetch(endpoint, {
      headers: { ...auth, 'mcp-session-id': session, accept: 'application/json' },
    });
    assert.equal(wrong.status, 406);
    await wrong.text();
    const controller = new AbortController();
    const first = await fetch(endpoint, {
      headers: { ...auth, 'mcp-session-id': session, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), 'text/event-stream');
    // A second GET replaces the first, which ends rather than staying open beside it.
    const second = await fetch(endpoint, {
      headers: { ...auth, 'mcp-session-id': session, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(second.status, 200);
    await first.text();
    controller.abort();
  });

  it('answers 404 for unknown paths and unknown servers (after auth)', async () => {
    assert.equal((await fetch(`${gw.url}/nothing`)).status, 404);
    const unknownServer = await rawPost(`${gw.url}/mcp/nope`, INITIALIZE, auth);
    assert.equal(unknownServer.status, 404);
    const unauthenticated = await rawPost(`${gw.url}/mcp/nope`, INITIALIZE);
    assert.equal(unauthenticated.status, 401);
  });

  it('lets an eleventh SDK client in after ten that closed without DELETE (default limits)', async () => {
    const gw = await startGateway({ servers: { echo: fixtureServer() } }, { users: ['erin'] });
    try {
      for (let i = 0; i < 12; i++) {
        const { client } = await connectClient(`${gw.url}/mcp`, gw.keys.erin);
        await client.listTools();
        await client.close(); // the SDK's close() sends no DELETE
      }
    } finally {
      await gw.close();
    }
  });

  it('caps sessions per user: the least recently used idle one makes room, 429 only when all are busy', async () => {
    const capped = await startGateway(
      { servers: { echo: fixtureServer() }, limits: { sessionsPerUser: 2 } },
      { users: ['dave'] },
    );
    try {
      const headers = { authorization: `Bearer ${capped.keys.dave}` };
      const url = `${capped.url}/mcp`;
      const open = async () => {
        const init = await rawPost(url, INITIALIZE, headers);
        assert.equal(init.status, 200, init.text);
        return { ...headers, 'mcp-session-id': init.headers.get('mcp-session-id') as string };
      };
      const call = (session: Record<string, string>, id: number, name: string, args = {}) =>
        rawPost(
          url,
          JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }),
          session,
        );
      // Clients that never send DELETE (the SDK's close(), mcp-remote, the Inspector) leave idle sessions.
      const first = await open();
      const second = await open();
      assert.equal((await call(second, 1, 'echo', { text: 'recent' })).status, 200);
      const third = await open();
      assert.equal((await call(first, 2, 'echo')).status, 404, 'the least recently used session made room');
      assert.equal((await call(second, 3, 'echo')).status, 200);
      // Both left are busy: nothing may be ended for a newcomer.
      const busy = [call(second, 4, 'sleep', { ms: 800 }), call(third, 5, 'sleep', { ms: 800 })];
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await rawPost(url, INITIALIZE, headers);
      assert.equal(refused.status, 429);
      assert.match(errorOf(refused.json).message, /at most 2 per user/);
      for (const reply of await Promise.all(busy)) assert.equal(reply.status, 200);
    } finally {
      await capped.close();
    }
  });
});
