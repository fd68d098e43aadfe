// MCP 2026-07-28 (stateless) clients in a cluster: three gateway replicas on one real redis-server, on
// loopback, each running its own copy of an `every-replica` server (the SDK 1.x fixture). A list change
// or resource update one copy sends reaches the listen streams of every replica, exactly once each and
// with the same filters as at home; a resource subscribed on one replica is subscribed on the others'
// copies too (and let go of when the listen ends, or its replica is SIGKILLed and its entry expires); an MRTR call parked on one replica is completed by a retry sent to
// another (forwarded over the peer hop, the tool run once); a requestState of a replica that left, or was
// SIGKILLed a moment ago, is answered as any unknown one; a per-user call sent to a replica that is not
// its owner is forwarded with its Mcp-Param-* headers, and a listen there is a stream from the owner;
// with Redis down, listeners still hear their own replica's copy, and the others' once it is back.
// Beside them, the fan-out alone on a real Redis: only list changes and resource updates cross, cut
// down to method and URI; at most 64 PUBLISHes wait on a frozen Redis; the outage is logged once; and
// the shared subscriptions alone: only every-replica servers', at most 1,000 URIs of bounded length.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import {
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { pino } from 'pino';
import { NotifyFanout } from '../src/cluster/notify-fanout.ts';
import { RedisLink } from '../src/cluster/redis-link.ts';
import { SharedSubscriptions } from '../src/cluster/shared-subscriptions.ts';
import { buildConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import type { JsonRpcNotification } from '../src/protocol/jsonrpc.ts';
import {
  type MeteredReplica,
  metricOf,
  replicaConfig,
  startCluster,
  startMeteredReplica,
  type TestCluster,
} from './helpers/cluster.ts';
import { connectClient, rawPost, textOf } from './helpers/gateway.ts';
import { startRedis, type TestRedis } from './helpers/redis-server.ts';
import { startServe } from './helpers/serve.ts';

const TIMEOUT = { timeout: 60_000 };
const MODERN = '2026-07-28';
const SDK1_SERVER = fileURLToPath(new URL('./fixtures/sdk1-server.mjs', import.meta.url));
const CONFORMANCE_SERVER = fileURLToPath(new URL('./fixtures/conformance-server.mjs', import.meta.url));
/** How long a test waits for a notification that must not come (a duplicate, or one for another filter). */
const QUIET_MS = 400;

const everyReplica = {
  command: process.execPath,
  args: [SDK1_SERVER],
  isolation: 'shared',
  placement: 'every-replica',
};
// `asking` for the MRTR test alone: a shared backend asks a client for input only while one user uses it.
// `regions`: a per-user server with a tool whose argument clients mirror into an Mcp-Param-Region header;
// `mine`: a per-user copy of the SDK 1.x fixture.
const servers = {
  wide: everyReplica,
  asking: everyReplica,
  regions: { command: process.execPath, args: [CONFORMANCE_SERVER], isolation: 'per-user' },
  mine: { command: process.execPath, args: [SDK1_SERVER], isolation: 'per-user' },
};

function startReplica(id: string, redis: string, keysFile: string, dir: string): Promise<MeteredReplica> {
  return startMeteredReplica(id, { redis, keyPrefix: 'test2026:', keysFile, servers }, {}, dir);
}

/** An SDK v2 client pinned to 2026-07-28; `fetch` may send some of its requests elsewhere. */
async function modernClient(
  url: string,
  key: string,
  options: { capabilities?: Record<string, unknown>; fetch?: typeof fetch } = {},
): Promise<ClientV2> {
  const client = new ClientV2(
    { name: 'cluster-2026-test', version: '2.4.0' },
    { versionNegotiation: { mode: { pin: MODERN } }, capabilities: options.capabilities ?? {} },
  );
  await client.connect(
    new HttpV2(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
      ...(options.fetch ? { fetch: options.fetch } : {}),
    }),
  );
  return client;
}

