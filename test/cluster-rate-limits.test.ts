// Requests per minute across replicas: two RateLimits ("replicas") counting in one real Redis admit
// exactly the limit together; with Redis gone, killed or frozen, each admits its share from memory
// (the insurance limiter), nothing throws and no request waits longer than one Redis timeout; when
// Redis is back, the shared count resumes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RedisLink } from '../src/cluster/redis-link.ts';
import { buildConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import { RateLimits } from '../src/policy/rate-limits.ts';
import { linkTo, redisUnavailable, startRedis, type TestRedis } from './helpers/redis-server.ts';
import { eventually } from './helpers/wait.ts';

const config = buildConfig({
  listen: { host: '127.0.0.1', port: 0 },
  servers: { s: { command: 'true', requestsPerMinute: 7 }, free: { command: 'true' } },
  limits: { requestsPerMinute: 10 },
});

describe('rate limits across replicas (Redis)', { skip: redisUnavailable() }, () => {
  let redis: TestRedis;
  let links: RedisLink[];
  let replicas: RateLimits[];

  before(async () => {
    redis = await startRedis();
    links = [await linkTo(redis), await linkTo(redis)];
    replicas = links.map((link) => new RateLimits(config, silentLogger, { redis: link, replicas: 2 }));
  });
  after(async () => {
    await Promise.all(links.map((link) => link.close()));
    await redis.close();
  });

  /** How many of `count` requests of `user`, spread over both replicas in turn, were admitted. */
  async function admitted(user: string, server: string, count: number): Promise<string[]> {
    const refusals: string[] = [];
    let admittedCount = 0;
    for (let i = 0; i < count; i++) {
      const refusal = await replicas[i % 2]?.consume(user, server);
      if (refusal) refusals.push(refusal.message);
      else admittedCount++;
    }
    return [String(admittedCount), ...refusals];
  }

  it('admits exactly the per-user limit across both replicas, with today’s refusal', async () => {
    const [count, ...refusals] = await admitted('alice', 'free', 14);
    assert.equal(count, '10');
    assert.equal(refusals.length, 4);
    assert.match(refusals[0] ?? '', /^rate limit: at most 10 requests per minute per user; retry in \d+ s$/);
    // Counted where every replica sees it, under the cluster's prefix.
    assert.equal(await links[0]?.client.get('test:rl:user:alice'), '14');
  });

  it('admits exactly the per-server limit across both replicas, all users together', async () => {
    let admittedCount = 0;
    const refusals: string[] = [];
    for (let i = 0; i < 10; i++) {
      const refusal = await replicas[i % 2]?.consume(`user${i}`, 's');
      if (refusal) refusals.push(refusal.message);
      else admittedCount++;
    }
    assert.equal(admittedCount, 7);
    assert.match(
      refusals[0] ?? '',
      /^rate limit: server "s" takes at most 7 requests per minute from all users; retry in \d+ s$/,
    );
  });

  it('falls back to each replica’s share while Redis is down, and counts in Redis again when it is back', async () => {
    await redis.stop();
    await eventually(() => links.every((link) => !link.ready), 'both links to notice Redis is gone', 5_000);
    // Each replica alone admits 10 ÷ 2 = 5 of bob's requests; none throws or waits.
    for (const replica of replicas) {
      const started = Date.now();
      let admittedCount = 0;
      for (let i = 0; i < 8; i++) if ((await replica.consume('bob', 'free')) === undefined) admittedCount++;
      assert.equal(admittedCount, 5);
      assert.ok(Date.now() - started < 200, `8 counts took ${Date.now() - started} ms`);
    }
    await redis.start();
    await eventually(() => links.every((link) => link.ready), 'both links to reconnect', 10_000);
    // Redis came back empty: carol's count is shared again (10 in all, not 5 per replica).
    const [count] = await admitted('carol', 'free', 14);
    assert.equal(count, '10');
  });

  it('does not wait for a frozen Redis longer than its timeout, and uses the insurance share meanwhile', async () => {
    redis.pause();
    try {
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 8 }, () => replicas[0]?.consume('dave', 'free') as Promise<unknown>),
      );
      const took = Date.now() - started;
      assert.equal(results.filter((refusal) => refusal === undefined).length, 5);
      assert.ok(took < 1_600, `the counts took ${took} ms with Redis frozen`);
      // One timeout is enough: the next requests, per user and per server limit alike, do not wait.
      const next = Date.now();
      assert.equal(await replicas[0]?.consume('frank', 's'), undefined);
      assert.ok(Date.now() - next < 100, `a later count took ${Date.now() - next} ms`);
    } finally {
      redis.resume();
    }
    // Counted in Redis again (an admission alone could come from the insurance limiter).
    await eventually(async () => {
      await replicas[1]?.consume('erin', 'free');
      return (await links[0]?.client.get('test:rl:user:erin')) !== null;
    }, 'counts in Redis again');
  });
});
