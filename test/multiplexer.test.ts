// The multiplexer's routing rules end to end, against the hand-written fixture backend through a real
// gateway; mux-unit.test.ts and mux-lifecycle.test.ts check the same rules in-process.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import {
  connectClient,
  FIXTURE_SERVER,
  fixtureServer,
  INITIALIZE,
  rawPost,
  rawSession,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';

/** The JSON-RPC messages of a reply that may be JSON or an SSE stream. */
function messagesOf(reply: { text: string; json: unknown }): Array<Record<string, unknown>> {
  if (reply.json !== undefined) return [reply.json as Record<string, unknown>];
  return reply.text
    .split('\n')
    .filter((line) => line.startsWith('data: ') && line.length > 6)
    .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
}

function resultText(reply: { text: string; json: unknown }): string {
  const last = messagesOf(reply).at(-1) as { result?: unknown } | undefined;
  return textOf(last?.result ?? {});
}

describe('multiplexer (shared backend)', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway(
      { servers: { shared: fixtureServer('well', { isolation: 'shared' }) } },
      { users: ['alice', 'bob'] },
    );
    url = `${gw.url}/mcp/shared`;
  });
  after(() => gw.close());

  it('initializes the backend once and answers every initialize itself, per-client protocol version', async () => {
    const a = await rawSession(url, gw.keys.alice as string);
    const oldClient = await rawPost(
      url,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'init',
        method: 'initialize',
        params: {
          protocolVersion: '2025-03-26',
          capabilities: {},
          clientInfo: { name: 'old', version: '1' },
        },
      }),
      { authorization: `Bearer ${gw.keys.bob}` },
    );
    assert.equal(a.init.result.protocolVersion, '2025-11-25');
    assert.equal(
      (oldClient.json as { id: string; result: { protocolVersion: string } }).result.protocolVersion,
      '2025-03-26',
    );
    assert.equal((oldClient.json as { id: string }).id, 'init');
    const [pidA, pidB] = await Promise.all([
      a.call(1, 'pid'),
      (await rawSession(url, gw.keys.bob as string)).call(1, 'pid'),
    ]);
    assert.equal(resultText(pidA), resultText(pidB));
  });

  it('accepts the protocol version a session agreed with an old backend in later headers', async () => {
    const old = await startGateway(
      {
        servers: {
          legacy: fixtureServer('well', {
            isolation: 'per-session',
            args: [FIXTURE_SERVER, 'well', '2024-11-05'],
          }),
        },
      },
      { users: ['alice'] },
    );
    try {
      const session = await rawSession(`${old.url}/mcp/legacy`, old.keys.alice as string);
      assert.equal(session.init.result.protocolVersion, '2024-11-05');
      const listed = await rawPost(
        `${old.url}/mcp/legacy`,
        JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
        { ...session.headers, 'mcp-protocol-version': '2024-11-05' },
      );
      assert.equal(listed.status, 200);
      const other = await rawPost(
        `${old.url}/mcp/legacy`,
        JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
        { ...session.headers, 'mcp-protocol-version': '2024-01-01' },
      );
      assert.equal(other.status, 400);
    } finally {
      await old.close();
    }
  });

  it('restores colliding ids exactly: two sessions, id 1 and "1", at once', async () => {
    const a = await rawSession(url, gw.keys.alice as string);
    const b = await rawSession(url, gw.keys.bob as string);
    const replies = await Promise.all([
      a.call(1, 'echo', { text: 'alice-number' }),
      a.call('1', 'echo', { text: 'alice-string' }),
      b.call(1, 'echo', { text: 'bob-number' }),
      b.call('1', 'echo', { text: 'bob-string' }),
    ]);
    const expected = [
      [1, 'alice-number'],
      ['1', 'alice-string'],
      [1, 'bob-number'],
      ['1', 'bob-string'],
    ];
    replies.forEach((reply, index) => {
      const [id, text] = expected[index] as [number | string, string];
      assert.equal((messagesOf(reply).at(-1) as { id: unknown }).id, id);
      assert.equal(resultText(reply), text);
    });
  });

  it('routes progress by rewritten token: both sessions use token "t"', async () => {
    const a = await rawSession(url, gw.keys.alice as string);
    const b = await rawSession(url, gw.keys.bob as string);
    const [ra, rb] = await Promise.all([
      a.call(5, 'progress', { steps: 3 }, { progressToken: 't' }),
      b.call(5, 'progress', { steps: 2 }, { progressToken: 't' }),
    ]);
    const progressOf = (reply: typeof ra) =>
      messagesOf(reply)
        .filter((message) => message.method === 'notifications/progress')
        .map((message) => message.params as { progressToken: unknown; total: number });
    assert.deepEqual(
      progressOf(ra).map((p) => [p.progressToken, p.total]),
      [
        ['t', 3],
        ['t', 3],
        ['t', 3],
      ],
    );
    assert.deepEqual(
      progressOf(rb).map((p) => [p.progressToken, p.total]),
      [
        ['t', 2],
        ['t', 2],
      ],
    );
  });

  it('answers ping and logging/setLevel itself', async () => {
    const a = await rawSession(url, gw.keys.alice as string);
    assert.deepEqual((await a.request(9, 'ping')).json, { jsonrpc: '2.0', id: 9, result: {} });
    assert.deepEqual((await a.request(10, 'logging/setLevel', { level: 'error' })).json, {
      jsonrpc: '2.0',
      id: 10,
      result: {},
    });
    // Several users share this backend: a log message is tied to no request, so nobody gets it.
    const shared = messagesOf(await a.call(12, 'log', { level: 'error', text: 'whose?' }));
    assert.equal(shared.filter((m) => m.method === 'notifications/message').length, 0);
  });

  it('never guesses: a call-back of a backend several users worked on is refused, naming per-user', async () => {
    const alice = await connectClient(url, gw.keys.alice as string, { sampling: {} });
    const bob = await connectClient(url, gw.keys.bob as string, { sampling: {} });
    const { CreateMessageRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    let asked = 0;
    for (const { client } of [alice, bob]) {
      client.setRequestHandler(CreateMessageRequestSchema, async () => {
        asked++;
        return { role: 'assistant', content: { type: 'text', text: 'answer' }, model: 'm' };
      });
    }
    // Bob's call is the only one in flight, but earlier calls of other users ran on this backend.
    const ambiguous = textOf(await bob.client.callTool({ name: 'sample', arguments: {} }));
    assert.match(ambiguous, /cannot tell which user .* use isolation per-user/);
    assert.equal(asked, 0);
    await Promise.all([alice.client.close(), bob.client.close()]);
  });

  it('cancels a closed session’s calls at the backend', async () => {
    const a = await rawSession(url, gw.keys.alice as string);
    const pending = a.call(77, 'sleep', { ms: 1_500 });
    await sleep(100);
    const del = await fetch(url, { method: 'DELETE', headers: a.headers });
    assert.equal(del.status, 204);
    const aborted = await pending;
    assert.equal((messagesOf(aborted).at(-1) as { error: { code: number } }).error.code, -32002);
    const b = await rawSession(url, gw.keys.bob as string);
    const seen = JSON.parse(resultText(await b.call(1, 'cancellations'))) as unknown[];
    assert.ok(seen.length >= 1, 'the backend saw a notifications/cancelled');
  });

  it('translates a client cancellation to the backend id', async () => {
    const a = await rawSession(url, gw.keys.alice as string);
    const before = JSON.parse(resultText(await a.call(1, 'cancellations'))) as unknown[];
    const pending = a.call('slow', 'sleep', { ms: 800 });
    await sleep(100);
    const cancel = await rawPost(
      url,
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'slow' } }),
      a.headers,
    );
    assert.equal(cancel.status, 202);
    await pending;
    const after = JSON.parse(resultText(await a.call(2, 'cancellations'))) as unknown[];
    assert.equal(after.length, before.length + 1);
    assert.equal(typeof after.at(-1), 'number', 'the backend saw its own (numeric) id, not "slow"');
  });
});