/** A client listening on `url`, counting the notifications of `method` it hears. */
async function listener(url: string, key: string, method: string, filter: Record<string, unknown>) {
  const client = await modernClient(url, key);
  const heard: unknown[] = [];
  let first: () => void = () => {};
  const arrived = new Promise<void>((resolve) => {
    first = resolve;
  });
  client.setNotificationHandler(method as 'notifications/tools/list_changed', (notification) => {
    heard.push(notification);
    first();
  });
  const subscription = await client.listen(filter);
  return {
    heard,
    arrived,
    async close() {
      await subscription.close();
      await client.close();
    },
  };
}

function envelope(): Record<string, unknown> {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
  };
}

/** A raw 2026 `tools/call` of the fixture's `ask` (elicitation), with `extra` params (a retry's). */
function ask(url: string, key: string, extra: Record<string, unknown> = {}) {
  return rawPost(
    url,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 5,
      method: 'tools/call',
      params: { name: 'ask', arguments: { question: 'Name?' }, ...extra, _meta: envelope() },
    }),
    {
      authorization: `Bearer ${key}`,
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': 'ask',
    },
  );
}

async function forwards(replica: MeteredReplica | undefined): Promise<{ sent: number; received: number }> {
  const health = (await (await fetch(`${replica?.url}/healthz`)).json()) as {
    cluster: { forwardsSent: number; forwardsReceived: number };
  };
  return { sent: health.cluster.forwardsSent, received: health.cluster.forwardsReceived };
}

async function notificationCounts(replica: MeteredReplica | undefined) {
  const health = (await (await fetch(`${replica?.url}/healthz`)).json()) as {
    cluster: { notifications: { published: number; received: number; dropped: number } };
  };
  return health.cluster.notifications;
}

