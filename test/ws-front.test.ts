// The WebSocket front (/ws/<server>) against a real gateway and fixture backends: the handshake's
// refusals as HTTP statuses, one socket = one session through the same sessions, policy and limits as
// /mcp, one initialize per socket, frame rules (text only, one message each, bounded), pings (only
// answers to ours count), a client that does not read, and the close codes of a revoked or expired key
// and of shutdown.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import WebSocket from 'ws';
import { createKey, listKeys, revokeUserKeys } from '../src/auth/key-admin.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';
import { BearerWebSocketTransport, connectOver, refusedUpgrade, wsUrlOf } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 30_000 };
const MiB = 1_048_576;

type Message = { id?: number | string | null; result?: unknown; error?: { code: number; message: string } };

/** A raw WebSocket session (initialized), answering requests by id; every frame received is kept. */
async function rawSocket(url: string, key: string | undefined, options: WebSocket.ClientOptions = {}) {
  const socket = new WebSocket(url, 'mcp', {
    headers: key ? { authorization: `Bearer ${key}` } : {},
    ...options,
  });
  const received: Message[] = [];
  const waiting = new Map<string, (message: Message) => void>();
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  socket.on('error', () => {});
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as Message;
    received.push(message);
    const key = JSON.stringify(message.id ?? null);
    waiting.get(key)?.(message);
    waiting.delete(key);
  });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const answer = (id: number | string | null) =>
    new Promise<Message>((resolve) => {
      const seen = received.find((message) => message.id === id && !('method' in message));
      if (seen) resolve(seen);
      else waiting.set(JSON.stringify(id), resolve);
    });
  const request = (id: number, method: string, params: Record<string, unknown> = {}) => {
    socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    return answer(id);
  };
  const init = await request(0, 'initialize', {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'raw-ws', version: '1' },
  });
  assert.ok(init.result, JSON.stringify(init));
  socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  return { socket, received, closed, answer, request };
}

async function health(gw: TestGateway): Promise<{ sessions: number; webSocketSessions: number }> {
  return (await (await fetch(`${gw.url}/healthz`)).json()) as { sessions: number; webSocketSessions: number };
}

