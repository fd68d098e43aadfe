// API keys revoked on every replica within 2 s: two "machines", each with its own copy of the keys file
// and its own KeyStore and Revocations on one real Redis; `mcp-relay keys revoke` run on one of them
// (the CLI code path, in process) is refused by both, and the gateway's hook that ends a revoked key's
// sessions (GatewayAuth.onKeysChanged + stillValid) fires on both. The poll covers a lost message;
// with Redis gone the CLI refuses loudly and the replicas keep what they know; when Redis comes back
// empty, the replicas put the revoked ids back.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayAuth } from '../src/auth/gateway-auth.ts';
import { createKey } from '../src/auth/key-admin.ts';
import { KeyStore } from '../src/auth/keys.ts';
import type { RedisLink } from '../src/cluster/redis-link.ts';
import { Revocations } from '../src/cluster/revocations.ts';
import { buildConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import type { Identity } from '../src/sessions/types.ts';
import { runCliInProcess } from './helpers/cli.ts';
import { linkTo, redisUnavailable, startRedis, type TestRedis } from './helpers/redis-server.ts';
import { eventually } from './helpers/wait.ts';

/** One machine of the cluster: its keys file, its link, its revocations, its store and gateway auth. */
interface Replica {
  file: string;
  link: RedisLink;
  revocations: Revocations;
  store: KeyStore;
  auth: GatewayAuth;
  /** How often the keys changed as the gateway sees it (each time, sessions of revoked keys end). */
  changes: number;
}

describe('API key revocation across replicas (Redis)', { skip: redisUnavailable() }, () => {
  let redis: TestRedis;
  let dir: string;
  let config: string;
  const replicas: Replica[] = [];
  const keys: Record<string, { key: string; id: string }> = {};

  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-revocations-'));
    const fileA = join(dir, 'keys-a.yaml');
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const { key, record } = await createKey(fileA, { user, groups: ['staff'] });
      keys[user] = { key, id: record.id };
    }
    // The other machine has its own copy (config management put it there), never touched again here.
    const fileB = join(dir, 'keys-b.yaml');
    copyFileSync(fileA, fileB);
    config = join(dir, 'relay.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        servers: { s: { command: 'true' } },
        auth: { apiKeys: { file: fileA } },
        cluster: {
          replica: 'r1',
          redis: redis.url,
          keyPrefix: 'test:',
          secret: 'a-secret-of-at-least-32-characters!!',
          peer: { listen: '127.0.0.1:8788' },
        },
      }),
    );
    for (const file of [fileA, fileB]) {
      const link = await linkTo(redis);
      const revocations = new Revocations(link, silentLogger);
      await revocations.start();
      const store = await KeyStore.open(file, silentLogger, { revocations });
      const auth = new GatewayAuth(
        buildConfig({
          listen: { host: '127.0.0.1', port: 0 },
          servers: { s: { command: 'true' } },
          auth: { apiKeys: { file } },
        }),
        silentLogger,
        () => 'http://127.0.0.1',
        revocations,
      );
      await auth.open();
      const replica: Replica = { file, link, revocations, store, auth, changes: 0 };
      auth.onKeysChanged(() => replica.changes++);
      replicas.push(replica);
    }
  });
  after(async () => {
    for (const replica of replicas) {
      replica.store.close();
      replica.auth.close();
      await replica.revocations.close();
      await replica.link.close();
    }
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const identityOf = (user: string): Identity => ({
    user,
    groups: ['staff'],
    method: 'api-key',
    credential: `key:${keys[user]?.id}`,
  });
  /** Whether the key is refused on every replica, for new requests and for its open sessions. */
  const refusedEverywhere = (user: string): boolean =>
    replicas.every(
      (replica) =>
        replica.store.authenticate(keys[user]?.key ?? '') === undefined &&
        !replica.auth.stillValid(identityOf(user)),
    );
  const acceptedEverywhere = (user: string): boolean =>
    replicas.every(
      (replica) =>
        replica.store.authenticate(keys[user]?.key ?? '')?.user === user &&
        replica.auth.stillValid(identityOf(user)),
    );

  it('refuses a key revoked through `mcp-relay keys revoke` on every replica within 2 s', async (t) => {
    assert.ok(acceptedEverywhere('alice') && acceptedEverywhere('bob'));
    const changesBefore = replicas.map((replica) => replica.changes);
    const started = performance.now();
    const revoked = await runCliInProcess(['keys', 'revoke', keys.alice?.id ?? '', '--config', config]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stderr, /every replica of the cluster stops accepting it within 2 seconds/);
    // Every replica refuses at once, and tells the gateway, whose hook ends the key's sessions.
    while (
      !refusedEverywhere('alice') ||
      replicas.some((replica, i) => replica.changes === changesBefore[i])
    ) {
      assert.ok(performance.now() - started < 2_000, 'not refused everywhere within 2 s');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const ms = performance.now() - started;
    t.diagnostic(`revocation refused on both replicas ${ms.toFixed(1)} ms after the CLI started`);
    assert.ok(acceptedEverywhere('bob'), 'other keys stay valid');
    // Machine B's own file still lists the key: Redis carried the revocation.
    assert.match(readFileSync(replicas[1]?.file ?? '', 'utf8'), new RegExp(keys.alice?.id ?? '-'));
  });

  it('applies a revocation whose message was lost within the 1 s poll', async (t) => {
    const client = replicas[0]?.link.client;
    assert.ok(client);
    const started = Date.now();
    // Written as the CLI writes it, but never published (a subscriber reconnecting misses it so).
    await client
      .multi()
      .sAdd('test:revoked', keys.bob?.id ?? '')
      .incr('test:revoked:version')
      .exec();
    const ms = await eventually(() => refusedEverywhere('bob'), 'the poll to revoke bob', 2_000);
    t.diagnostic(`revocation without its message refused on both replicas after ${Date.now() - started} ms`);
    assert.ok(ms <= 2_000);
  });

  it('without Redis: the CLI refuses and changes nothing, the replicas keep what they know; when Redis is back empty, they put it back', async (t) => {
    await redis.stop();
    await eventually(() => replicas.every((replica) => !replica.link.ready), 'the links to notice', 5_000);
    const fileBefore = readFileSync(replicas[0]?.file ?? '', 'utf8');
    const refused = await runCliInProcess(['keys', 'revoke', keys.carol?.id ?? '', '--config', config]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /could not reach the cluster's Redis .*the keys file is unchanged/);
    assert.equal(readFileSync(replicas[0]?.file ?? '', 'utf8'), fileBefore, 'the keys file is unchanged');
    // Authentication never asks Redis: known revocations hold, other keys work.
    assert.ok(refusedEverywhere('alice') && refusedEverywhere('bob') && acceptedEverywhere('carol'));

    await redis.start();
    await eventually(
      async () =>
        (await replicas[0]?.link.run((client) => client.sMembers('test:revoked')).catch(() => []))?.length ===
        2,
      'the replicas to put the revoked ids back into an empty Redis',
      5_000,
    );
    assert.ok(refusedEverywhere('alice') && refusedEverywhere('bob'));
    // Subscribed again: the next revocation is as quick as before.
    const started = performance.now();
    const revoked = await runCliInProcess(['keys', 'revoke', 'dave', '--yes', '--config', config]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await eventually(() => refusedEverywhere('dave'), 'dave refused everywhere', 2_000);
    t.diagnostic(
      `after Redis came back: revocation refused on both replicas ${(performance.now() - started).toFixed(1)} ms after the CLI started`,
    );
    assert.ok(acceptedEverywhere('carol'));
  });

  it('with Redis frozen: authentication does not wait, the CLI gives up within seconds, and all resumes after', async (t) => {
    redis.pause();
    try {
      const started = Date.now();
      assert.ok(refusedEverywhere('alice') && acceptedEverywhere('carol'));
      assert.ok(Date.now() - started < 50);
      const refused = await runCliInProcess(['keys', 'revoke', keys.carol?.id ?? '', '--config', config]);
      const took = Date.now() - started;
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /could not reach the cluster's Redis/);
      assert.ok(took < 4_000, `the CLI took ${took} ms`);
      // The replicas' polls time out meanwhile; nothing they hold changes.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.ok(refusedEverywhere('alice') && refusedEverywhere('dave') && acceptedEverywhere('carol'));
    } finally {
      redis.resume();
    }
    const started = performance.now();
    const revoked = await runCliInProcess(['keys', 'revoke', keys.carol?.id ?? '', '--config', config]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await eventually(() => refusedEverywhere('carol'), 'carol refused everywhere', 2_000);
    t.diagnostic(
      `after Redis thawed: revocation refused on both replicas ${(performance.now() - started).toFixed(1)} ms after the CLI started`,
    );
  });
});
