// The legacy HTTP+SSE transport (MCP 2024-11-05) on the gateway, with three real clients: the SDK's
// SSEClientTransport, the MCP Inspector CLI (`--transport sse`) and mcp-remote (`--transport sse-only`);
// and its rules: sessions bound to the caller, per-user isolation, policy, body limits, bad JSON, the
// session's end with its stream, and a client that never reads.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectOverStdio, runProcess } from './helpers/cli.ts';
import { connectLegacyClient } from './helpers/fronts.ts';
import {
  connectClient,
  deliveredDuring,
  fixtureServer,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const TIMEOUT = { timeout: 60_000 };
const KiB = 1024;
const MiB = 1_048_576;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

interface SseEvent {
  event: string;
  data: string;
}

/** A legacy stream read by hand: its events as they come, the session id of its `endpoint` event. */
async function openStream(url: string, headers: Record<string, string>) {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  const events: SseEvent[] = [];
  let text = '';
  /** Everything the stream carried, as received. */
  let raw = '';
  let ended = false;
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        const decoded = decoder.decode(chunk, { stream: true });
        raw += decoded;
        text += decoded;
        let end = text.indexOf('\n\n');
        while (end !== -1) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          const data = [...block.matchAll(/^data: (.*)$/gm)].map((match) => match[1]).join('\n');
          events.push({ event: block.startsWith(':') ? 'comment' : event, data });
          end = text.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
    ended = true;
  })();
  const status = response.status;
  if (status !== 200) {
    abort.abort();
    await reading;
    throw new Error(`the stream was refused: ${status}`);
  }
  await eventually(() => events.length > 0 || ended, 'the endpoint event');
  const first = events[0];
  assert.equal(first?.event, 'endpoint', 'the first event names the endpoint');
  const endpoint = new URL(first.data, url).href;
  const sessionId = new URL(endpoint).searchParams.get('sessionId') ?? '';
  return {
    status,
    events,
    endpoint,
    sessionId,
    get ended() {
      return ended;
    },
    get raw() {
      return raw;
    },
    /** The first message event whose JSON has this id. */
    async next(id: number): Promise<Record<string, unknown>> {
      let found: Record<string, unknown> | undefined;
      await eventually(() => {
        found = events
          .filter((event) => event.event === 'message')
          .map((event) => JSON.parse(event.data) as Record<string, unknown>)
          .find((message) => message.id === id);
        return found !== undefined;
      }, `the answer to ${id} on the stream`);
      return found as Record<string, unknown>;
    },
    async close() {
      abort.abort();
      await reading;
    },
  };
}

const initialize = (id = 1) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
const callTool = (id: number, name: string, args: Record<string, unknown> = {}) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