describe('WebSocket front: sessions', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          solo: fixtureServer('well', {
            isolation: 'per-user',
            allow: { users: ['alice', 'bob'] },
            tools: { deny: ['env'] },
          }),
        },
        limits: { maxBodyBytes: 64 * 1024 },
      },
      { users: ['alice', 'bob', 'mallory'] },
    );
  });
  after(() => gw.close());

  it(
    'serves initialize, tools/list and tools/call at /ws/<server> and at /ws, counted in /healthz',
    TIMEOUT,
    async () => {
      const named = await connectOver('ws', gw.url, 'solo', gw.keys.alice);
      const bare = new Client({ name: 'bare', version: '1' });
      await bare.connect(new BearerWebSocketTransport(wsUrlOf(gw.url), gw.keys.alice));
      for (const client of [named.client, bare]) {
        const names = (await client.listTools()).tools.map((tool) => tool.name);
        assert.ok(names.includes('echo') && !names.includes('env'), names.join());
        assert.equal(
          textOf(await client.callTool({ name: 'echo', arguments: { text: 'über ws' } })),
          'über ws',
        );
      }
      const during = await health(gw);
      assert.equal(during.webSocketSessions, 2);
      assert.equal(during.sessions, 2);
      await Promise.all([named.close(), bare.close()]);
      await eventually(
        async () => (await health(gw)).sessions === 0,
        'the sessions to end with their sockets',
      );
      assert.equal((await health(gw)).webSocketSessions, 0);
    },
  );

  it(
    'refuses the upgrade with HTTP statuses: 401 (challenge), 403 policy and Origin, 404, 400, 426',
    TIMEOUT,
    async () => {
      const url = wsUrlOf(gw.url, 'solo');
      const none = await refusedUpgrade(url);
      assert.equal(none.status, 401);
      assert.match(String(none.headers['www-authenticate']), /^Bearer /);
      assert.equal((JSON.parse(none.body) as Message).error?.code, -32003);
      assert.equal((await refusedUpgrade(url, { authorization: 'Bearer mcp_nope' })).status, 401);
      const mallory = await refusedUpgrade(url, { authorization: `Bearer ${gw.keys.mallory}` });
      assert.equal(mallory.status, 403);
      assert.match(
        (JSON.parse(mallory.body) as Message).error?.message ?? '',
        /"mallory" is not allowed to use server "solo"/,
      );
      const alice = { authorization: `Bearer ${gw.keys.alice}` };
      assert.equal((await refusedUpgrade(url, { ...alice, origin: 'https://evil.example' })).status, 403);
      assert.equal((await refusedUpgrade(wsUrlOf(gw.url, 'nope'), alice)).status, 404);
      const wrongProtocol = await refusedUpgrade(url, alice, 'graphql-ws');
      assert.equal(wrongProtocol.status, 400);
      assert.match((JSON.parse(wrongProtocol.body) as Message).error?.message ?? '', /subprotocol "mcp"/);
      // A plain GET is told where it is; a stranger learns nothing (401 first).
      const plain = await fetch(`${gw.url}/ws/solo`, { headers: alice });
      assert.equal(plain.status, 426);
      assert.equal((await fetch(`${gw.url}/ws/solo`)).status, 401);
      assert.equal((await health(gw)).sessions, 0, 'no refused upgrade left a session behind');
    },
  );

  it('accepts a client that offers no subprotocol (the brief proxy.js does not)', TIMEOUT, async () => {
    const socket = new WebSocket(wsUrlOf(gw.url, 'solo'), {
      headers: { authorization: `Bearer ${gw.keys.bob}` },
    });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    assert.equal(socket.protocol, '');
    socket.close();
  });

  it('gives alice and bob their own per-user backend', TIMEOUT, async () => {
    const alice = await connectOver('ws', gw.url, 'solo', gw.keys.alice);
    const bob = await connectOver('ws', gw.url, 'solo', gw.keys.bob);
    const alicePid = textOf(await alice.client.callTool({ name: 'pid', arguments: {} }));
    const bobPid = textOf(await bob.client.callTool({ name: 'pid', arguments: {} }));
    assert.notEqual(alicePid, bobPid);
    assert.equal(textOf(await alice.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    assert.equal(textOf(await bob.client.callTool({ name: 'whoami', arguments: {} })), 'bob');
    await Promise.all([alice.close(), bob.close()]);
  });

  it(
    'answers bad frames: -32700 for malformed JSON, -32600 for a batch; closes 1003 on binary, 1009 past maxBodyBytes',
    TIMEOUT,
    async () => {
      const url = wsUrlOf(gw.url, 'solo');
      const raw = await rawSocket(url, gw.keys.alice);
      raw.socket.send('{"jsonrpc": "2.0", "id": 1, ');
      const parse = await raw.answer(null);
      assert.equal(parse.error?.code, -32700);
      raw.received.length = 0;
      raw.socket.send(JSON.stringify([{ jsonrpc: '2.0', id: 2, method: 'ping' }]));
      const batch = await raw.answer(null);
      assert.equal(batch.error?.code, -32600);
      assert.match(batch.error?.message ?? '', /batches are not supported/);
      const invalid = await raw.request(3, '');
      assert.equal(invalid.error?.code, -32600);
      // The session carries on after each of them.
      const ping = await raw.request(4, 'ping');
      assert.deepEqual(ping.result, {});
      raw.socket.send(Buffer.from('{"jsonrpc":"2.0","id":5,"method":"ping"}'), { binary: true });
      const binary = await raw.closed;
      assert.equal(binary.code, 1003);
      assert.match(binary.reason, /binary frames are not supported/);

      const big = await rawSocket(url, gw.keys.alice);
      big.socket.send(
        JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(70_000) } }),
      );
      assert.equal((await big.closed).code, 1009);
      await eventually(
        async () => (await health(gw)).sessions === 0,
        'the sessions of closed sockets to end',
      );
    },
  );

  it(
    'answers hostile frames with JSON-RPC errors while another user keeps working, and closes 1007 on bad UTF-8',
    TIMEOUT,
    async () => {
      const bystander = await connectOver('ws', gw.url, 'solo', gw.keys.bob);
      let calls = 0;
      let running = true;
      const working = (async () => {
        while (running) {
          const text = `bob ${calls}`;
          assert.equal(textOf(await bystander.client.callTool({ name: 'echo', arguments: { text } })), text);
          calls++;
        }
      })();
      const raw = await rawSocket(wsUrlOf(gw.url, 'solo'), gw.keys.alice);
      const cases: Array<[string, string, number, RegExp]> = [
        [
          'nesting past the depth limit',
          `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`,
          -32600,
          /nested deeper/,
        ],
        ['an object id', '{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}', -32600, /invalid JSON-RPC/],
        [
          'a request without an id',
          '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}',
          -32600,
          /needs an id/,
        ],
        [
          'a response to nothing',
          '{"jsonrpc":"2.0","id":99,"result":{}}',
          -32600,
          /no server→client request/,
        ],
        ['null', 'null', -32600, /invalid JSON-RPC/],
        ['a number', '42', -32600, /invalid JSON-RPC/],
        ['an empty frame', '', -32700, /not valid JSON/],
      ];
      for (const [name, frame, code, message] of cases) {
        raw.received.length = 0;
        raw.socket.send(frame);
        const answer = await raw.answer(null);
        assert.equal(answer.error?.code, code, name);
        assert.match(answer.error?.message ?? '', message, name);
      }
      // __proto__ is an ordinary key of the message: the call runs, nothing is polluted.
      raw.socket.send(
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}},"__proto__":{"polluted":true}}',
      );
      assert.equal(textOf((await raw.answer(7)).result), 'x');
      assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
      raw.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      assert.equal((await raw.closed).code, 1007);
      running = false;
      await working;
      assert.ok(calls > 0, 'the bystander was answered throughout');
      await bystander.close();
    },
  );

  it(
    'answers with errors while the backend crashes, then recovers in the same session',
    TIMEOUT,
    async () => {
      const { client, close } = await connectOver('ws', gw.url, 'solo', gw.keys.bob);
      const before = textOf(await client.callTool({ name: 'pid', arguments: {} }));
      await assert.rejects(
        client.callTool({ name: 'crash', arguments: {} }),
        /backend|exited|restart|crash/i,
      );
      const again = await eventually(async () => {
        try {
          return textOf(await client.callTool({ name: 'pid', arguments: {} })) !== before;
        } catch {
          return false;
        }
      }, 'a call answered by the restarted backend');
      assert.ok(again >= 0);
      await close();
    },
  );

  it('passes a large result through as one text message', TIMEOUT, async () => {
    const raw = await rawSocket(wsUrlOf(gw.url, 'solo'), gw.keys.alice);
    const answer = await raw.request(1, 'tools/call', { name: 'big', arguments: { bytes: 3 * MiB } });
    assert.equal(textOf(answer.result).length, 3 * MiB);
    raw.socket.close();
  });

  it('refuses a second initialize on the socket with -32600; the session carries on', TIMEOUT, async () => {
    const raw = await rawSocket(wsUrlOf(gw.url, 'solo'), gw.keys.alice);
    for (const id of [1, 2]) {
      const again = await raw.request(id, 'initialize', {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'again', version: '1' },
      });
      assert.equal(again.error?.code, -32600, JSON.stringify(again));
      assert.match(again.error?.message ?? '', /this session is already initialized/);
    }
    assert.deepEqual((await raw.request(3, 'ping')).result, {});
    raw.socket.close();
  });
});

