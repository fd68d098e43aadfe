// Rate limits and session caps against a real gateway: 429 with Retry-After and a JSON-RPC body once
// a user (or a server as a whole) is over its requests per minute; what counts and what does not.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connectClient,
  fixtureServer,
  INITIALIZE,
  rawPost,
  startGateway,
  type TestGateway,
} from './helpers/gateway.ts';

const TIMEOUT = { timeout: 30_000 };

function ping(id: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });
}

const NOTIFICATION = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });

/** A raw session of `key`: its initialize is the first request counted. */
async function openSession(url: string, key: string): Promise<Record<string, string>> {
  const init = await rawPost(url, INITIALIZE, { authorization: `Bearer ${key}` });
  assert.equal(init.status, 200);
  return { authorization: `Bearer ${key}`, 'mcp-session-id': init.headers.get('mcp-session-id') as string };
}

function errorOf(json: unknown): { code: number; message: string } {
  return (json as { error: { code: number; message: string } }).error;
}

describe('rate limits', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      {
        servers: { a: fixtureServer(), busy: fixtureServer('well', { requestsPerMinute: 4 }) },
        limits: { requestsPerMinute: 5 },
      },
      { users: ['alice', 'bob', 'carol', 'dave', 'erin'] },
    );
  });
  after(() => gw.close());

  it(
    'answers 429 with Retry-After past the per-user limit, and leaves other users alone',
    TIMEOUT,
    async () => {
      const url = `${gw.url}/mcp/a`;
      const alice = await openSession(url, gw.keys.alice as string); // request 1
      // Notifications are not requests: they never count.
      for (let i = 0; i < 8; i++) assert.equal((await rawPost(url, NOTIFICATION, alice)).status, 202);
      for (let id = 2; id <= 5; id++) assert.equal((await rawPost(url, ping(id), alice)).status, 200);
      const refused = await rawPost(url, ping(6), alice);
      assert.equal(refused.status, 429);
      const retryAfter = Number(refused.headers.get('retry-after'));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
        `Retry-After ${retryAfter}`,
      );
      assert.equal(errorOf(refused.json).code, -32003);
      assert.equal((refused.json as { id: number }).id, 6);
      assert.match(errorOf(refused.json).message, /at most 5 requests per minute per user; retry in \d+ s/);
      // A new session does not reset the user's count.
      const again = await rawPost(url, INITIALIZE, { authorization: `Bearer ${gw.keys.alice}` });
      assert.equal(again.status, 429);
      assert.ok(Number(again.headers.get('retry-after')) >= 1);
      // Another user is not affected.
      const bob = await openSession(url, gw.keys.bob as string);
      assert.equal((await rawPost(url, ping(2), bob)).status, 200);
    },
  );

  it('limits a server as a whole across users (servers.<name>.requestsPerMinute)', TIMEOUT, async () => {
    const busy = `${gw.url}/mcp/busy`;
    const carol = await openSession(busy, gw.keys.carol as string); // busy: 1
    assert.equal((await rawPost(busy, ping(2), carol)).status, 200); // 2
    const dave = await openSession(busy, gw.keys.dave as string); // 3
    assert.equal((await rawPost(busy, ping(2), dave)).status, 200); // 4
    const over = await rawPost(busy, ping(3), dave);
    assert.equal(over.status, 429);
    assert.match(
      errorOf(over.json).message,
      /server "busy" takes at most 4 requests per minute from all users/,
    );
    assert.ok(Number(over.headers.get('retry-after')) >= 1);
    // The other server is not limited by it.
    const daveOnA = await openSession(`${gw.url}/mcp/a`, gw.keys.dave as string);
    assert.equal((await rawPost(`${gw.url}/mcp/a`, ping(2), daveOnA)).status, 200);
  });

  it('refuses an SDK client over the limit with an error that says so', TIMEOUT, async () => {
    const { client } = await connectClient(`${gw.url}/mcp/a`, gw.keys.erin); // 1
    for (let i = 0; i < 4; i++) await client.ping(); // 2..5
    await assert.rejects(client.ping(), /rate limit: at most 5 requests per minute per user/);
    await client.close();
  });
});

describe('sessions per user', () => {
  it('caps concurrent sessions with 429 and frees a slot when one ends', TIMEOUT, async () => {
    const gw = await startGateway(
      { servers: { a: fixtureServer() }, limits: { sessionsPerUser: 1 } },
      { users: ['ann', 'ben'] },
    );
    try {
      const url = `${gw.url}/mcp/a`;
      const first = await connectClient(url, gw.keys.ann);
      const second = await rawPost(url, INITIALIZE, { authorization: `Bearer ${gw.keys.ann}` });
      assert.equal(second.status, 429);
      assert.ok(second.headers.get('retry-after'));
      assert.match(errorOf(second.json).message, /at most 1 per user/);
      // Another user has their own allowance.
      const ben = await connectClient(url, gw.keys.ben);
      await first.transport.terminateSession();
      await first.client.close();
      const third = await connectClient(url, gw.keys.ann);
      await Promise.all([third.client.close(), ben.client.close()]);
    } finally {
      await gw.close();
    }
  });
});
