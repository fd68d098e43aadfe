// Two owners of one backend never exist, even while Redis is out of reach. Two replicas on a real
// redis-server; r1 reaches it through a TCP relay the test can cut. Cut past the heartbeat's TTL, r1
// answers new placements of a backend it runs with 503 while r2 takes it over, and once r1 reaches Redis
// again its heartbeat finds the owner key taken and stops its copy (its sessions get 404 and
// re-initialize at r2). Redis restarted empty: the owner's heartbeat claims its keys again, so the
// other replica forwards to it rather than starting a second copy. A placement that reaches a replica
// over the hop from a sender whose view was stale is refused there (503) when another replica owns the
// backend, rather than started as a second copy, and is not forwarded again. A replica whose id another
// process took gives up its single-owner backends and places none.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createKey } from '../src/auth/key-admin.ts';
import type { RedisLink } from '../src/cluster/redis-link.ts';
import { CLUSTER_SECRET, forwardsOf, type MeteredReplica, startMeteredReplica } from './helpers/cluster.ts';
import { type FaultRelay, startFaultRelay } from './helpers/fault-relay.ts';
import { answerOf, fixtureServer, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { linkTo, redisUnavailable, startRedis, type TestRedis } from './helpers/redis-server.ts';
import { eventually } from './helpers/wait.ts';

const TIMEOUT = { timeout: 90_000 };
const PREFIX = 'own:';
const servers = { mine: fixtureServer('well', { isolation: 'per-user' }) };

/** Whether process `pid` still runs. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('cluster: one owner per backend, even without Redis', { skip: redisUnavailable() }, () => {
  let redis: TestRedis;
  let relay: FaultRelay;
  let link: RedisLink;
  let dir: string;
  const keys: Record<string, string> = {};
  const replicas: MeteredReplica[] = [];

  before(async () => {
    redis = await startRedis();
    relay = await startFaultRelay(redis.port);
    link = await linkTo(redis, PREFIX);
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-ownership-'));
    const keysFile = join(dir, 'keys.yaml');
    for (const user of ['alice', 'bob', 'carol', 'dave'])
      keys[user] = (await createKey(keysFile, { user, groups: [] })).key;
    for (const [id, url] of [
      ['r1', `redis://127.0.0.1:${relay.port}`],
      ['r2', redis.url],
    ] as const)
      replicas.push(
        await startMeteredReplica(id, { redis: url, keyPrefix: PREFIX, keysFile, servers }, {}, dir),
      );
  });
  after(async () => {
    await Promise.all(replicas.map((replica) => replica.gateway.close()));
    await link.close();
    await relay.close();
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const at = (index: number) => `${replicas[index]?.url}/mcp/mine`;
  const auth = (user: string) => ({ authorization: `Bearer ${keys[user]}` });
  const initialize = (index: number, user: string) => rawPost(at(index), INITIALIZE, auth(user));
  /** initialize (200 expected) + notifications/initialized at replica `index`; the session id. */
  const open = async (index: number, user: string) => {
    const init = await initialize(index, user);
    assert.equal(init.status, 200, init.text);
    const session = init.headers.get('mcp-session-id') as string;
    await rawPost(at(index), JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
      ...auth(user),
      'mcp-session-id': session,
    });
    return session;
  };
  /**
   * An initialize for `user` sent straight to replica `index`'s peer listener, signed as a hop from
   * replica `origin` (as peer-hop.ts signs one: method, path, session, origin and time).
   */
  const initializeOverHop = (index: number, user: string, origin: string) => {
    const path = '/mcp/mine';
    const time = String(Date.now());
    const mac = createHmac('sha256', CLUSTER_SECRET)
      .update(['POST', path, '', origin, time].join('\n'))
      .digest('base64url');
    return rawPost(`http://127.0.0.1:${replicas[index]?.peerPort}${path}`, INITIALIZE, {
      ...auth(user),
      'mcp-relay-peer': `${origin} ${time} ${mac}`,
    });
  };
  /** The session id of an initialize at replica `index` once one succeeds (placements may be refused for a while). */
  const placedAtLast = async (index: number, user: string) => {
    let session = '';
    await eventually(
      async () => {
        const init = await initialize(index, user);
        session = init.headers.get('mcp-session-id') ?? '';
        return init.status === 200;
      },
      `a placement at r${index + 1} to succeed`,
    );
    return session;
  };
  let nextId = 10;
  /** The backend's pid through `session` at replica `index` (status, pid). */
  const pidOf = async (index: number, user: string, session: string) => {
    const reply = await rawPost(
      at(index),
      JSON.stringify({
        jsonrpc: '2.0',
        id: nextId++,
        method: 'tools/call',
        params: { name: 'pid', arguments: {} },
      }),
      { ...auth(user), 'mcp-session-id': session },
    );
    const answer = answerOf(reply) as { result?: unknown } | undefined;
    return { status: reply.status, pid: answer?.result === undefined ? 0 : Number(textOf(answer.result)) };
  };

  it(
    'refuses new placements on a replica cut off from Redis past the TTL, and stops its copy once it is back',
    TIMEOUT,
    async () => {
      const established = await open(0, 'alice');
      assert.match(established, /^r1\./);
      const first = await pidOf(0, 'alice', established);
      assert.equal(first.status, 200);

      let second = 0;
      relay.setMode('refuse');
      relay.cut();
      try {
        // r1's heartbeat lapses in Redis: r2 may take alice's backend over from now on.
        await eventually(
          async () => (await link.run((c) => c.get(`${PREFIX}alive:r1`))) === null,
          'alive:r1 to lapse',
        );
        // r1 runs alice's backend but may no longer be its owner: no new session there.
        const refused = await initialize(0, 'alice');
        assert.equal(refused.status, 503, refused.text);
        assert.equal(refused.headers.get('retry-after'), '3');
        // Its established session goes on meanwhile (no Redis on a call's path).
        assert.deepEqual(await pidOf(0, 'alice', established), first);
        // r2 takes the backend over (compare-and-set: r1's heartbeat is gone) and starts its own copy.
        const moved = await open(1, 'alice');
        assert.match(moved, /^r2\./);
        const copy = await pidOf(1, 'alice', moved);
        assert.equal(copy.status, 200);
        assert.notEqual(copy.pid, first.pid);
        second = copy.pid;
        // Still cut off: r1 keeps refusing.
        assert.equal((await initialize(0, 'alice')).status, 503);
      } finally {
        relay.setMode('pass');
      }
      // Back in touch, r1's heartbeat finds alice's owner key held by r2: its copy stops, its session ends.
      await eventually(() => !running(first.pid), "r1's copy of alice's backend to stop");
      assert.equal((await pidOf(0, 'alice', established)).status, 404);
      // Her client re-initializes at r1 and reaches the one backend, at r2.
      const again = await placedAtLast(0, 'alice');
      assert.match(again, /^r2\./);
      assert.equal((await pidOf(0, 'alice', again)).pid, second);
      assert.match(String(await link.run((c) => c.get(`${PREFIX}owner:mine:alice`))), /^r2:/);
    },
  );

  it('claims its owner keys again when Redis restarts empty, so no second copy starts', TIMEOUT, async () => {
    const session = await open(1, 'carol');
    assert.match(session, /^r2\./);
    const { pid } = await pidOf(1, 'carol', session);
    await redis.stop();
    await redis.start();
    // The owner's heartbeat puts its key back (no persistence: Redis forgot it).
    await eventually(
      async () =>
        /^r2:/.test(String(await link.run((c) => c.get(`${PREFIX}owner:mine:carol`)).catch(() => ''))),
      "r2's heartbeat to claim carol's owner key again",
    );
    const placed = await placedAtLast(0, 'carol');
    assert.match(placed, /^r2\./);
    assert.equal((await pidOf(0, 'carol', placed)).pid, pid);
    assert.equal((await pidOf(1, 'carol', session)).pid, pid);
  });

  it('refuses a placement forwarded to a replica that does not own the backend', TIMEOUT, async () => {
    const session = await open(1, 'bob');
    assert.match(session, /^r2\./);
    const { pid } = await pidOf(1, 'bob', session);
    // A stale view elsewhere (r3's cache, say) sends bob's initialize to r1, which does not own his backend.
    const received = await forwardsOf(replicas[0], 'received');
    const sentBefore = await forwardsOf(replicas[0], 'sent');
    const stale = await initializeOverHop(0, 'bob', 'r3');
    assert.equal(stale.status, 503, stale.text);
    assert.equal(stale.headers.get('retry-after'), '1');
    assert.equal(await forwardsOf(replicas[0], 'received'), received + 1);
    // Nor forwarded again: r1 sent nothing on.
    assert.equal(await forwardsOf(replicas[0], 'sent'), sentBefore);
    assert.match(String(await link.run((c) => c.get(`${PREFIX}owner:mine:bob`))), /^r2:/);
    // The owner itself takes the same hop, and bob's one backend serves him wherever he lands.
    const direct = await initializeOverHop(1, 'bob', 'r1');
    assert.equal(direct.status, 200, direct.text);
    const placed = await open(0, 'bob');
    assert.match(placed, /^r2\./);
    assert.equal((await pidOf(0, 'bob', placed)).pid, pid);
  });

  // Last: r2 is left without its id.
  it(
    'gives up its single-owner backends and places none once another process holds its replica id',
    TIMEOUT,
    async () => {
      const session = await open(1, 'dave');
      assert.match(session, /^r2\./);
      const { pid } = await pidOf(1, 'dave', session);
      // Another process configured as r2 took the id while this one was out of reach.
      await link.run((c) => c.set(`${PREFIX}alive:r2`, 'another-epoch', { PX: 60_000 }));
      await eventually(() => !running(pid), "r2's copy of dave's backend to stop");
      assert.equal((await pidOf(1, 'dave', session)).status, 404);
      await eventually(
        async () => (await initialize(1, 'dave')).status === 503,
        'r2 to refuse new placements',
      );
    },
  );
});