describe('WebSocket front: limits and endings', () => {
  let gw: TestGateway;
  const logged = capturingLogger();

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          a: fixtureServer('well'),
          limited: fixtureServer('well', { requestsPerMinute: 3 }),
        },
        limits: { streamBufferBytes: 256 * 1024 },
      },
      { users: ['alice', 'bob', 'carol'], log: logged.log },
    );
  });
  after(() => gw.close());

  it(
    'counts requests against the rate limit: a JSON-RPC error past it, then 429 on the upgrade',
    TIMEOUT,
    async () => {
      // The session is request 1, as initialize is on /mcp; requests 2 and 3 pass.
      const raw = await rawSocket(wsUrlOf(gw.url, 'limited'), gw.keys.carol);
      assert.deepEqual((await raw.request(1, 'ping')).result, {});
      assert.deepEqual((await raw.request(2, 'ping')).result, {});
      const over = await raw.request(3, 'ping');
      assert.equal(over.error?.code, -32003);
      assert.match(over.error?.message ?? '', /rate limit|per minute/i);
      const refused = await refusedUpgrade(wsUrlOf(gw.url, 'limited'), {
        authorization: `Bearer ${gw.keys.carol}`,
      });
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers['retry-after']) > 0);
      raw.socket.close();
    },
  );

  it('closes the socket of a client that does not read, holding a bounded amount', TIMEOUT, async () => {
    const raw = await rawSocket(wsUrlOf(gw.url, 'a'), gw.keys.alice, { autoPong: true });
    const flood = 48 * MiB;
    // Stop reading, then ask for a flood of progress notifications on this request.
    raw.socket.pause();
    raw.socket.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'flood', arguments: { bytes: flood, chunk: 65_536 }, _meta: { progressToken: 'p' } },
      }),
    );
    await eventually(
      async () => (await health(gw)).webSocketSessions === 0,
      'the gateway to drop the socket',
    );
    let bytes = 0;
    raw.socket.on('message', (data) => {
      bytes += (data as Buffer).length;
    });
    raw.socket.resume();
    const closed = await raw.closed;
    assert.ok([1013, 1006].includes(closed.code), `close code ${closed.code}`);
    // What was held for it: the bound, what the kernel buffers held, and one message over.
    assert.ok(bytes < 16 * MiB, `the client still received ${bytes} bytes`);
    assert.match(logged.lines(), /WebSocket client does not read; connection closed/);
  });

  it('closes the socket with 1008 when its API key is revoked', TIMEOUT, async () => {
    const transport = new BearerWebSocketTransport(wsUrlOf(gw.url, 'a'), gw.keys.carol);
    const client = new Client({ name: 'revoked', version: '1' });
    await client.connect(transport);
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
    const ids = (await listKeys(gw.keysFile)).filter((key) => key.user === 'carol').map((key) => key.id);
    await revokeUserKeys(gw.keysFile, 'carol', ids);
    const closed = await transport.closed;
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /revoked/);
  });

  it('closes the socket with 1008 when its API key expires, and refuses the key after', TIMEOUT, async () => {
    const lifetime = 5_000;
    const { key, record } = await createKey(gw.keysFile, { user: 'dave', expiresInMs: lifetime });
    const expires = Date.parse(record.expires as string);
    const url = wsUrlOf(gw.url, 'a');
    // The gateway reads the keys file again within about a second (an accepted upgrade rejects here).
    await eventually(
      () =>
        refusedUpgrade(url, { authorization: `Bearer ${key}` }).then(
          () => false,
          () => true,
        ),
      'the gateway to load the new key',
    );
    const transport = new BearerWebSocketTransport(url, key);
    const client = new Client({ name: 'expiring', version: '1' });
    await client.connect(transport);
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
    const closed = await Promise.race([
      transport.closed,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), lifetime + 5_000).unref()),
    ]);
    assert.ok(closed, 'the socket outlived its key');
    assert.ok(Date.now() >= expires, 'closed before the key expired');
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /credential expired/);
    assert.equal((await refusedUpgrade(url, { authorization: `Bearer ${key}` })).status, 401);
  });
});