/** POSTs one message to a legacy endpoint (no Accept rules there: old clients send only Content-Type). */
function post(endpoint: string, body: string, headers: Record<string, string>) {
  return fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

async function health(
  base: string,
): Promise<{ sessions: number; servers: Record<string, { backends?: number }> }> {
  return (await (await fetch(`${base}/healthz`)).json()) as {
    sessions: number;
    servers: Record<string, { backends?: number }>;
  };
}

describe('legacy HTTP+SSE transport (2024-11-05)', () => {
  let gw: TestGateway;
  let alice: Record<string, string>;
  let bob: Record<string, string>;
  before(async () => {
    gw = await startGateway(
      {
        servers: {
          demo: fixtureServer('well', { isolation: 'per-user', tools: { deny: ['crash', 'env'] } }),
          solo: fixtureServer('well', { isolation: 'per-session', allow: { users: ['alice'] } }),
        },
        limits: { maxBodyBytes: '64KiB', streamBufferBytes: '256KiB' },
        sse: { keepAlive: '300ms' },
        audit: { file: 'audit.jsonl' },
      },
      { users: ['alice', 'bob'] },
    );
    alice = { authorization: `Bearer ${gw.keys.alice}` };
    bob = { authorization: `Bearer ${gw.keys.bob}` };
  });
  after(() => gw.close());
  // Every test's sessions end with their streams: none is left for the next test to count.
  afterEach(() => eventually(async () => (await health(gw.url)).sessions === 0, 'every session to end'));

  it(
    'serves the SDK SSEClientTransport: initialize, tools/list, tools/call, progress, a notification',
    TIMEOUT,
    async () => {
      const client = await connectLegacyClient(`${gw.url}/mcp/demo/sse`, gw.keys.alice);
      try {
        assert.equal(client.getServerVersion()?.name, 'fixture');
        const { tools } = await client.listTools();
        const names = tools.map((tool) => tool.name);
        assert.ok(names.includes('whoami') && names.includes('echo'), names.join());
        assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'héllo' } })), 'héllo');
        assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
        const progress: number[] = [];
        const { delivered } = await deliveredDuring(client, () =>
          client.callTool({ name: 'progress', arguments: { steps: 3 } }, undefined, {
            onprogress: (p) => progress.push(p.progress),
          }),
        );
        assert.deepEqual(delivered, [1, 2, 3, 'answer']);
        assert.equal(progress[0], 1, 'the SDK matched the progress token');
        // A server notification not tied to a request reaches the client on the same stream.
        let changed = false;
        client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
          changed = true;
        });
        await client.callTool({ name: 'announce', arguments: {} });
        await eventually(() => changed, 'notifications/tools/list_changed');
        assert.equal((await health(gw.url)).sessions, 1);
      } finally {
        await client.close();
      }
      await eventually(
        async () => (await health(gw.url)).sessions === 0,
        'the session to end with its stream',
      );
    },
  );

  it(
    'opens a legacy session on the Streamable HTTP URL for a GET without a session; Streamable HTTP still works there',
    TIMEOUT,
    async () => {
      const legacy = await connectLegacyClient(`${gw.url}/mcp/demo`, gw.keys.alice);
      const modern = await connectClient(`${gw.url}/mcp/demo`, gw.keys.alice);
      try {
        assert.equal(textOf(await legacy.callTool({ name: 'whoami', arguments: {} })), 'alice');
        assert.equal(textOf(await modern.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
        // The Streamable HTTP GET stream (with its session id) is still that transport's.
        const get = await fetch(`${gw.url}/mcp/demo`, {
          headers: {
            ...alice,
            accept: 'text/event-stream',
            'mcp-session-id': modern.transport.sessionId as string,
          },
        });
        assert.equal(get.status, 200);
        assert.equal(get.headers.get('mcp-session-id'), modern.transport.sessionId);
        await get.body?.cancel();
      } finally {
        await legacy.close();
        await modern.transport.terminateSession();
        await modern.client.close();
      }
    },
  );

  it(
    'sends the endpoint event first, keep-alive comments, and answers POSTs 202 with the reply on the stream',
    TIMEOUT,
    async () => {
      const stream = await openStream(`${gw.url}/mcp/demo/sse`, alice);
      try {
        assert.match(stream.endpoint, /\/mcp\/demo\/messages\?sessionId=[0-9a-f-]{36}$/);
        const init = await post(stream.endpoint, initialize(), alice);
        assert.equal(init.status, 202);
        const answer = await stream.next(1);
        assert.equal((answer.result as { protocolVersion: string }).protocolVersion, '2024-11-05');
        const initialized = await post(
          stream.endpoint,
          JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
          alice,
        );
        assert.equal(initialized.status, 202);
        // A second initialize in the same session is refused (Streamable HTTP makes a new session for it).
        assert.equal((await post(stream.endpoint, initialize(9), alice)).status, 400);
        await eventually(
          () => stream.events.some((event) => event.event === 'comment'),
          'a keep-alive comment',
        );
        const raw = stream.events.filter((event) => event.event === 'message');
        assert.ok(raw.length > 0);
      } finally {
        await stream.close();
      }
    },
  );

  it(
    'keeps users apart: whoami and the backend process differ per user; another user’s sessionId is 404',
    TIMEOUT,
    async () => {
      const a = await connectLegacyClient(`${gw.url}/mcp/demo/sse`, gw.keys.alice);
      const b = await connectLegacyClient(`${gw.url}/mcp/demo/sse`, gw.keys.bob);
      try {
        assert.equal(textOf(await a.callTool({ name: 'whoami', arguments: {} })), 'alice');
        assert.equal(textOf(await b.callTool({ name: 'whoami', arguments: {} })), 'bob');
        const pidA = textOf(await a.callTool({ name: 'pid', arguments: {} }));
        const pidB = textOf(await b.callTool({ name: 'pid', arguments: {} }));
        assert.notEqual(pidA, pidB);
      } finally {
        await a.close();
        await b.close();
      }
      const stream = await openStream(`${gw.url}/mcp/demo/sse`, alice);
      try {
        assert.equal((await post(stream.endpoint, initialize(), alice)).status, 202);
        await stream.next(1);
        // Bob with Alice's session id, no credential, an unknown id, no id, another server's path: all 404 or 401.
        assert.equal((await post(stream.endpoint, callTool(2, 'whoami'), bob)).status, 404);
        assert.equal((await post(stream.endpoint, callTool(3, 'whoami'), {})).status, 401);
        const unknown = stream.endpoint.replace(
          /sessionId=.*/,
          'sessionId=00000000-0000-0000-0000-000000000000',
        );
        assert.equal((await post(unknown, callTool(4, 'whoami'), alice)).status, 404);
        assert.equal(
          (await post(stream.endpoint.replace(/\?.*/, ''), callTool(5, 'whoami'), alice)).status,
          404,
        );
        assert.equal(
          (await post(stream.endpoint.replace('/mcp/demo/', '/mcp/solo/'), callTool(6, 'whoami'), alice))
            .status,
          404,
        );
        // A Streamable HTTP session's id is no legacy session.
        const modern = await connectClient(`${gw.url}/mcp/demo`, gw.keys.alice);
        const modernId = modern.transport.sessionId as string;
        await modern.transport.terminateSession();
        await modern.client.close();
        assert.equal(
          (
            await post(
              stream.endpoint.replace(/sessionId=.*/, `sessionId=${modernId}`),
              callTool(7, 'whoami'),
              alice,
            )
          ).status,
          404,
        );
        // Nothing of it reached Alice's stream: only her own calls are answered there.
        assert.equal((await post(stream.endpoint, callTool(8, 'whoami'), alice)).status, 202);
        assert.equal(textOf((await stream.next(8)).result), 'alice');
        const ids = stream.events
          .filter((event) => event.event === 'message')
          .map((event) => (JSON.parse(event.data) as { id?: number }).id);
        assert.deepEqual(ids, [1, 8]);
      } finally {
        await stream.close();
      }
    },
  );

  it(
    'applies policy: a refused user gets 403 at the GET, filtered lists and refused calls',
    TIMEOUT,
    async () => {
      const refused = await fetch(`${gw.url}/mcp/solo/sse`, {
        headers: { ...bob, accept: 'text/event-stream' },
      });
      assert.equal(refused.status, 403);
      await refused.body?.cancel();
      const client = await connectLegacyClient(`${gw.url}/mcp/demo/sse`, gw.keys.bob);
      try {
        const names = (await client.listTools()).tools.map((tool) => tool.name);
        assert.ok(!names.includes('crash') && !names.includes('env'), names.join());
        await assert.rejects(client.callTool({ name: 'env', arguments: { name: 'PATH' } }), (error) => {
          assert.ok(error instanceof McpError, String(error));
          return true;
        });
        assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'bob');
      } finally {
        await client.close();
      }
    },
  );

  it(
    'refuses bad input like the POST path: 413 over maxBodyBytes, 400 for malformed JSON, and the stream goes on',
    TIMEOUT,
    async () => {
      const stream = await openStream(`${gw.url}/mcp/demo/sse`, alice);
      try {
        await post(stream.endpoint, initialize(), alice);
        await stream.next(1);
        const big = callTool(2, 'echo', { text: 'x'.repeat(100 * KiB) });
        const tooBig = await post(stream.endpoint, big, alice);
        assert.equal(tooBig.status, 413);
        const malformed = await post(stream.endpoint, '{"jsonrpc": "2.0", "id": 3, "method":', alice);
        assert.equal(malformed.status, 400);
        assert.equal(((await malformed.json()) as { error: { code: number } }).error.code, -32700);
        const notRpc = await post(stream.endpoint, '{"id": 4, "method": "tools/list"}', alice);
        assert.equal(notRpc.status, 400);
        assert.equal(((await notRpc.json()) as { error: { code: number } }).error.code, -32600);
        assert.equal((await post(stream.endpoint, '[]', alice)).status, 400);
        // Not UTF-8, and nesting past 128 levels: refused before anything re-serializes them.
        const notUtf8 = await fetch(stream.endpoint, {
          method: 'POST',
          headers: { ...alice, 'content-type': 'application/json' },
          body: Buffer.concat([
            Buffer.from('{"jsonrpc":"2.0","id":7,"method":"ping","x":"'),
            Buffer.from([0xff]),
            Buffer.from('"}'),
          ]),
        });
        assert.equal(notUtf8.status, 400);
        assert.equal(((await notUtf8.json()) as { error: { code: number } }).error.code, -32700);
        const deep = `{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":${'['.repeat(200)}${']'.repeat(200)}}}`;
        const tooDeep = await post(stream.endpoint, deep, alice);
        assert.equal(tooDeep.status, 400);
        assert.equal(((await tooDeep.json()) as { error: { code: number } }).error.code, -32600);
        const gzip = await fetch(stream.endpoint, {
          method: 'POST',
          headers: { ...alice, 'content-type': 'application/json', 'content-encoding': 'gzip' },
          body: callTool(9, 'whoami'),
        });
        assert.equal(gzip.status, 415);
        const wrongType = await fetch(stream.endpoint, {
          method: 'POST',
          headers: { ...alice, 'content-type': 'text/plain' },
          body: callTool(5, 'whoami'),
        });
        assert.equal(wrongType.status, 415);
        assert.equal((await post(stream.endpoint, callTool(6, 'whoami'), alice)).status, 202);
        assert.equal(textOf((await stream.next(6)).result), 'alice');
      } finally {
        await stream.close();
      }
    },
  );

  it('guards the GET like the Streamable HTTP endpoint: 401 without a credential, 403 for a foreign Origin, 406 without text/event-stream', async () => {
    const opened = (await health(gw.url)).sessions;
    const anonymous = await fetch(`${gw.url}/mcp/demo/sse`, { headers: { accept: 'text/event-stream' } });
    assert.equal(anonymous.status, 401);
    const foreign = await fetch(`${gw.url}/mcp/demo/sse`, {
      headers: { ...alice, accept: 'text/event-stream', origin: 'https://evil.example' },
    });
    assert.equal(foreign.status, 403);
    const json = await fetch(`${gw.url}/mcp/demo/sse`, { headers: { ...alice, accept: 'application/json' } });
    assert.equal(json.status, 406);
    const unknown = await fetch(`${gw.url}/mcp/nosuch/sse`, {
      headers: { ...alice, accept: 'text/event-stream' },
    });
    assert.equal(unknown.status, 404);
    // A Streamable HTTP client's GET that lost its session id stays that transport's (400), not a legacy session.
    const lost = await fetch(`${gw.url}/mcp/demo`, {
      headers: { ...alice, accept: 'text/event-stream', 'mcp-protocol-version': '2025-11-25' },
    });
    assert.equal(lost.status, 400);
    assert.match(await lost.text(), /Mcp-Session-Id header is required/);
    // Two servers: `/mcp/sse` names none.
    const alias = await fetch(`${gw.url}/mcp/sse`, { headers: { ...alice, accept: 'text/event-stream' } });
    assert.equal(alias.status, 404);
    for (const response of [anonymous, foreign, json, unknown, alias]) await response.body?.cancel();
    assert.equal((await health(gw.url)).sessions, opened, 'no refused GET left a session behind');
  });

  it(
    'writes a legacy session to the audit log like any other: start, calls (a refused one too), end',
    TIMEOUT,
    async () => {
      const stream = await openStream(`${gw.url}/mcp/demo/sse`, alice);
      await post(stream.endpoint, initialize(), alice);
      await stream.next(1);
      await post(stream.endpoint, callTool(2, 'whoami'), alice);
      await stream.next(2);
      await post(stream.endpoint, callTool(3, 'env', { name: 'PATH' }), alice);
      assert.match(JSON.stringify((await stream.next(3)).error), /policy does not allow it/);
      await stream.close();
      const file = join(gw.dir, 'audit.jsonl');
      const lines = () =>
        readFileSync(file, 'utf8')
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .filter((line) => line.session === stream.sessionId);
      await eventually(
        () => lines().some((line) => line.event === 'session.end'),
        'the session’s end in the audit log',
      );
      const mine = lines();
      assert.equal(mine[0]?.event, 'session.start');
      assert.equal(mine[0]?.user, 'alice');
      assert.deepEqual(
        mine.filter((line) => line.event === 'tools.call').map((line) => [line.tool, line.outcome]),
        [
          ['whoami', 'ok'],
          ['env', 'refused'],
        ],
      );
      assert.match(
        String(mine.find((line) => line.event === 'session.end')?.reason),
        /legacy SSE stream closed/,
      );
    },
  );

  it(
    'ends the session when its stream closes: /healthz sessions drop, a per-session backend stops, its id is 404',
    TIMEOUT,
    async () => {
      const stream = await openStream(`${gw.url}/mcp/solo/sse`, alice);
      await post(stream.endpoint, initialize(), alice);
      await stream.next(1);
      await post(stream.endpoint, callTool(2, 'pid'), alice);
      const pid = Number(textOf((await stream.next(2)).result));
      assert.ok(pid > 0);
      const before = await health(gw.url);
      assert.equal(before.servers.solo?.backends, 1);
      await stream.close();
      await eventually(
        async () => (await health(gw.url)).sessions === before.sessions - 1,
        'the session to end',
      );
      await eventually(
        async () => (await health(gw.url)).servers.solo?.backends === 0,
        'its backend to stop',
      );
      await eventually(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, 'the backend process to exit');
      assert.equal((await post(stream.endpoint, callTool(3, 'pid'), alice)).status, 404);
    },
  );

  it('cuts a client that never reads (limits.streamBufferBytes) and ends its session', TIMEOUT, async (t) => {
    const { port } = new URL(gw.url);
    const opened = (await health(gw.url)).sessions;
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => {});
    let received = '';
    let closed = false;
    socket.on('close', () => {
      closed = true;
    });
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
    };
    socket.on('data', onData);
    socket.write(
      `GET /mcp/demo/sse HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${alice.authorization}\r\nAccept: text/event-stream\r\n\r\n`,
    );
    await eventually(() => /event: endpoint\ndata: (\S+)\n\n/.test(received), 'the endpoint event');
    const path = /event: endpoint\ndata: (\S+)\n\n/.exec(received)?.[1] as string;
    // From here on nothing is read: the kernel's buffers fill, then the gateway's.
    socket.off('data', onData);
    socket.pause();
    const endpoint = `${gw.url}${path}`;
    await post(endpoint, initialize(), alice);
    await post(endpoint, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), alice);
    assert.equal((await health(gw.url)).sessions, opened + 1);
    for (let id = 2; id < 6; id++) await post(endpoint, callTool(id, 'big', { bytes: 4 * MiB }), alice);
    const took = await eventually(
      async () => (await health(gw.url)).sessions === opened,
      'the reader to be cut',
    );
    let drained = 0;
    socket.on('data', (chunk: Buffer) => {
      drained += chunk.length;
    });
    socket.resume();
    await eventually(() => closed, 'the connection to be closed');
    assert.ok(drained < 16 * MiB, `the connection was cut, not finished: ${drained} bytes arrived`);
    assert.equal((await post(endpoint, callTool(9, 'whoami'), alice)).status, 404);
    t.diagnostic(
      `cut ${took} ms after the last call was posted; ${drained} of 16 MiB reached the client (256 KiB bound, 300 ms keep-alive)`,
    );
  });

  it('serves the MCP Inspector CLI with --transport sse and a Bearer header', TIMEOUT, async () => {
    const build = join(dirname(require.resolve('@modelcontextprotocol/inspector-cli/package.json')), 'build');
    const cli = join(build, 'cli.js');
    // Run from its build folder: it finds its own package.json by a path relative to the working directory.
    const result = await runProcess(
      process.execPath,
      [
        cli,
        '--cli',
        `${gw.url}/mcp/demo/sse`,
        '--transport',
        'sse',
        '--header',
        `Authorization: Bearer ${gw.keys.bob}`,
        '--method',
        'tools/call',
        '--tool-name',
        'whoami',
      ],
      { cwd: build },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(textOf(JSON.parse(result.stdout)), 'bob');
  });

  it('serves mcp-remote with --transport sse-only as a stdio server', TIMEOUT, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-remote-'));
    const proxy = join(dirname(require.resolve('mcp-remote/package.json')), 'dist', 'proxy.js');
    const bridged = await connectOverStdio({
      command: process.execPath,
      args: [
        proxy,
        `${gw.url}/mcp/demo/sse`,
        '--transport',
        'sse-only',
        '--header',
        `Authorization: Bearer ${gw.keys.alice}`,
      ],
      env: { PATH: process.env.PATH ?? '', HOME: dir, MCP_REMOTE_CONFIG_DIR: dir },
      cwd: ROOT,
    });
    try {
      const names = (await bridged.client.listTools()).tools.map((tool) => tool.name);
      assert.ok(names.includes('whoami') && !names.includes('crash'), names.join());
      assert.equal(textOf(await bridged.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
      // Its own words for the transport it chose.
      assert.match(bridged.stderr(), /Connected to remote server using SSEClientTransport/);
    } finally {
      await bridged.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('legacy SSE on the single-server /mcp alias', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ servers: { only: fixtureServer('well') } }, { auth: false });
  });
  after(() => gw.close());

  it('opens at /mcp/sse and at /mcp; the endpoint names the server', TIMEOUT, async () => {
    for (const url of [`${gw.url}/mcp/sse`, `${gw.url}/mcp`]) {
      const stream = await openStream(url, {});
      try {
        assert.match(stream.endpoint, /\/mcp\/only\/messages\?sessionId=/);
      } finally {
        await stream.close();
      }
      const client = await connectLegacyClient(url, undefined);
      try {
        assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'local');
      } finally {
        await client.close();
      }
    }
  });
});

