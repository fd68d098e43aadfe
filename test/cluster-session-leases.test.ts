// limits.sessionsPerUser across replicas: two SessionLeases (and two SessionManagers) on one real Redis
// admit at most the limit for a user together, make room from their own idle sessions first, give a
// closed session's place back, forget a dead replica's sessions after a lease, and say 'unavailable'
// (never throw or hang) while Redis is gone, counting the sessions again when it is back.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { RedisLink } from '../src/cluster/redis-link.ts';
import { LEASE_MS, SessionLeases } from '../src/cluster/session-leases.ts';
import { buildConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import { type CreateResult, SessionManager } from '../src/sessions/manager.ts';
import type { Session } from '../src/sessions/session.ts';
import type { Identity, SessionGates } from '../src/sessions/types.ts';
import { linkTo, redisUnavailable, startRedis, type TestRedis } from './helpers/redis-server.ts';
import { eventually } from './helpers/wait.ts';

const config = buildConfig({
  listen: { host: '127.0.0.1', port: 0 },
  servers: { s: { command: 'true' } },
  limits: { sessionsPerUser: 2 },
});
const open: SessionGates = {
  admitSession: () => undefined,
  admitStream: () => undefined,
  open: () => ({ admit: () => ({ track: undefined }), passes: () => true }),
};
const identity = (user: string): Identity => ({ user, groups: [], method: 'none', credential: 'none' });

function sessionOf(result: CreateResult): Session {
  assert.ok(result.ok, `expected a session, got ${JSON.stringify(result)}`);
  return result.session;
}

describe('session leases across replicas (Redis)', { skip: redisUnavailable() }, () => {
  let redis: TestRedis;
  let links: RedisLink[];
  let leases: SessionLeases[];
  /** A third look at Redis, as an operator would take it. */
  const client = () => (links[0] as RedisLink).client;
  const members = (user: string): Promise<string[]> => client().zRange(`test:usess:${user}`, 0, -1);

  before(async () => {
    redis = await startRedis();
    links = [await linkTo(redis), await linkTo(redis)];
    leases = links.map((link) => new SessionLeases(link, silentLogger));
  });
  after(async () => {
    for (const lease of leases) lease.close();
    await Promise.all(links.map((link) => link.close()));
    await redis.close();
  });

  it('admits at most the limit across both replicas, and a dropped session gives its place back', async () => {
    const [a, b] = leases as [SessionLeases, SessionLeases];
    assert.equal(await a.admit('alice', 'a1', 3), true);
    assert.equal(await a.admit('alice', 'a2', 3), true);
    assert.equal(await b.admit('alice', 'b1', 3), true);
    assert.equal(await b.admit('alice', 'b2', 3), false);
    assert.equal(await a.admit('alice', 'a3', 3), false);
    // Another user counts on their own.
    assert.equal(await b.admit('bob', 'b3', 3), true);
    a.drop('alice', 'a1');
    assert.equal(await b.admit('alice', 'b2', 3), true);
    assert.deepEqual((await members('alice')).sort(), ['a2', 'b1', 'b2']);
    // Leases expire by Redis's clock: score ≈ TIME + LEASE_MS, and the key goes with the last lease.
    const [seconds, micros] = (await client().time()) as unknown as [string, string];
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const score = (await client().zScore('test:usess:alice', 'b2')) as number;
    assert.ok(Math.abs(score - (now + LEASE_MS)) < 1_000, `lease ${score} vs now ${now}`);
    assert.ok(((await client().pTTL('test:usess:alice')) as number) > LEASE_MS - 1_000);
  });

  it('forgets the sessions of a replica that stopped renewing, and renews those it holds', async () => {
    const [a, b] = leases as [SessionLeases, SessionLeases];
    assert.equal(await a.admit('carol', 'dead1', 2), true);
    assert.equal(await b.admit('carol', 'live1', 2), true);
    // A's lease runs out (as if A died 30 s ago); B's is about to, but B renews.
    await client().zAdd('test:usess:carol', [
      { score: Date.now() - 1_000, value: 'dead1' },
      { score: Date.now() + 2_000, value: 'live1' },
    ]);
    await b.renew();
    assert.ok(((await client().zScore('test:usess:carol', 'live1')) as number) > Date.now() + 20_000);
    assert.equal(await b.admit('carol', 'live2', 2), true);
    assert.deepEqual((await members('carol')).sort(), ['live1', 'live2']);
  });

  it('says unavailable while Redis is gone (at once, or within the timeout when frozen), and counts those sessions when it is back', async () => {
    const [a] = leases as [SessionLeases];
    await redis.stop();
    await eventually(() => links.every((link) => !link.ready), 'both links to notice Redis is gone', 5_000);
    let started = Date.now();
    assert.equal(await a.admit('dave', 'd1', 2), 'unavailable');
    assert.ok(Date.now() - started < 100);
    a.drop('dave', 'gone-anyway');
    await a.renew();
    await redis.start();
    await eventually(() => links.every((link) => link.ready), 'both links to reconnect', 10_000);
    // The session admitted during the outage is counted again at the next renewal.
    await a.renew();
    assert.deepEqual(await members('dave'), ['d1']);

    redis.pause();
    try {
      started = Date.now();
      assert.equal(await a.admit('dave', 'd2', 2), 'unavailable');
      assert.ok(Date.now() - started < 1_500, `admit took ${Date.now() - started} ms`);
    } finally {
      redis.resume();
    }
    a.drop('dave', 'd1');
    a.drop('dave', 'd2');
    await eventually(async () => (await members('dave')).length === 0, 'both leases removed');
  });

  describe('SessionManager with leases', () => {
    let managers: SessionManager[] = [];
    afterEach(async () => {
      await Promise.all(managers.map((manager) => manager.closeAll('test over')));
      managers = [];
    });

    function manager(lease: SessionLeases): SessionManager {
      const made = new SessionManager(
        config,
        silentLogger,
        () => ({ ok: true, attach: () => ({ send: () => {}, close: async () => {} }) }),
        open,
        undefined,
        undefined,
        lease,
      );
      managers.push(made);
      return made;
    }

    it('refuses a session the user holds elsewhere, after making room from its own idle ones', async () => {
      const [one, two] = [manager(leases[0] as SessionLeases), manager(leases[1] as SessionLeases)];
      const first = sessionOf(await one.create('s', identity('erin')));
      sessionOf(await one.create('s', identity('erin')));
      // Replica two holds none of erin's sessions, so none to replace: the cluster's count refuses.
      assert.deepEqual(await two.create('s', identity('erin')), {
        ok: false,
        reason: 'too-many-sessions',
        limit: 2,
      });
      // Stateless stand-ins are not counted, as today.
      sessionOf(await two.create('s', identity('erin'), {}, { stateless: true }));
      // Replica one replaces its least recently used idle session, as it always has.
      const third = sessionOf(await one.create('s', identity('erin')));
      assert.equal(first.closed, true);
      assert.equal((await members('erin')).length, 2);
      assert.ok((await members('erin')).includes(third.id));
      // A session that ends gives its place back to the other replica.
      await third.close('client left');
      const elsewhere = sessionOf(await two.create('s', identity('erin')));
      assert.ok((await members('erin')).includes(elsewhere.id));
      // Replica two is at the cluster limit with one session of its own: it replaces that idle one.
      const again = sessionOf(await two.create('s', identity('erin')));
      assert.equal(elsewhere.closed, true);
      assert.deepEqual((await members('erin')).length, 2);
      assert.ok((await members('erin')).includes(again.id));
    });

    it('counts locally while Redis is unavailable, as a single gateway does', async () => {
      const one = manager(leases[0] as SessionLeases);
      await redis.stop();
      await eventually(() => links.every((link) => !link.ready), 'both links to notice Redis is gone', 5_000);
      try {
        sessionOf(await one.create('s', identity('frank')));
        sessionOf(await one.create('s', identity('frank')));
        const third = sessionOf(await one.create('s', identity('frank')));
        assert.equal(one.snapshot().byUser.frank, 2);
        await third.close('done');
      } finally {
        await redis.start();
        await eventually(() => links.every((link) => link.ready), 'both links to reconnect', 10_000);
      }
    });
  });
});