describe('WebSocket front: the SDK transport, pings and shutdown', () => {
  /** A gateway pinging every 300 ms, and a socket to it that answers no ping by itself. */
  async function silentPeer() {
    const gw = await startGateway(
      { servers: { a: fixtureServer('well') }, sse: { keepAlive: 300 } },
      { auth: false },
    );
    after(() => gw.close());
    const socket = new WebSocket(wsUrlOf(gw.url, 'a'), 'mcp', { autoPong: false });
    socket.on('error', () => {});
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    return { gw, socket, closed };
  }

  it('cuts a peer that stops answering pings', TIMEOUT, async () => {
    // No initialize: a busy machine's backend start can outlast two ping intervals, and the answer
    // would then never come. The session is the socket from its upgrade on.
    const { gw, closed } = await silentPeer();
    const started = Date.now();
    assert.equal(await closed, 1006, 'cut without a close handshake');
    assert.ok(Date.now() - started < 5_000);
    await eventually(async () => (await health(gw)).webSocketSessions === 0, 'its session to end');
  });

  it(
    'cuts a peer whose pongs answer none of its pings (unsolicited pongs do not keep it)',
    TIMEOUT,
    async () => {
      const { gw, socket, closed } = await silentPeer();
      // Beside it, a peer that answers our pings as ws does (echoing their payload) stays.
      const answering = new WebSocket(wsUrlOf(gw.url, 'a'), 'mcp');
      answering.on('error', () => {});
      await new Promise((resolve, reject) => {
        answering.once('open', resolve);
        answering.once('error', reject);
      });
      const pongs = setInterval(() => socket.pong(Buffer.from('alive')), 100);
      try {
        const cut = await Promise.race([
          closed,
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5_000).unref()),
        ]);
        assert.equal(cut, 1006, 'cut without a close handshake within 5 s');
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        assert.equal(answering.readyState, WebSocket.OPEN, 'the answering peer was cut too');
        assert.equal((await health(gw)).webSocketSessions, 1);
      } finally {
        clearInterval(pongs);
        answering.close();
      }
    },
  );

  it(
    'closes a peer that stopped reading one large result, though it keeps sending pongs',
    TIMEOUT,
    async () => {
      const gw = await startGateway(
        {
          servers: { a: fixtureServer('well') },
          sse: { keepAlive: 300 },
          limits: { streamBufferBytes: 256 * 1024 },
        },
        { auth: false },
      );
      after(() => gw.close());
      const raw = await rawSocket(wsUrlOf(gw.url, 'a'), undefined);
      // Stop reading at the TCP level (pings included), ask for one result far above the bound and
      // what the kernel buffers hold, and keep the socket "alive" with pongs nobody asked for.
      raw.socket.pause();
      const pongs = setInterval(() => raw.socket.pong(), 100);
      try {
        raw.socket.send(
          JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: { name: 'big', arguments: { bytes: 32 * MiB } },
          }),
        );
        // Nothing else is written to it after the result, so only the ping tick can notice.
        const took = await eventually(
          async () => (await health(gw)).webSocketSessions === 0,
          'the gateway to drop the socket that does not read',
        );
        assert.ok(took < 10_000, `dropped after ${took} ms`);
      } finally {
        clearInterval(pongs);
        raw.socket.terminate();
      }
    },
  );

  it(
    "works with the SDK's WebSocketClientTransport (no auth on loopback), and shutdown closes with 1001",
    TIMEOUT,
    async () => {
      const gw = await startGateway({ servers: { only: fixtureServer('well') } }, { auth: false });
      try {
        const client = new Client({ name: 'sdk-ws', version: '1' });
        await client.connect(new WebSocketClientTransport(new URL(wsUrlOf(gw.url))));
        assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'local');
        const transport = new BearerWebSocketTransport(wsUrlOf(gw.url, 'only'), undefined);
        const other = new Client({ name: 'closing', version: '1' });
        await other.connect(transport);
        await gw.gateway.close();
        const closed = await transport.closed;
        assert.equal(closed.code, 1001);
        assert.match(closed.reason, /shutting down/);
      } finally {
        await gw.close();
      }
    },
  );
});

