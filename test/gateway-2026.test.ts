// MCP 2026-07-28 (stateless) clients at the gateway, in front of an unchanged 2025 stdio server built on
// the official SDK 1.x: the split SDK v2 client (`@modelcontextprotocol/client` 2.4.0) pinned to
// 2026-07-28 and in auto mode discovers, lists, calls, is asked for input through MRTR (elicitation,
// sampling, roots), listens for list changes and cancels; raw requests check the header and status
// rules; a 2025 client on the same URL still gets its session.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';
import { BRIDGE_BASE_ENV } from './helpers/cli.ts';
import {
  answerOf,
  connectClient,
  rawPost,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';

const TIMEOUT = { timeout: 30_000 };
const SDK1_SERVER = fileURLToPath(new URL('./fixtures/sdk1-server.mjs', import.meta.url));
const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));
const CONFORMANCE_SERVER = fileURLToPath(new URL('./fixtures/conformance-server.mjs', import.meta.url));
const MODERN = '2026-07-28';

function sdk1Server(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { command: process.execPath, args: [SDK1_SERVER], ...extra };
}

async function modernClient(
  url: string,
  key: string,
  options: { mode?: 'auto' | { pin: string }; capabilities?: Record<string, unknown> } = {},
): Promise<ClientV2> {
  const client = new ClientV2(
    { name: 'v2-test', version: '2.4.0' },
    {
      versionNegotiation: { mode: options.mode ?? { pin: MODERN } },
      capabilities: options.capabilities ?? {},
    },
  );
  await client.connect(
    new HttpV2(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }),
  );
  return client;
}

function envelope(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    ...extra,
  };
}

function modernHeaders(key: string, method: string, name?: string): Record<string, string> {
  return {
    authorization: `Bearer ${key}`,
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
    ...(name === undefined ? {} : { 'mcp-name': name }),
  };
}

