// `mcp-relay backends restart <server>` against a real gateway with an admin section: an admin's key
// restarts the server's backend through POST /admin/api/restart/<server> while a call is in flight (it
// finishes, the pid changes); a colleague's key is refused, and an unknown server is a 404.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCliInProcess } from './helpers/cli.ts';
import { connectClient, fixtureServer, startGateway, textOf } from './helpers/gateway.ts';

describe('mcp-relay backends restart', () => {
  it("restarts a server's backend for an admin, with a call in flight finishing; refuses others", async () => {
    const gw = await startGateway(
      { servers: { echo: fixtureServer('well', { isolation: 'shared' }) }, admin: { groups: ['ops'] } },
      { users: ['root', 'alice'], groups: { root: ['ops'] } },
    );
    try {
      const { client } = await connectClient(`${gw.url}/mcp/echo`, gw.keys.alice);
      const before = textOf(await client.callTool({ name: 'pid', arguments: {} }));
      const slow = client.callTool({ name: 'sleep', arguments: { ms: 1_500 } });
      const restart = await runCliInProcess(['backends', 'restart', 'echo', '--url', gw.url], {
        env: { MCP_RELAY_TOKEN: gw.keys.root ?? '' },
      });
      assert.equal(restart.code, 0, restart.stderr);
      assert.match(
        restart.stdout,
        new RegExp(`^echo \\(shared\\): restarted, pid ${before} → \\d+; switched in \\d+ ms`),
      );
      assert.notEqual((await slow).isError, true, 'the call in flight finished on the old process');
      const after = textOf(await client.callTool({ name: 'pid', arguments: {} }));
      assert.notEqual(after, before);
      assert.match(restart.stdout, new RegExp(`→ ${after};`));
      await client.close();

      const json = await runCliInProcess(['backends', 'restart', 'echo', '--url', gw.url, '--json'], {
        env: { MCP_RELAY_TOKEN: gw.keys.root ?? '' },
      });
      assert.equal(json.code, 0, json.stderr);
      assert.equal((JSON.parse(json.stdout) as { server: string }).server, 'echo');

      const colleague = await runCliInProcess(['backends', 'restart', 'echo', '--url', gw.url], {
        env: { MCP_RELAY_TOKEN: gw.keys.alice ?? '' },
      });
      assert.notEqual(colleague.code, 0);
      assert.match(colleague.stderr, /HTTP 403/);
      const unknown = await runCliInProcess(['backends', 'restart', 'nope', '--url', gw.url], {
        env: { MCP_RELAY_TOKEN: gw.keys.root ?? '' },
      });
      assert.notEqual(unknown.code, 0);
      assert.match(unknown.stderr, /HTTP 404/);
    } finally {
      await gw.close();
    }
  });
});