describe('WebSocket front: audit, session caps and backend capacity', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          a: fixtureServer('well'),
          single: fixtureServer('well', { isolation: 'per-session', maxInstances: 1 }),
        },
        limits: { sessionsPerUser: 2 },
        audit: { file: 'audit.jsonl' },
      },
      { users: ['alice', 'bob'] },
    );
  });
  after(() => gw.close());

  it('writes the session and its calls to the audit log, as for /mcp', TIMEOUT, async () => {
    const { client, close } = await connectOver('ws', gw.url, 'a', gw.keys.alice);
    await client.callTool({ name: 'echo', arguments: { text: 'audited' } });
    await close();
    const file = join(gw.dir, 'audit.jsonl');
    const lines = () =>
      existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as Record<string, unknown>)
        : [];
    await eventually(() => lines().some((line) => line.event === 'session.end'), 'the session.end line');
    const events = lines().map((line) => [line.event, line.user, line.tool ?? null]);
    assert.deepEqual(events, [
      ['session.start', 'alice', null],
      ['tools.call', 'alice', 'echo'],
      ['session.end', 'alice', null],
    ]);
  });

  it(
    'answers 429 past limits.sessionsPerUser (an open socket is never evicted) and 503 with no room for a backend',
    TIMEOUT,
    async () => {
      const first = await connectOver('ws', gw.url, 'a', gw.keys.bob);
      const second = await connectOver('ws', gw.url, 'a', gw.keys.bob);
      const third = await refusedUpgrade(wsUrlOf(gw.url, 'a'), { authorization: `Bearer ${gw.keys.bob}` });
      assert.equal(third.status, 429);
      assert.match(
        (JSON.parse(third.body) as Message).error?.message ?? '',
        /too many sessions: at most 2 per user/,
      );
      // Both sockets still work.
      for (const session of [first, second])
        assert.equal(
          textOf(await session.client.callTool({ name: 'echo', arguments: { text: 'ok' } })),
          'ok',
        );
      await Promise.all([first.close(), second.close()]);

      const only = await connectOver('ws', gw.url, 'single', gw.keys.alice);
      const full = await refusedUpgrade(wsUrlOf(gw.url, 'single'), {
        authorization: `Bearer ${gw.keys.alice}`,
      });
      assert.equal(full.status, 503);
      assert.ok(Number(full.headers['retry-after']) > 0);
      await only.close();
    },
  );
});

