// The replicas' Redis connection against a real redis-server: a command on a frozen Redis (SIGSTOP, the
// connection still up) fails after the command timeout, and what waits for it is bounded: past
// MAX_QUEUED_COMMANDS a command is refused at once; all is well again once Redis wakes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_QUEUED_COMMANDS, type RedisLink } from '../src/cluster/redis-link.ts';
import { linkTo, redisUnavailable, startRedis, type TestRedis } from './helpers/redis-server.ts';

describe('RedisLink on a frozen Redis', { skip: redisUnavailable() }, () => {
  let redis: TestRedis;
  let link: RedisLink;

  before(async () => {
    redis = await startRedis();
    link = await linkTo(redis, 'link:');
  });
  after(async () => {
    redis?.resume();
    await link?.close();
    await redis?.close();
  });

  it('times each command out and refuses those past the queue bound at once', {
    timeout: 30_000,
  }, async () => {
    assert.equal(await link.run((client) => client.ping()), 'PONG');
    redis.pause();
    const outcomes: Array<Promise<string>> = [];
    try {
      for (let sent = 0; sent < MAX_QUEUED_COMMANDS + 50; sent++)
        outcomes.push(
          link
            .run((client) => client.ping())
            .then(
              () => 'answered',
              (error: Error) => error.message,
            ),
        );
      const settled = await Promise.all(outcomes);
      const count = (message: string) => settled.filter((outcome) => outcome === message).length;
      // The queue's own refusal comes before anything is sent; the rest wait out the 1 s bound.
      assert.equal(count('The queue is full'), 50);
      assert.equal(count('Redis did not answer in time'), MAX_QUEUED_COMMANDS);
    } finally {
      redis.resume();
    }
    // The queued PINGs run when Redis wakes; then the link answers as before.
    for (let tries = 0; tries < 50; tries++) {
      const answer = await link.run((client) => client.ping()).catch(() => undefined);
      if (answer === 'PONG') return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail('the link did not answer again after Redis woke');
  });
});