describe('supervision', () => {
  it('restarts a crashed shared backend: in-flight calls fail at once, sessions carry on with list_changed', async () => {
    const gw = await startGateway(
      { servers: { s: fixtureServer('well', { isolation: 'shared' }) } },
      { users: ['alice', 'bob'] },
    );
    try {
      const url = `${gw.url}/mcp/s`;
      const alice = await connectClient(url, gw.keys.alice as string);
      const bob = await connectClient(url, gw.keys.bob as string);
      let changed = 0;
      alice.client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
        changed++;
      });
      const pidBefore = textOf(await alice.client.callTool({ name: 'pid', arguments: {} }));
      // Settled into a value at once, so its rejection is never unhandled while we wait on the crash.
      const inFlight = bob.client.callTool({ name: 'sleep', arguments: { ms: 5_000 } }).then(
        () => new Error('the call succeeded'),
        (error: Error) => error,
      );
      await sleep(50);
      const started = Date.now();
      await assert.rejects(alice.client.callTool({ name: 'crash', arguments: {} }), /backend exited/);
      assert.match((await inFlight).message, /backend exited/);
      assert.ok(Date.now() - started < 1_000, 'in-flight calls fail within a second');
      const pidAfter = textOf(await alice.client.callTool({ name: 'pid', arguments: {} }));
      assert.notEqual(pidAfter, pidBefore);
      assert.equal(
        textOf(await bob.client.callTool({ name: 'echo', arguments: { text: 'still here' } })),
        'still here',
      );
      for (let i = 0; i < 20 && changed === 0; i++) await sleep(50);
      assert.equal(changed, 1);
      await Promise.all([alice.client.close(), bob.client.close()]);
    } finally {
      await gw.close();
    }
  });

  it('marks a crash-looping server unhealthy with a clear error instead of restarting forever', async () => {
    const gw = await startGateway(
      {
        servers: {
          broken: { command: process.execPath, args: ['-e', 'process.exit(1)'], isolation: 'shared' },
        },
      },
      { users: ['alice'] },
    );
    try {
      const reply = await rawPost(`${gw.url}/mcp/broken`, INITIALIZE, {
        authorization: `Bearer ${gw.keys.alice}`,
      });
      const error = (messagesOf(reply).at(-1) as { error: { code: number; message: string } }).error;
      assert.equal(error.code, -32000);
      assert.match(
        error.message,
        /unavailable: crashed 5 times within 60s \(last: backend exited \(code 1\)\); next attempt in \d+s/,
      );
      const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {
        servers: { broken: { healthy: boolean } };
      };
      assert.equal(health.servers.broken.healthy, false);
    } finally {
      await gw.close();
    }
  });

  it('per-user: one process per user, shared by that user’s sessions, reaped when idle', async () => {
    const gw = await startGateway(
      // Idle for 1 s is gone; shorter, a loaded machine's pause between two calls reaped a session in use.
      { servers: { u: fixtureServer('well', { isolation: 'per-user', idleTimeout: '1s' }) } },
      { users: ['alice', 'bob'] },
    );
    try {
      const url = `${gw.url}/mcp/u`;
      const a1 = await connectClient(url, gw.keys.alice as string);
      const a2 = await connectClient(url, gw.keys.alice as string);
      const b = await connectClient(url, gw.keys.bob as string);
      const pid = async (client: typeof a1) =>
        textOf(await client.client.callTool({ name: 'pid', arguments: {} }));
      assert.equal(await pid(a1), await pid(a2));
      assert.notEqual(await pid(a1), await pid(b));
      assert.equal(textOf(await b.client.callTool({ name: 'whoami', arguments: {} })), 'bob');
      for (const client of [a1, a2, b]) await client.transport.terminateSession();
      let backends = -1;
      for (let i = 0; i < 60 && backends !== 0; i++) {
        await sleep(100);
        backends = ((await (await fetch(`${gw.url}/healthz`)).json()) as { backends: number }).backends;
      }
      assert.equal(backends, 0);
    } finally {
      await gw.close();
    }
  });

  it('per-user: log messages reach the user at the level each session set', async () => {
    const gw = await startGateway(
      { servers: { u: fixtureServer('well', { isolation: 'per-user' }) } },
      { users: ['alice'] },
    );
    try {
      const a = await rawSession(`${gw.url}/mcp/u`, gw.keys.alice as string);
      await a.request(1, 'logging/setLevel', { level: 'error' });
      const quiet = messagesOf(await a.call(2, 'log', { level: 'info', text: 'hidden' }));
      assert.equal(quiet.filter((m) => m.method === 'notifications/message').length, 0);
      const loud = messagesOf(await a.call(3, 'log', { level: 'error', text: 'shown' }));
      const logs = loud.filter((m) => m.method === 'notifications/message');
      assert.deepEqual(
        logs.map((m) => (m.params as { data: string }).data),
        ['shown'],
      );
    } finally {
      await gw.close();
    }
  });

  it('per-user: a call-back goes to the one busy session of the user; with two busy, refused naming per-session', async () => {
    const gw = await startGateway(
      { servers: { u: fixtureServer('well', { isolation: 'per-user' }) } },
      { users: ['alice'] },
    );
    try {
      const url = `${gw.url}/mcp/u`;
      const [first, second] = await Promise.all([
        connectClient(url, gw.keys.alice as string, { sampling: {} }),
        connectClient(url, gw.keys.alice as string, { sampling: {} }),
      ]);
      const { CreateMessageRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
      const asked: string[] = [];
      for (const [name, { client }] of [
        ['first', first],
        ['second', second],
      ] as const) {
        client.setRequestHandler(CreateMessageRequestSchema, async () => {
          asked.push(name);
          return { role: 'assistant', content: { type: 'text', text: `from ${name}` }, model: 'm' };
        });
      }
      assert.equal(
        textOf(await second.client.callTool({ name: 'sample', arguments: {} })),
        'sampled: from second',
      );
      const busy = first.client.callTool({ name: 'sleep', arguments: { ms: 400 } });
      await sleep(50);
      const ambiguous = textOf(await second.client.callTool({ name: 'sample', arguments: {} }));
      assert.match(ambiguous, /which of this user's 2 sessions .* use isolation per-session/);
      assert.deepEqual(asked, ['second']);
      await busy;
      await Promise.all([first.client.close(), second.client.close()]);
    } finally {
      await gw.close();
    }
  });

  it('caps instances per server with 503', async () => {
    const gw = await startGateway(
      { servers: { u: fixtureServer('well', { isolation: 'per-user', maxInstances: 1 }) } },
      { users: ['alice', 'bob'] },
    );
    try {
      const url = `${gw.url}/mcp/u`;
      assert.equal(
        (await rawPost(url, INITIALIZE, { authorization: `Bearer ${gw.keys.alice}` })).status,
        200,
      );
      const refused = await rawPost(url, INITIALIZE, { authorization: `Bearer ${gw.keys.bob}` });
      assert.equal(refused.status, 503);
      assert.match((refused.json as { error: { message: string } }).error.message, /maximum of 1 instances/);
    } finally {
      await gw.close();
    }
  });
});