describe('legacy SSE at shutdown', () => {
  it('ends an open stream with a retry hint when the gateway closes,', TIMEOUT, async () => {
    const gw = await startGateway({ servers: { only: fixtureServer('well') } }, { auth: false });
    const stream = await openStream(`${gw.url}/mcp/only/sse`, {});
    try {
      await post(stream.endpoint, initialize(), {});
      await stream.next(1);
      await gw.close();
      await eventually(() => stream.ended, 'the stream to end with the gateway');
      assert.ok(stream.raw.includes('retry: 5000\n\n'), 'clients are told to wait before reconnecting');
    } finally {
      await stream.close();
    }
  });
});

describe('legacy SSE and rate limits', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(
      { servers: { a: fixtureServer() }, limits: { requestsPerMinute: 4 } },
      { users: ['alice', 'bob'] },
    );
  });
  after(() => gw.close());

  it(
    'counts a legacy session’s requests like any other: the refusal on the stream, then 429 at the next GET',
    TIMEOUT,
    async () => {
      const alice = { authorization: `Bearer ${gw.keys.alice}` };
      const stream = await openStream(`${gw.url}/mcp/a/sse`, alice);
      try {
        assert.equal((await post(stream.endpoint, initialize(), alice)).status, 202);
        await stream.next(1);
        const ping = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });
        // Accepted (202) either way: the refusal is the JSON-RPC answer on the stream.
        for (let id = 2; id <= 6; id++)
          assert.equal((await post(stream.endpoint, ping(id), alice)).status, 202);
        const answers = [];
        for (let id = 2; id <= 6; id++) answers.push(await stream.next(id));
        // The initialize and three pings make four; the GET itself is no request (a POSTed initialize is one).
        assert.deepEqual(
          answers.map((answer) => ('error' in answer ? 'refused' : 'ok')),
          ['ok', 'ok', 'ok', 'refused', 'refused'],
        );
        const refused = answers.filter((answer) => 'error' in answer);
        assert.match(JSON.stringify(refused[0]), /requests per minute per user; retry in \d+ s/);
        assert.equal((refused[0] as { error: { code: number } }).error.code, -32003);
        const again = await fetch(`${gw.url}/mcp/a/sse`, {
          headers: { ...alice, accept: 'text/event-stream' },
        });
        assert.equal(again.status, 429);
        assert.ok(Number(again.headers.get('retry-after')) >= 1);
        await again.body?.cancel();
        // Bob is not affected.
        const bob = await connectLegacyClient(`${gw.url}/mcp/a/sse`, gw.keys.bob);
        assert.deepEqual(await bob.ping(), {});
        await bob.close();
      } finally {
        await stream.close();
      }
    },
  );
});
