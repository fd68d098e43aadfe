// /healthz (and /health, the brief's name) from outside: `degraded`, naming the servers, while servers crash-loop (the gateway still
// serves the others, so HTTP 200), and `ok` with every server well.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixtureServer, INITIALIZE, rawPost, startGateway } from './helpers/gateway.ts';

interface Health {
  status: string;
  unhealthy?: string[];
  servers: Record<string, { healthy: boolean; reason?: string }>;
}

async function health(url: string): Promise<{ status: number; body: Health }> {
  const response = await fetch(`${url}/healthz`);
  return { status: response.status, body: (await response.json()) as Health };
}

const crashing = (isolation: string) => ({
  command: process.execPath,
  args: ['-e', 'process.exit(1)'],
  isolation,
});

describe('/healthz', () => {
  it('says degraded and names crash-looping servers, also when their backends are gone (per-session)', async () => {
    const gw = await startGateway(
      {
        servers: {
          well: fixtureServer('well'),
          'broken-shared': crashing('shared'),
          'broken-each': crashing('per-session'),
        },
      },
      { users: ['alice'] },
    );
    try {
      const auth = { authorization: `Bearer ${gw.keys.alice}` };
      assert.equal((await health(gw.url)).body.status, 'ok');
      assert.equal((await rawPost(`${gw.url}/mcp/well`, INITIALIZE, auth)).status, 200);
      // The supervisor restarts with backoff (200, 400, 800, 1600 ms) and gives up after 5 exits.
      const replies = await Promise.all(
        ['broken-shared', 'broken-each'].map((name) => rawPost(`${gw.url}/mcp/${name}`, INITIALIZE, auth)),
      );
      for (const reply of replies) assert.match(reply.text, /crashed 5 times/);
      const { status, body } = await health(gw.url);
      assert.equal(status, 200, 'the gateway still serves the other servers');
      assert.equal(body.status, 'degraded');
      assert.deepEqual(body.unhealthy?.sort(), ['broken-each', 'broken-shared']);
      for (const name of ['broken-shared', 'broken-each']) {
        assert.equal(body.servers[name]?.healthy, false, name);
        assert.match(body.servers[name]?.reason ?? '', /crashed 5 times within 60s/, name);
      }
      assert.equal(body.servers.well?.healthy, true);
    } finally {
      await gw.close();
    }
  });
});

describe('/health', () => {
  it("answers like /healthz, with the brief's activeConnections (open sessions) and uptime", async () => {
    const gw = await startGateway({ servers: { well: fixtureServer('well') } }, { users: ['alice'] });
    try {
      const before = (await (await fetch(`${gw.url}/health`)).json()) as Record<string, unknown>;
      assert.equal(before.status, 'ok');
      assert.equal(before.activeConnections, 0);
      assert.equal(typeof before.uptime, 'number');
      const auth = { authorization: `Bearer ${gw.keys.alice}` };
      assert.equal((await rawPost(`${gw.url}/mcp/well`, INITIALIZE, auth)).status, 200);
      const response = await fetch(`${gw.url}/health`);
      assert.equal(response.status, 200);
      const after = (await response.json()) as Record<string, unknown>;
      assert.equal(after.activeConnections, 1);
      assert.equal(after.sessions, 1);
      const healthz = (await (await fetch(`${gw.url}/healthz`)).json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(healthz).sort(), Object.keys(after).sort());
    } finally {
      await gw.close();
    }
  });
});