/** The replicas `replica` last read as alive in the registry. */
async function alive(replica: MeteredReplica | undefined): Promise<string[]> {
  const health = (await (await fetch(`${replica?.url}/healthz`)).json()) as { cluster: { alive: string[] } };
  return health.cluster.alive;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('cluster: 2026-07-28 clients on three replicas', () => {
  let redis: TestRedis;
  let dir: string;
  let keysFile: string;
  let replicas: MeteredReplica[];
  let keys: Record<string, string>;
  let cluster: TestCluster<MeteredReplica>;

  before(async () => {
    cluster = await startCluster('cluster-2026', startReplica);
    ({ redis, dir, keysFile, replicas, keys } = cluster);
    // Each replica reads the registry every 2 s: forwards to a replica wait until it is known.
    for (const replica of replicas)
      for (let tries = 0; tries < 40 && (await alive(replica)).length < 3; tries++) await sleep(100);
  });
  after(() => cluster.close());

  const at = (index: number, server = 'wide') => `${replicas[index]?.url}/mcp/${server}`;

  it(
    'a list change one replica’s copy sends reaches the listeners of every replica, once each',
    TIMEOUT,
    async () => {
      const method = 'notifications/tools/list_changed';
      const listeners = await Promise.all(
        [0, 1, 2].map((index) =>
          listener(at(index), keys.alice as string, method, { toolsListChanged: true }),
        ),
      );
      // A 2025 client's session on r3 hears it on its GET stream too.
      const { client: sessionful } = await connectClient(at(2), keys.carol as string);
      let sessionHeard = 0;
      sessionful.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        sessionHeard++;
      });
      // bob's call on r2 changes r2's copy only; r1 and r3 hear it through Redis, r2 from its copy.
      const caller = await modernClient(at(1), keys.bob as string);
      assert.equal(
        textOf(await caller.callTool({ name: 'grow', arguments: { name: 'sprout' } })),
        'added sprout',
      );
      await Promise.all(listeners.map((listen) => listen.arrived));
      await sleep(QUIET_MS);
      assert.deepEqual(
        listeners.map((listen) => listen.heard.length),
        [1, 1, 1],
      );
      assert.equal(sessionHeard, 1);
      // r2 published it once, r1 and r3 heard it once each (/healthz counts).
      const counts = await Promise.all(replicas.map(notificationCounts));
      assert.deepEqual(
        counts.map((count) => [count.published, count.received]),
        [
          [0, 1],
          [1, 0],
          [0, 1],
        ],
      );
      await sessionful.close();
      // Tagged for each stream by its own replica, like a notification of its own copy.
      for (const listen of listeners) {
        const [heard] = listen.heard as Array<{ params?: { _meta?: Record<string, unknown> } }>;
        assert.notEqual(heard?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], undefined);
      }
      await caller.close();
      await Promise.all(listeners.map((listen) => listen.close()));
    },
  );

  /** The URIs the copy of `wide` on replica `index` is subscribed to, as it reports them (sorted, comma-separated). */
  async function subscribedOn(index: number): Promise<string> {
    const client = await modernClient(at(index), keys.bob as string);
    try {
      return textOf(await client.callTool({ name: 'subscribed', arguments: {} }));
    } finally {
      await client.close();
    }
  }

  /** Waits until the copy on replica `index` is subscribed to exactly `uris` (5 s at most). */
  async function untilSubscribed(index: number, uris: string): Promise<void> {
    let seen = await subscribedOn(index);
    for (let tries = 0; tries < 50 && seen !== uris; tries++) {
      await sleep(100);
      seen = await subscribedOn(index);
    }
    assert.equal(seen, uris);
  }

  it(
    'a resource update made through another replica’s copy reaches the listeners and sessions subscribed to that URI, once, and no other',
    TIMEOUT,
    async () => {
      const method = 'notifications/resources/updated';
      const farA = await listener(at(0), keys.alice as string, method, {
        resourceSubscriptions: ['note://a'],
      });
      const farB = await listener(at(0), keys.carol as string, method, {
        resourceSubscriptions: ['note://b'],
      });
      // A 2025 client's session on r3 subscribes the way it always has.
      const { client: sessionful, transport } = await connectClient(at(2), keys.carol as string);
      let sessionHeard = 0;
      sessionful.setNotificationHandler(ResourceUpdatedNotificationSchema, () => {
        sessionHeard++;
      });
      await sessionful.subscribeResource({ uri: 'note://a' });
      // No one on r2 subscribed: its copy holds r1's and r3's subscriptions, learned through Redis.
      await untilSubscribed(1, 'note://a,note://b');
      const health = (await (await fetch(`${replicas[1]?.url}/healthz`)).json()) as {
        cluster: { subscriptions: { announced: number; held: number } };
      };
      assert.deepEqual(health.cluster.subscriptions, { announced: 0, held: 2 });
      assert.deepEqual(
        await Promise.all(
          ['announced', 'held'].map((kind) =>
            metricOf(replicas[1], `mcp_relay_cluster_subscriptions{kind="${kind}"}`),
          ),
        ),
        [0, 2],
      );
      const caller = await modernClient(at(1), keys.bob as string);
      assert.equal(
        textOf(await caller.callTool({ name: 'touch', arguments: { uri: 'note://a' } })),
        'updated note://a',
      );
      await farA.arrived;
      await sleep(QUIET_MS);
      assert.deepEqual([farA.heard.length, farB.heard.length, sessionHeard], [1, 0, 1]);
      assert.equal((farA.heard[0] as { params: { uri: string } }).params.uri, 'note://a');
      // Each listen or session that ends lets go of its URI on the other replicas' copies too.
      await transport.terminateSession();
      await sessionful.close();
      await farA.close();
      await untilSubscribed(1, 'note://b');
      await untilSubscribed(2, 'note://b');
      await farB.close();
      await untilSubscribed(1, '');
      assert.equal(
        textOf(await caller.callTool({ name: 'touch', arguments: { uri: 'note://a' } })),
        'nobody subscribed to note://a',
      );
      await caller.close();
    },
  );

  it(
    'an MRTR call parked on r1 is completed by its retry sent to r2: forwarded once, the tool run once',
    TIMEOUT,
    async () => {
      const before = await Promise.all([forwards(replicas[0]), forwards(replicas[1])]);
      // The SDK v2 client starts the call on r1; its retry (the one carrying requestState) goes to r2.
      const retryElsewhere: typeof fetch = (input, init) => {
        const retry = typeof init?.body === 'string' && init.body.includes('"requestState"');
        return fetch(retry ? at(1, 'asking') : input, init);
      };
      const client = await modernClient(at(0, 'asking'), keys.alice as string, {
        capabilities: { elicitation: { form: {} } },
        fetch: retryElsewhere,
      });
      client.setRequestHandler('elicitation/create', async () => ({
        action: 'accept',
        content: { name: 'Ada' },
      }));
      assert.equal(
        textOf(await client.callTool({ name: 'ask', arguments: { question: 'Name?' } })),
        'hello Ada',
      );
      const [r1, r2] = await Promise.all([forwards(replicas[0]), forwards(replicas[1])]);
      assert.equal(r2.sent - (before[1]?.sent ?? 0), 1);
      assert.equal(r1.received - (before[0]?.received ?? 0), 1);
      // Each replica's copy counts the `ask` calls it ran: one, on r1, where the call was parked.
      const asks = await Promise.all(
        [0, 1, 2].map(async (index) => {
          const counter = await modernClient(at(index, 'asking'), keys.alice as string);
          const count = textOf(await counter.callTool({ name: 'asks', arguments: {} }));
          await counter.close();
          return count;
        }),
      );
      assert.deepEqual(asks, ['1', '0', '0']);
      await client.close();
    },
  );

  /** An `ask` call of alice's parked on `url`: its requestState, and the inputs its retry carries. */
  async function parkedOn(url: string) {
    const first = await ask(url, keys.alice as string);
    const { requestState, inputRequests } = (first.json as { result: Record<string, unknown> }).result;
    const [key] = Object.keys(inputRequests as object);
    assert.ok(key);
    return {
      requestState: String(requestState),
      inputResponses: { [key]: { action: 'accept', content: { name: 'Eve' } } },
    };
  }

  /** Asserts that r1 answers a retry with `requestState` exactly as it answers one it never issued. */
  async function answeredAsUnknown(requestState: string, inputResponses: Record<string, unknown>) {
    const alice = keys.alice as string;
    const retry = await ask(at(0), alice, { requestState, inputResponses });
    const unknown = await ask(at(0), alice, { requestState: 'never-issued', inputResponses });
    assert.equal(unknown.status, 200);
    assert.equal((unknown.json as { error: { code: number } }).error.code, -32602);
    assert.equal(retry.status, unknown.status);
    assert.deepEqual(retry.json, unknown.json);
  }

  it(
    'a requestState naming a replica that left the cluster, or none, gets the answer any unknown one gets',
    TIMEOUT,
    async () => {
      const gone = await startReplica('r4', redis.url, keysFile, dir);
      const { requestState, inputResponses } = await parkedOn(`${gone.url}/mcp/wide`);
      assert.match(requestState, /^r4\./);
      await gone.gateway.close();
      const before = await forwards(replicas[0]);
      await answeredAsUnknown(requestState, inputResponses);
      await answeredAsUnknown('r9.no-such-replica', inputResponses);
      // Neither was tried over the hop: Redis shows no heartbeat of either.
      assert.equal((await forwards(replicas[0])).sent, before.sent);
    },
  );

  /** Replica `id` as a `serve` process, so it can die without leaving the cluster. */
  async function serveReplica(id: string) {
    const config = join(dir, `relay-${id}.json`);
    const settings = { redis: redis.url, keyPrefix: 'test2026:', keysFile, servers };
    writeFileSync(config, JSON.stringify(await replicaConfig(id, settings, { logLevel: 'warn' })));
    return startServe(config);
  }

  it(
    'a requestState of a replica SIGKILLed a moment ago (heartbeat not lapsed) gets the unknown answer at the hop',
    TIMEOUT,
    async () => {
      const killed = await serveReplica('r5');
      // r1 must know r5's peer address (its registry read, every 2 s) for the hop to be tried at all.
      for (let tries = 0; tries < 40 && !(await alive(replicas[0])).includes('r5'); tries++) await sleep(100);
      assert.ok((await alive(replicas[0])).includes('r5'));
      const { requestState, inputResponses } = await parkedOn(`${killed.url}/mcp/wide`);
      assert.match(requestState, /^r5\./);
      killed.child.kill('SIGKILL');
      await once(killed.child, 'close');
      const before = await forwards(replicas[0]);
      await answeredAsUnknown(requestState, inputResponses);
      // Tried over the hop (the heartbeat was still there), refused there, and answered as unknown.
      assert.equal((await forwards(replicas[0])).sent - before.sent, 1);
    },
  );

  it(
    'the resource subscriptions of a replica SIGKILLed expire from Redis, and the other copies let go of them',
    TIMEOUT,
    async () => {
      const killed = await serveReplica('r6');
      const link = new RedisLink(redis.url, 'test2026:', silentLogger);
      await link.connect();
      try {
        const far = await listener(
          `${killed.url}/mcp/wide`,
          keys.alice as string,
          'notifications/resources/updated',
          {
            resourceSubscriptions: ['note://k'],
          },
        );
        await untilSubscribed(1, 'note://k');
        // Only the URI crosses, under r6's entry for the server.
        assert.deepEqual(await link.run((client) => client.hGetAll(link.key('subs', 'r6'))), {
          wide: JSON.stringify(['note://k']),
        });
        killed.child.kill('SIGKILL');
        await once(killed.child, 'close');
        await far.close().catch(() => {});
        // The entry lives one heartbeat TTL (3 s) past the last renewal; then r2's copy lets go.
        await untilSubscribed(1, '');
        assert.equal(await link.run((client) => client.exists(link.key('subs', 'r6'))), 0);
      } finally {
        await link.close();
      }
    },
  );

  it(
    'a listen of a per-user server on a replica not its owner is a stream from the owner, hearing its copy',
    TIMEOUT,
    async () => {
      const method = 'notifications/tools/list_changed';
      // carol's backend is placed on r3 by her first call; her listen through r1 is forwarded there.
      const caller = await modernClient(at(2, 'mine'), keys.carol as string);
      const pid = textOf(await caller.callTool({ name: 'whoami-pid', arguments: {} }));
      const before = await forwards(replicas[0]);
      const far = await listener(at(0, 'mine'), keys.carol as string, method, { toolsListChanged: true });
      assert.equal((await forwards(replicas[0])).sent - before.sent, 2); // server/discover, then the listen
      await caller.callTool({ name: 'grow', arguments: { name: 'carols' } });
      await far.arrived;
      await sleep(QUIET_MS);
      assert.equal(far.heard.length, 1);
      // One backend for carol in the cluster: the same process through any replica.
      const through = await modernClient(at(1, 'mine'), keys.carol as string);
      assert.equal(textOf(await through.callTool({ name: 'whoami-pid', arguments: {} })), pid);
      await Promise.all([caller.close(), through.close(), far.close()]);
    },
  );

  it(
    'a call of a per-user server sent to a replica not its owner is forwarded with its Mcp-Param-* headers',
    TIMEOUT,
    async () => {
      const name = 'test_custom_headers';
      const call = async (index: number) => {
        const reply = await rawPost(
          at(index, 'regions'),
          JSON.stringify({
            jsonrpc: '2.0',
            id: 6,
            method: 'tools/call',
            params: { name, arguments: { region: 'eu' }, _meta: envelope() },
          }),
          {
            authorization: `Bearer ${keys.bob}`,
            'mcp-protocol-version': MODERN,
            'mcp-method': 'tools/call',
            'mcp-name': name,
            'mcp-param-region': 'eu',
          },
        );
        const answer = reply.json as { result?: unknown; error?: { code: number } };
        return [reply.status, answer.error?.code ?? textOf(answer.result)];
      };
      // bob's backend is placed on r1; the same call through r2 and r3 is answered there.
      assert.deepEqual(await call(0), [200, 'region eu']);
      const before = await forwards(replicas[0]);
      assert.deepEqual(await call(1), [200, 'region eu']);
      assert.deepEqual(await call(2), [200, 'region eu']);
      assert.equal((await forwards(replicas[0])).received - before.received, 2);
    },
  );

  it(
    'with Redis down, listeners hear their own replica’s copy; after it, the others’ again',
    TIMEOUT,
    async () => {
      const method = 'notifications/tools/list_changed';
      const near = await listener(at(0), keys.alice as string, method, { toolsListChanged: true });
      const caller = await modernClient(at(0), keys.bob as string);
      const other = await modernClient(at(2), keys.bob as string);
      await redis.stop();
      try {
        await caller.callTool({ name: 'grow', arguments: { name: 'offline' } });
        await near.arrived;
        assert.equal(near.heard.length, 1);
      } finally {
        await redis.start();
      }
      // Once the replicas are connected again, a change on r3 reaches r1's listener again.
      const deadline = Date.now() + 15_000;
      let round = 0;
      while (near.heard.length < 2 && Date.now() < deadline) {
        round++;
        await other.callTool({ name: 'grow', arguments: { name: `back${round}` } });
        await sleep(250);
      }
      assert.equal(near.heard.length, 2);
      await Promise.all([caller.close(), other.close(), near.close()]);
    },
  );
});

