// The same behaviour over every front that speaks MCP to clients (Streamable HTTP at /mcp, WebSocket at
// /ws, the legacy HTTP+SSE transport at /mcp/<server>/sse): policy (allow, filtered lists, refused calls), isolation modes (which backend process a user's
// session reaches) and rate limits, each run once per front with the official SDK client.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { connectOver, type Front } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 30_000 };
const FRONTS: readonly Front[] = ['http', 'ws', 'sse'];

for (const front of FRONTS) {
  describe(`${front} front: policy, isolation and rate limits`, () => {
    let gw: TestGateway;

    before(async () => {
      gw = await startGateway(
        {
          servers: {
            team: fixtureServer('well', {
              isolation: 'shared',
              allow: { users: ['alice', 'bob'], groups: ['ops'] },
              tools: { allow: ['echo', 'pid'], groups: { ops: { allow: ['whoami'] } } },
            }),
            mine: fixtureServer('well', { isolation: 'per-user' }),
            fresh: fixtureServer('well', { isolation: 'per-session' }),
            limited: fixtureServer('well', { requestsPerMinute: 3 }),
          },
        },
        { users: ['alice', 'bob', 'olga', 'mallory'], groups: { olga: ['ops'] } },
      );
    });
    after(() => gw.close());

    const open = (server: string, user: string) => connectOver(front, gw.url, server, gw.keys[user]);

    it('refuses a user outside allow and filters what the others see and call', TIMEOUT, async () => {
      // The SDK's SSE client reports only the status of the refused GET, not its body.
      await assert.rejects(
        open('team', 'mallory'),
        front === 'sse' ? /Non-200 status code \(403\)/ : /mallory\\" is not allowed to use server \\"team/,
      );
      const alice = await open('team', 'alice');
      const olga = await open('team', 'olga');
      assert.deepEqual((await alice.client.listTools()).tools.map((tool) => tool.name).sort(), [
        'echo',
        'pid',
      ]);
      assert.deepEqual((await olga.client.listTools()).tools.map((tool) => tool.name).sort(), [
        'echo',
        'pid',
        'whoami',
      ]);
      await assert.rejects(
        alice.client.callTool({ name: 'whoami', arguments: {} }),
        (error: { code?: number }) => {
          assert.equal(error.code, -32003);
          return true;
        },
      );
      // Allowed for her group (a shared backend runs for no one user, so it names nobody).
      const allowed = await olga.client.callTool({ name: 'whoami', arguments: {} });
      assert.notEqual(allowed.isError, true);
      assert.equal(textOf(allowed), '');
      // Shared: one process for both.
      assert.equal(
        textOf(await alice.client.callTool({ name: 'pid', arguments: {} })),
        textOf(await olga.client.callTool({ name: 'pid', arguments: {} })),
      );
      await Promise.all([alice.close(), olga.close()]);
    });

    it(
      'gives each user their own backend per user, and each session its own per session',
      TIMEOUT,
      async () => {
        const alice = await open('mine', 'alice');
        const alice2 = await open('mine', 'alice');
        const bob = await open('mine', 'bob');
        const pid = async (session: typeof alice) =>
          textOf(await session.client.callTool({ name: 'pid', arguments: {} }));
        assert.equal(await pid(alice), await pid(alice2));
        assert.notEqual(await pid(alice), await pid(bob));
        assert.equal(textOf(await bob.client.callTool({ name: 'whoami', arguments: {} })), 'bob');
        const first = await open('fresh', 'alice');
        const second = await open('fresh', 'alice');
        assert.notEqual(await pid(first), await pid(second));
        await Promise.all([alice, alice2, bob, first, second].map((session) => session.close()));
      },
    );

    it('refuses a request over requestsPerMinute and keeps the session', TIMEOUT, async () => {
      // The session (initialize) is request 1; tools/list is 2, the ping 3; the next is over.
      const bob = await open('limited', 'bob');
      await bob.client.listTools();
      await bob.client.ping();
      await assert.rejects(
        bob.client.callTool({ name: 'echo', arguments: { text: 'x' } }),
        /rate limit|429|per minute/i,
      );
      await bob.close();
    });
  });
}