describe('2026-07-28 clients at the gateway', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          legacy: sdk1Server({ isolation: 'per-user' }),
          shared: sdk1Server({ isolation: 'shared' }),
          old: sdk1Server({ protocol: 'legacy' }),
          // One conformance fixture per test below, so a call one test leaves parked never makes
          // another's server→client requests ambiguous.
          gather: { command: process.execPath, args: [CONFORMANCE_SERVER], isolation: 'per-user' },
          stray: { command: process.execPath, args: [CONFORMANCE_SERVER], isolation: 'per-user' },
          params: { command: process.execPath, args: [CONFORMANCE_SERVER], isolation: 'per-user' },
        },
      },
      { users: ['alice', 'bob'] },
    );
    url = `${gw.url}/mcp/legacy`;
  });
  after(() => gw.close());

  it(
    'a pinned SDK v2 client discovers, lists (cache hints enforced by the client) and calls',
    TIMEOUT,
    async () => {
      const client = await modernClient(url, gw.keys.alice as string);
      assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(client.getServerCapabilities()?.tools?.listChanged, true);
      const tools = await client.listTools();
      assert.ok(tools.tools.some((tool) => tool.name === 'ask'));
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hi 2026' } });
      assert.equal(textOf(result), 'hi 2026');
      const prompt = await client.getPrompt({ name: 'greet', arguments: { who: 'Ada' } });
      assert.match(JSON.stringify(prompt.messages), /Say hello to Ada/);
      const read = await client.readResource({ uri: 'note://a' });
      assert.match(JSON.stringify(read.contents), /a note/);
      await client.close();
    },
  );

  it('an auto-mode SDK v2 client picks 2026-07-28 now', TIMEOUT, async () => {
    const client = await modernClient(url, gw.keys.bob as string, { mode: 'auto' });
    assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'auto' } })), 'auto');
    await client.close();
  });

  it(
    'elicitation, sampling and roots of a 2025 backend reach the client as input rounds (MRTR)',
    TIMEOUT,
    async () => {
      const client = new ClientV2(
        { name: 'v2-input', version: '2.4.0' },
        {
          versionNegotiation: { mode: { pin: MODERN } },
          capabilities: { elicitation: { form: {} }, sampling: {}, roots: {} },
        },
      );
      client.setRequestHandler('elicitation/create', async () => ({
        action: 'accept',
        content: { name: 'Ada' },
      }));
      client.setRequestHandler('sampling/createMessage', async () => ({
        role: 'assistant',
        content: { type: 'text', text: 'forty-two' },
        model: 'test-model',
      }));
      client.setRequestHandler('roots/list', async () => ({
        roots: [{ uri: 'file:///home/alice/project' }],
      }));
      await client.connect(
        new HttpV2(new URL(url), { requestInit: { headers: { authorization: `Bearer ${gw.keys.alice}` } } }),
      );
      assert.equal(
        textOf(await client.callTool({ name: 'ask', arguments: { question: 'Name?' } })),
        'hello Ada',
      );
      assert.equal(
        textOf(await client.callTool({ name: 'sample', arguments: { prompt: 'meaning?' } })),
        'model said: forty-two',
      );
      assert.equal(
        textOf(await client.callTool({ name: 'roots', arguments: {} })),
        'file:///home/alice/project',
      );
      await client.close();
    },
  );

  it('a client without the capability gets -32021 naming it; the backend call ends', TIMEOUT, async () => {
    const reply = await rawPost(
      url,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'ask', arguments: { question: 'Name?' }, _meta: envelope() },
      }),
      modernHeaders(gw.keys.alice as string, 'tools/call', 'ask'),
    );
    assert.equal(reply.status, 400);
    assert.deepEqual(reply.json, {
      jsonrpc: '2.0',
      id: 7,
      error: {
        code: -32021,
        message: 'Missing required client capability',
        data: { requiredCapabilities: { elicitation: {} } },
      },
    });
  });

  it('a requestState that is forged, reused or another user’s is refused: call again', TIMEOUT, async () => {
    const ask = (key: string, params: Record<string, unknown>) =>
      rawPost(
        url,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: 'ask',
            arguments: { question: 'Name?' },
            ...params,
            _meta: envelope({ 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } }),
          },
        }),
        modernHeaders(key, 'tools/call', 'ask'),
      );
    const first = await ask(gw.keys.alice as string, {});
    const result = (first.json as { result: Record<string, unknown> }).result;
    assert.equal(result.resultType, 'input_required');
    const [key] = Object.keys(result.inputRequests as object);
    assert.ok(key);
    const inputResponses = { [key]: { action: 'accept', content: { name: 'Eve' } } };
    const stolen = await ask(gw.keys.bob as string, { requestState: result.requestState, inputResponses });
    assert.equal((stolen.json as { error: { code: number } }).error.code, -32602);
    const forged = await ask(gw.keys.alice as string, { requestState: 'x'.repeat(24), inputResponses });
    assert.match((forged.json as { error: { message: string } }).error.message, /call again/);
    const done = await ask(gw.keys.alice as string, { requestState: result.requestState, inputResponses });
    assert.equal(textOf((done.json as { result: unknown }).result), 'hello Eve');
    const reused = await ask(gw.keys.alice as string, { requestState: result.requestState, inputResponses });
    assert.equal((reused.json as { error: { code: number } }).error.code, -32602);
  });

  it('listen delivers tools/list_changed, tagged with the listen id', TIMEOUT, async () => {
    const client = await modernClient(url, gw.keys.bob as string);
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler('notifications/tools/list_changed', () => resolve()),
    );
    const subscription = await client.listen({ toolsListChanged: true });
    assert.equal(subscription.honoredFilter.toolsListChanged, true);
    await client.callTool({ name: 'grow', arguments: { name: 'sprout' } });
    await changed;
    const tools = await client.listTools();
    assert.ok(tools.tools.some((tool) => tool.name === 'sprout'));
    await subscription.close();
    await client.close();
  });

  it(
    'refuses a ninth open listen stream of one user and server, and admits one again when a stream closes',
    TIMEOUT,
    async () => {
      const key = gw.keys.bob as string;
      const listen = (id: number, signal?: AbortSignal) =>
        fetch(url, {
          method: 'POST',
          signal,
          headers: {
            ...modernHeaders(key, 'subscriptions/listen'),
            accept: 'application/json, text/event-stream',
            'content-type': 'application/json',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id,
            method: 'subscriptions/listen',
            params: { notifications: { toolsListChanged: true }, _meta: envelope() },
          }),
        });
      const aborts = Array.from({ length: 8 }, () => new AbortController());
      const open = await Promise.all(aborts.map((abort, index) => listen(index, abort.signal)));
      for (const response of open)
        assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
      const ninth = await listen(9);
      assert.deepEqual(((await ninth.json()) as { error: { code: number; message: string } }).error, {
        code: -32603,
        message: 'Subscription limit reached (8 per user and server)',
      });
      aborts[0]?.abort();
      let again: Response | undefined;
      for (let tries = 0; tries < 50; tries++) {
        again = await listen(10);
        if ((again.headers.get('content-type') ?? '').includes('text/event-stream')) break;
        await again.text();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.match(again?.headers.get('content-type') ?? '', /text\/event-stream/);
      await again?.body?.cancel();
      for (const abort of aborts) abort.abort();
    },
  );

  it('closing the request cancels the call at the backend', TIMEOUT, async () => {
    const client = await modernClient(url, gw.keys.alice as string);
    const before = Number(textOf(await client.callTool({ name: 'cancelled', arguments: {} })));
    const abort = new AbortController();
    const call = client.callTool({ name: 'slow', arguments: { ms: 20_000 } }, { signal: abort.signal });
    await new Promise((resolve) => setTimeout(resolve, 500));
    abort.abort();
    await assert.rejects(call);
    let seen = before;
    for (let tries = 0; tries < 50 && seen === before; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      seen = Number(textOf(await client.callTool({ name: 'cancelled', arguments: {} })));
    }
    assert.equal(seen, before + 1);
    await client.close();
  });

  it('per-user isolation holds for 2026 clients: each user reaches their own backend', TIMEOUT, async () => {
    const alice = await modernClient(url, gw.keys.alice as string);
    const bob = await modernClient(url, gw.keys.bob as string);
    const pidOf = async (client: ClientV2) =>
      textOf(await client.callTool({ name: 'whoami-pid', arguments: {} }));
    assert.notEqual(await pidOf(alice), await pidOf(bob));
    assert.equal(await pidOf(alice), await pidOf(alice));
    await alice.close();
    await bob.close();
  });

  it('a 2025 client on the same URL still gets a session and its elicitation', TIMEOUT, async () => {
    const { client } = await connectClient(url, gw.keys.alice, { elicitation: {} });
    const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    client.setRequestHandler(ElicitRequestSchema, async () => ({
      action: 'accept',
      content: { name: 'Old' },
    }));
    assert.equal(textOf(await client.callTool({ name: 'ask', arguments: { question: '?' } })), 'hello Old');
    await client.close();
  });

  it('the header, version and method rules answer with the 2026 codes and statuses', TIMEOUT, async () => {
    const key = gw.keys.alice as string;
    const post = (body: Record<string, unknown>, headers: Record<string, string>) =>
      rawPost(url, JSON.stringify({ jsonrpc: '2.0', id: 3, ...body }), headers);
    const list = { method: 'tools/list', params: { _meta: envelope() } };
    const codeOf = (reply: { json: unknown; text: string }) =>
      (answerOf(reply) as { error?: { code: number } }).error?.code;

    const noMethodHeader = await post(list, {
      authorization: `Bearer ${key}`,
      'mcp-protocol-version': MODERN,
    });
    assert.deepEqual([noMethodHeader.status, codeOf(noMethodHeader)], [400, -32020]);
    const wrongMethod = await post(list, modernHeaders(key, 'tools/call'));
    assert.deepEqual([wrongMethod.status, codeOf(wrongMethod)], [400, -32020]);
    const wrongName = await post(
      { method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' }, _meta: envelope() } },
      modernHeaders(key, 'tools/call', 'other'),
    );
    assert.deepEqual([wrongName.status, codeOf(wrongName)], [400, -32020]);
    const base64Name = await post(
      { method: 'tools/call', params: { name: 'echo', arguments: { text: 'b64' }, _meta: envelope() } },
      modernHeaders(key, 'tools/call', `=?base64?${Buffer.from('echo').toString('base64')}?=`),
    );
    assert.equal(textOf((answerOf(base64Name) as { result: unknown }).result), 'b64');

    const future = await post(
      {
        method: 'tools/list',
        params: { _meta: envelope({ 'io.modelcontextprotocol/protocolVersion': '2099-01-01' }) },
      },
      { ...modernHeaders(key, 'tools/list'), 'mcp-protocol-version': '2099-01-01' },
    );
    assert.equal(future.status, 400);
    assert.deepEqual((future.json as { error: unknown }).error, {
      code: -32022,
      message: 'Unsupported protocol version',
      data: { supported: [MODERN], requested: '2099-01-01' },
    });
    const noEnvelope = await post({ method: 'tools/list', params: {} }, modernHeaders(key, 'tools/list'));
    assert.deepEqual([noEnvelope.status, codeOf(noEnvelope)], [400, -32602]);
    const noCapabilities = await post(
      { method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN } } },
      modernHeaders(key, 'tools/list'),
    );
    assert.deepEqual([noCapabilities.status, codeOf(noCapabilities)], [400, -32602]);
    for (const method of ['ping', 'initialize', 'logging/setLevel', 'resources/subscribe', 'tasks/list']) {
      const removed = await post({ method, params: { _meta: envelope() } }, modernHeaders(key, method));
      assert.deepEqual([method, removed.status, codeOf(removed)], [method, 404, -32601]);
    }
    const get = await fetch(url, {
      headers: {
        authorization: `Bearer ${key}`,
        accept: 'text/event-stream',
        'mcp-protocol-version': MODERN,
      },
    });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');

    const listed = await post(list, modernHeaders(key, 'tools/list'));
    const result = (answerOf(listed) as { result: Record<string, unknown> }).result;
    assert.equal(result.resultType, 'complete');
    assert.equal(result.ttlMs, 0);
    assert.equal(result.cacheScope, 'private');
    assert.deepEqual((result._meta as Record<string, unknown>)['io.modelcontextprotocol/serverInfo'], {
      name: 'sdk1-fixture',
      version: '1.0.0',
    });
    assert.equal(listed.headers.get('mcp-session-id'), null);
  });

  it(
    'a server with protocol: legacy refuses 2026 requests so dual-era clients fall back',
    TIMEOUT,
    async () => {
      const oldUrl = `${gw.url}/mcp/old`;
      const reply = await rawPost(
        oldUrl,
        JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: envelope() } }),
        modernHeaders(gw.keys.alice as string, 'server/discover'),
      );
      assert.equal(reply.status, 400);
      assert.equal((reply.json as { error: { code: number } }).error.code, -32600);
      const client = await modernClient(oldUrl, gw.keys.alice as string, { mode: 'auto' });
      assert.notEqual(client.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'legacy' } })), 'legacy');
      await client.close();
    },
  );

  it(
    'the whole path: an SDK v2 stdio client pinned to 2026-07-28 → connect → gateway → 2025 backend',
    TIMEOUT,
    async () => {
      const client = new ClientV2(
        { name: 'v2-stdio', version: '2.4.0' },
        { versionNegotiation: { mode: { pin: MODERN } }, capabilities: { elicitation: { form: {} } } },
      );
      client.setRequestHandler('elicitation/create', async () => ({
        action: 'accept',
        content: { name: 'Desk' },
      }));
      const changed = new Promise<void>((resolve) =>
        client.setNotificationHandler('notifications/tools/list_changed', () => resolve()),
      );
      await client.connect(
        new StdioV2({
          command: process.execPath,
          args: [RUN_CLI, 'connect', url],
          env: { ...BRIDGE_BASE_ENV, MCP_RELAY_TOKEN: gw.keys.bob as string },
          stderr: 'ignore',
        }),
      );
      try {
        assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
        assert.equal(
          textOf(await client.callTool({ name: 'echo', arguments: { text: 'bridged' } })),
          'bridged',
        );
        assert.equal(
          textOf(await client.callTool({ name: 'ask', arguments: { question: '?' } })),
          'hello Desk',
        );
        const subscription = await client.listen({ toolsListChanged: true });
        await client.callTool({ name: 'grow', arguments: { name: 'bridged-sprout' } });
        await changed;
        await subscription.close();
      } finally {
        await client.close();
      }
    },
  );

  it('a shared backend serves two users’ 2026 calls with their own answers', TIMEOUT, async () => {
    const sharedUrl = `${gw.url}/mcp/shared`;
    const alice = await modernClient(sharedUrl, gw.keys.alice as string);
    const bob = await modernClient(sharedUrl, gw.keys.bob as string);
    const calls = [];
    for (let index = 0; index < 20; index++) {
      const client = index % 2 === 0 ? alice : bob;
      const text = `${index % 2 === 0 ? 'alice' : 'bob'}-${index}`;
      calls.push(
        client.callTool({ name: 'echo', arguments: { text } }).then((result) => [text, textOf(result)]),
      );
    }
    for (const [sent, got] of await Promise.all(calls)) assert.equal(got, sent);
    await alice.close();
    await bob.close();
  });

  it('asks a backend sends together reach the client in one InputRequiredResult', TIMEOUT, async () => {
    const key = gw.keys.alice as string;
    const name = 'test_input_required_result_multiple_inputs';
    const capabilities = { elicitation: { form: {} }, sampling: {}, roots: {} };
    const reply = await rawPost(
      `${gw.url}/mcp/gather`,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: {
          name,
          arguments: {},
          _meta: envelope({ 'io.modelcontextprotocol/clientCapabilities': capabilities }),
        },
      }),
      modernHeaders(key, 'tools/call', name),
    );
    const result = (answerOf(reply) as { result: { resultType: string; inputRequests: object } }).result;
    assert.equal(result.resultType, 'input_required');
    assert.deepEqual(
      Object.values(result.inputRequests)
        .map((ask: { method: string }) => ask.method)
        .sort(),
      ['elicitation/create', 'roots/list', 'sampling/createMessage'],
    );
  });

  it(
    'inputResponses with no requestState start a new call; ones that are not an object are refused',
    TIMEOUT,
    async () => {
      const key = gw.keys.alice as string;
      const name = 'test_input_required_result_elicitation';
      const call = (inputResponses: unknown) =>
        rawPost(
          `${gw.url}/mcp/stray`,
          JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: {
              name,
              arguments: {},
              inputResponses,
              _meta: envelope({
                'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } },
              }),
            },
          }),
          modernHeaders(key, 'tools/call', name),
        );
      const stray = answerOf(await call({ wrong_key: { action: 'accept', content: { data: 'x' } } })) as {
        result: { resultType: string };
      };
      assert.equal(stray.result.resultType, 'input_required');
      const notAnObject = answerOf(await call(42)) as { error: { code: number } };
      assert.equal(notAnObject.error.code, -32602);
    },
  );

  it('checks Mcp-Param-* headers against the arguments a tool marks x-mcp-header', TIMEOUT, async () => {
    const key = gw.keys.alice as string;
    const name = 'test_custom_headers';
    const call = async (region: string, headers: Record<string, string>) => {
      const reply = await rawPost(
        `${gw.url}/mcp/params`,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name, arguments: { region }, _meta: envelope() },
        }),
        { ...modernHeaders(key, 'tools/call', name), ...headers },
      );
      const answer = answerOf(reply) as { result?: unknown; error?: { code: number } };
      return [reply.status, answer.error?.code ?? textOf(answer.result)];
    };
    assert.deepEqual(await call('eu', { 'mcp-param-region': 'eu' }), [200, 'region eu']);
    assert.deepEqual(await call('eu', { 'Mcp-Param-Region': '=?base64?ZXU=?=' }), [200, 'region eu']);
    assert.deepEqual(await call('eu', {}), [400, -32020]);
    assert.deepEqual(await call('eu', { 'mcp-param-region': 'us' }), [400, -32020]);
    assert.deepEqual(await call('eu', { 'mcp-param-region': '=?base64?ZX!U?=' }), [400, -32020]);
    // A tool without x-mcp-header arguments needs no such header.
    const plain = await rawPost(
      `${gw.url}/mcp/params`,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'test_simple_text', arguments: {}, _meta: envelope() },
      }),
      modernHeaders(key, 'tools/call', 'test_simple_text'),
    );
    assert.equal(plain.status, 200);
  });

  it('a resource the backend does not have is -32602 naming its URI (SEP-2164)', TIMEOUT, async () => {
    const uri = 'note://missing';
    const reply = await rawPost(
      url,
      JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'resources/read', params: { uri, _meta: envelope() } }),
      modernHeaders(gw.keys.alice as string, 'resources/read', uri),
    );
    const answer = answerOf(reply) as { error: { code: number; data: unknown } };
    assert.deepEqual([answer.error.code, answer.error.data], [-32602, { uri }]);
  });
});