describe('the change-notification fan-out on a real Redis', () => {
  let redis: TestRedis;
  const links: RedisLink[] = [];
  const fanouts: NotifyFanout[] = [];
  const closing: SharedSubscriptions[] = [];
  const config = buildConfig({
    servers: { wide: everyReplica, solo: { ...everyReplica, placement: 'single' } },
  });

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(fanouts.map((fanout) => fanout.close()));
    await Promise.all(closing.map((sharing) => sharing.close()));
    await Promise.all(links.map((link) => link.close()));
    await redis.close();
  });

  /** A replica's fan-out, what it hands to its sessions, and what it logs. */
  async function fanout(replica: string) {
    const lines: Array<{ level: number; msg: string }> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const link = new RedisLink(redis.url, 'fanout:', log);
    await link.connect();
    const delivered: Array<[string, JsonRpcNotification]> = [];
    const made = new NotifyFanout(
      link,
      replica,
      () => config,
      log,
      (server, notification) => delivered.push([server, notification]),
    );
    made.start();
    links.push(link);
    fanouts.push(made);
    return { fanout: made, link, delivered, lines };
  }

  async function until(done: () => boolean): Promise<void> {
    for (let tries = 0; tries < 50 && !done(); tries++) await sleep(50);
    assert.ok(done());
  }

  it(
    'hands other replicas’ list changes and resource updates (method and URI only) to the sessions here, and nothing else',
    TIMEOUT,
    async () => {
      const a = await fanout('ra');
      const b = await fanout('rb');
      // Both subscribed: a probe crosses.
      for (let tries = 0; tries < 50 && b.delivered.length === 0; tries++) {
        a.fanout.publish('wide', { jsonrpc: '2.0', method: 'notifications/prompts/list_changed' });
        await sleep(50);
      }
      await until(() => b.delivered.length > 0);
      await sleep(QUIET_MS);
      b.delivered.length = 0;
      a.fanout.publish('wide', {
        jsonrpc: '2.0',
        method: 'notifications/tools/list_changed',
        params: { _meta: { note: 'stays here' } },
      });
      // A log line or progress of a shared backend may be one user's: it never crosses.
      a.fanout.publish('wide', {
        jsonrpc: '2.0',
        method: 'notifications/message',
        params: { data: 'alice' },
      });
      a.fanout.publish('wide', { jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } });
      // A single-copy server has no other copies to hear from.
      a.fanout.publish('solo', { jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
      a.fanout.publish('wide', {
        jsonrpc: '2.0',
        method: 'notifications/resources/updated',
        params: { uri: 'note://a', title: 'stays here' },
      });
      a.fanout.publish('wide', {
        jsonrpc: '2.0',
        method: 'notifications/resources/updated',
        params: { uri: `note://${'x'.repeat(3_000)}` },
      });
      // Whatever else someone publishes on the channel is not delivered either.
      await a.link.run((client) =>
        client.publish(
          a.link.key('notify', 'wide'),
          JSON.stringify({ from: 'rz', method: 'notifications/message', uri: 'x' }),
        ),
      );
      await until(() => b.delivered.length >= 2);
      await sleep(QUIET_MS);
      assert.deepEqual(b.delivered, [
        ['wide', { jsonrpc: '2.0', method: 'notifications/tools/list_changed' }],
        ['wide', { jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'note://a' } }],
      ]);
      // Its own notifications come back to no replica.
      assert.deepEqual(a.delivered, []);
    },
  );

  it(
    'keeps at most 64 PUBLISHes waiting on a frozen Redis, drops the rest, logs the outage once and its end',
    TIMEOUT,
    async () => {
      const a = await fanout('rc');
      const changed = { jsonrpc: '2.0' as const, method: 'notifications/tools/list_changed' };
      redis.pause();
      try {
        for (let sent = 0; sent < 100; sent++) a.fanout.publish('wide', changed);
        assert.equal(a.fanout.dropped, 36);
        // Each waiting PUBLISH fails after the link's 1 s bound; the outage is logged once.
        await until(() => a.fanout.dropped === 100);
        assert.equal(a.fanout.published, 0);
        const warned = a.lines.filter((line) => /only this replica’s listeners/.test(line.msg));
        assert.equal(warned.length, 1);
      } finally {
        redis.resume();
      }
      for (let tries = 0; tries < 50 && a.fanout.published === 0; tries++) {
        a.fanout.publish('wide', changed);
        await sleep(100);
      }
      assert.ok(a.fanout.published > 0);
      assert.ok(a.lines.some((line) => /reach the other replicas again/.test(line.msg)));
    },
  );

  it(
    'shares resource subscriptions of every-replica servers only: at most 1,000 URIs of bounded length, waiting out a frozen Redis',
    TIMEOUT,
    async () => {
      const lines: Array<{ level: number; msg: string }> = [];
      const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      const made = async (replica: string) => {
        const link = new RedisLink(redis.url, 'shared:', log);
        await link.connect();
        const held = new Map<string, ReadonlySet<string>>();
        const sharing = new SharedSubscriptions(
          link,
          replica,
          () => config,
          log,
          (server, uris) => held.set(server, uris),
        );
        sharing.start();
        links.push(link);
        closing.push(sharing);
        return { sharing, link, held };
      };
      const a = await made('sa');
      const b = await made('sb');
      const many = Array.from({ length: 1_001 }, (_, index) => `note://${index}`);
      a.sharing.announce('wide', [`note://${'x'.repeat(3_000)}`, ...many]);
      a.sharing.announce('solo', ['note://solo']);
      await until(() => b.held.get('wide')?.size === 1_000);
      assert.ok(b.held.get('wide')?.has('note://999'));
      assert.ok(!b.held.get('wide')?.has('note://1000'));
      assert.deepEqual(Object.keys(await a.link.run((client) => client.hGetAll(a.link.key('subs', 'sa')))), [
        'wide',
      ]);
      assert.equal(b.held.has('solo'), false);
      assert.deepEqual(a.held, new Map(), 'its own URIs are not held for itself');
      // A third replica's one URI is held too: the replicas take turns under the bound.
      const c = await made('sc');
      c.sharing.announce('wide', ['note://from-c']);
      await until(() => b.held.get('wide')?.has('note://from-c') === true);
      assert.equal(b.held.get('wide')?.size, 1_000);
      assert.ok(b.held.get('wide')?.has('note://0'));
      c.sharing.announce('wide', []);
      a.sharing.announce('wide', []);
      await until(() => b.held.get('wide')?.size === 0);
      redis.pause();
      try {
        a.sharing.announce('wide', ['note://late']);
        await until(() => lines.some((line) => /stay on this replica’s copy/.test(line.msg)));
      } finally {
        redis.resume();
      }
      await until(() => b.held.get('wide')?.has('note://late') === true);
      assert.equal(lines.filter((line) => /stay on this replica’s copy/.test(line.msg)).length, 1);
      assert.ok(lines.some((line) => /reach the other replicas again/.test(line.msg)));
    },
  );
});
