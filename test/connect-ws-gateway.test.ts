// The bridge and the gateway over WebSocket end to end: Claude Desktop's stdio client → `mcp-relay
// connect ws://…/ws/<server>` → the gateway's WebSocket front → a backend, as the user who holds the key;
// and `--transport auto` picks WebSocket for a ws:// URL.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectThroughBridge } from './helpers/cli.ts';
import { fixtureServer, startGateway, textOf } from './helpers/gateway.ts';

describe('connect over WebSocket to the gateway', () => {
  it("calls tools through /ws/<server> as the key's user, and a wrong key is explained", async () => {
    const gw = await startGateway({ servers: { a: fixtureServer() } }, { users: ['alice'] });
    try {
      const url = `${gw.url.replace(/^http/, 'ws')}/ws/a`;
      const bridged = await connectThroughBridge(url, { env: { MCP_RELAY_TOKEN: gw.keys.alice ?? '' } });
      try {
        assert.equal(textOf(await bridged.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
        const echoed = await bridged.client.callTool({ name: 'echo', arguments: { text: 'over ws' } });
        assert.equal(textOf(echoed), 'over ws');
        assert.match(bridged.stderr(), /WebSocket|websocket|ws:/);
      } finally {
        await bridged.close();
      }
      await assert.rejects(
        connectThroughBridge(url, { env: { MCP_RELAY_TOKEN: 'mcpr_not-a-key' } }),
        /rejected the token|401/,
      );
    } finally {
      await gw.close();
    }
  });
});