describe('WebSocket front: server→client requests in a shared backend', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      { servers: { demo: fixtureServer('well', { isolation: 'shared' }) } },
      { users: ['alice', 'bob'] },
    );
  });
  after(() => gw.close());

  it(
    'sampling reaches only the session asked; another user cannot answer it nor see its logs',
    TIMEOUT,
    async () => {
      const alice = await connectOver('ws', gw.url, 'demo', gw.keys.alice, { sampling: {} });
      const samplingIds: unknown[] = [];
      alice.client.setRequestHandler(CreateMessageRequestSchema, async (_request, extra) => {
        samplingIds.push(extra.requestId);
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { role: 'assistant', content: { type: 'text', text: 'answer of alice' }, model: 'm' };
      });
      const bob = await rawSocket(wsUrlOf(gw.url, 'demo'), gw.keys.bob);
      const call = alice.client.callTool({ name: 'sample', arguments: {} });
      await eventually(() => samplingIds.length > 0, "alice's sampling request");
      for (const id of [1, 2, 'srv-1', 0, samplingIds[0] as string]) {
        bob.received.length = 0;
        bob.socket.send(
          JSON.stringify({
            jsonrpc: '2.0',
            id,
            result: { role: 'assistant', content: { type: 'text', text: 'bob' }, model: 'm' },
          }),
        );
        const refused = await bob.answer(null);
        assert.match(refused.error?.message ?? '', /no server→client request with this id/);
      }
      assert.equal(textOf(await call), 'sampled: answer of alice');
      // Alice's background log comes after she left: bob, the one session left, gets none of it.
      bob.received.length = 0;
      await alice.client.callTool({ name: 'later', arguments: { ms: 200, text: 'alice-secret' } });
      await alice.close();
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.deepEqual(bob.received, []);
      bob.socket.close();
    },
  );
});
