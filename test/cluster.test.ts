// Three gateway replicas on one real redis-server, on loopback: session ids name their replica; a
// session's requests sent to another replica are forwarded to the owner once (JSON and SSE replies);
// per-user and single-copy shared backends run on exactly one replica whichever replica a user
// reaches; every-replica servers run everywhere; a second process with a live replica id refuses to
// start; unsigned requests and upgrades on the peer listener are refused; a WebSocket session and a
// legacy HTTP+SSE session of a per-user server opened on a non-owner reach the owner's backend; a caller
// of one replica's SSH socket (attached mode) is served at the owner as that user; with
// Redis down, established sessions go on and new single-owner placements get 503 until it is back.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from 'undici';
import { buildConfig } from '../src/config/load.ts';
import { createGateway } from '../src/gateway/create-gateway.ts';
import { silentLogger } from '../src/log.ts';
import { runCliInProcess } from './helpers/cli.ts';
import {
  forwardsOf,
  type MeteredReplica,
  metricOf,
  replicaConfig,
  startCluster,
  startMeteredReplica,
  type TestCluster,
} from './helpers/cluster.ts';
import { connectLegacyClient } from './helpers/fronts.ts';
import { answerOf, fixtureServer, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { linkTo, type TestRedis } from './helpers/redis-server.ts';
import { connectOver, refusedUpgrade, wsUrlOf } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 60_000 };

type Replica = MeteredReplica;

const servers = {
  mine: fixtureServer('well', { isolation: 'per-user' }),
  scene: fixtureServer('well', { isolation: 'shared' }),
  search: fixtureServer('well', { isolation: 'shared', placement: 'every-replica' }),
  fresh: fixtureServer('well', { isolation: 'per-session' }),
};

const startReplica = (id: string, redis: string, keysFile: string, dir: string) =>
  startMeteredReplica(
    id,
    { redis, keyPrefix: 'test:', keysFile, servers },
    // Each replica also listens for ssh-entry (attached mode) on a socket of its own.
    {
      audit: { file: join(dir, `audit-${id}.jsonl`) },
      ssh: { mode: 'attached', socket: join(dir, `${id}.sock`) },
    },
    dir,
  );

/** initialize + notifications/initialized on `url`; the session id. */
async function open(url: string, key: string): Promise<string> {
  const init = await rawPost(url, INITIALIZE, { authorization: `Bearer ${key}` });
  assert.equal(init.status, 200, init.text);
  const session = init.headers.get('mcp-session-id');
  assert.ok(session);
  await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
    authorization: `Bearer ${key}`,
    'mcp-session-id': session,
  });
  return session;
}

let nextId = 100;
async function call(
  url: string,
  key: string,
  session: string,
  name: string,
  args: Record<string, unknown> = {},
) {
  const reply = await rawPost(
    url,
    JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: args } }),
    { authorization: `Bearer ${key}`, 'mcp-session-id': session },
  );
  const answer = answerOf(reply) as { result?: unknown } | undefined;
  return { status: reply.status, text: answer?.result === undefined ? '' : textOf(answer.result) };
}

describe('cluster: three replicas on Redis', () => {
  let redis: TestRedis;
  let dir: string;
  let replicas: Replica[];
  let keys: Record<string, string>;
  let cluster: TestCluster<Replica>;

  before(async () => {
    cluster = await startCluster('cluster', startReplica, ['alice', 'bob', 'carol', 'dave', 'erin']);
    ({ redis, dir, replicas, keys } = cluster);
  });
  after(() => cluster.close());

  const at = (index: number, server: string) => `${replicas[index]?.url}/mcp/${server}`;
  /** A replica's forwards sent or received, as its metrics show them. */
  const forwards = (index: number, direction: 'sent' | 'received') => forwardsOf(replicas[index], direction);
  /** A user's per-user backend of `mine`, placed by an HTTP session opened at replica `index`: its owner's index and pid. */
  const placeMine = async (index: number, key: string) => {
    const session = await open(at(index, 'mine'), key);
    const owner = replicas.findIndex((replica) => session.startsWith(`${replica.id}.`));
    return { owner, pid: (await call(at(owner, 'mine'), key, session, 'pid')).text };
  };
  /** The backend pid a WebSocket session of `server` opened at replica `index` reaches. */
  const pidOverWs = async (index: number, server: string, key: string) => {
    const ws = await connectOver('ws', replicas[index]?.url as string, server, key);
    try {
      return textOf(await ws.client.callTool({ name: 'pid' }));
    } finally {
      await ws.close();
    }
  };
  /** A fetch for the SDK's legacy SSE client that sends its POSTs to replica `index` (each URL into `posted`). */
  const postingTo =
    (index: number, posted: string[] = []) =>
    (input: string | URL, init?: RequestInit) => {
      const url = new URL(String(input));
      if (init?.method === 'POST') {
        url.host = new URL(replicas[index]?.url as string).host;
        posted.push(url.toString());
      }
      return fetch(url, init);
    };

  it(
    'names the replica in session ids and forwards a session’s requests sent elsewhere',
    TIMEOUT,
    async () => {
      const alice = keys.alice as string;
      const session = await open(at(0, 'fresh'), alice);
      assert.match(session, /^r1\.[A-Za-z0-9_-]{22}$/);
      const pid = (await call(at(0, 'fresh'), alice, session, 'pid')).text;
      // The same session through r2 and r3: forwarded to r1, the same backend answers.
      assert.equal((await call(at(1, 'fresh'), alice, session, 'pid')).text, pid);
      assert.equal((await call(at(2, 'fresh'), alice, session, 'echo', { text: 'via r3' })).text, 'via r3');
      // An SSE reply (progress before the result) comes through the hop too.
      const progress = await rawPost(
        at(1, 'fresh'),
        JSON.stringify({
          jsonrpc: '2.0',
          id: 9,
          method: 'tools/call',
          params: { name: 'progress', arguments: { steps: 3 }, _meta: { progressToken: 'p' } },
        }),
        { authorization: `Bearer ${alice}`, 'mcp-session-id': session },
      );
      assert.match(progress.headers.get('content-type') ?? '', /text\/event-stream/);
      assert.equal((progress.text.match(/notifications\/progress/g) ?? []).length, 3);
      // Another user's credential with alice's session id: as unknown on every replica.
      assert.ok((await forwards(1, 'sent')) >= 1);
      // Each replica reads the registry every 2 s: r3, started last, shows up in r2's view within that.
      let alive = Number.NaN;
      for (let tries = 0; tries < 30 && alive !== 3; tries++) {
        alive = await metricOf(replicas[1], 'mcp_relay_cluster_replicas_alive');
        if (alive !== 3) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(alive, 3);
      const stolen = await call(at(1, 'fresh'), keys.bob as string, session, 'pid');
      assert.equal(stolen.status, 404);
      assert.ok((replicas[1]?.gateway as unknown as object) !== undefined);
    },
  );

  it('resumes a session’s GET stream with Last-Event-ID through other replicas', TIMEOUT, async () => {
    const alice = keys.alice as string;
    const session = await open(at(0, 'fresh'), alice);
    const headers = {
      authorization: `Bearer ${alice}`,
      accept: 'text/event-stream',
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
    };
    /** Reads a GET stream until `wanted` appears in it, then hangs up: the text read and the last event id. */
    const readUntil = async (url: string, wanted: RegExp, extra: Record<string, string> = {}) => {
      const abort = new AbortController();
      const response = await fetch(url, { headers: { ...headers, ...extra }, signal: abort.signal });
      assert.equal(response.status, 200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      const deadline = Date.now() + 10_000;
      while (!wanted.test(text) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      abort.abort();
      return { text, lastId: [...text.matchAll(/^id: (.+)$/gm)].at(-1)?.[1] };
    };
    // Through r2: the stream opens (its priming event has an id), then the client goes away.
    const first = await readUntil(at(1, 'fresh'), /^id: /m);
    assert.ok(first.lastId, first.text);
    // While nobody listens, the backend says something tied to no request: kept for resumption at r1.
    await call(at(0, 'fresh'), alice, session, 'later', { ms: 50, text: 'said while away' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Through r3, resuming after the last event seen: the missed message is replayed by the owner.
    const resumed = await readUntil(at(2, 'fresh'), /said while away/, {
      'last-event-id': first.lastId as string,
    });
    assert.match(resumed.text, /said while away/);
  });

  it('runs a per-user backend on one replica, whichever replica the user reaches', TIMEOUT, async () => {
    const bob = keys.bob as string;
    const sessions = await Promise.all(replicas.map((_replica, index) => open(at(index, 'mine'), bob)));
    const owner = sessions[0]?.slice(0, 2);
    for (const session of sessions)
      assert.equal(session.slice(0, 2), owner, 'every session placed on the owner');
    const pids = await Promise.all(
      sessions.map((session, index) => call(at(index, 'mine'), bob, session, 'pid')),
    );
    assert.equal(new Set(pids.map((pid) => pid.text)).size, 1);
  });

  it(
    'keeps one copy of a single shared server and one per replica of an every-replica server (HTTP and WebSocket)',
    TIMEOUT,
    async () => {
      const alice = keys.alice as string;
      const scenePids = new Set<string>();
      const searchPids = new Set<string>();
      for (let index = 0; index < 3; index++) {
        const scene = await open(at(index, 'scene'), alice);
        scenePids.add((await call(at(index, 'scene'), alice, scene, 'pid')).text);
        const search = await open(at(index, 'search'), alice);
        assert.equal(search.slice(0, 2), replicas[index]?.id);
        const searchPid = (await call(at(index, 'search'), alice, search, 'pid')).text;
        searchPids.add(searchPid);
        // Over WebSocket too: the scene's one copy wherever the socket lands, the search copy of that replica.
        scenePids.add(await pidOverWs(index, 'scene', alice));
        assert.equal(await pidOverWs(index, 'search', alice), searchPid);
      }
      assert.equal(scenePids.size, 1);
      assert.equal(searchPids.size, 3);
    },
  );

  it(
    'holds limits.sessionsPerUser across replicas: busy sessions on three replicas leave no room',
    TIMEOUT,
    async () => {
      const carol = keys.carol as string;
      // Ten sessions (the default limit), spread over the three replicas, each with a call running.
      const sessions: Array<{ index: number; session: string }> = [];
      for (let index = 0; index < 10; index++)
        sessions.push({ index: index % 3, session: await open(at(index % 3, 'fresh'), carol) });
      const running = sessions.map(({ index, session }) =>
        call(at(index, 'fresh'), carol, session, 'sleep', { ms: 3_000 }),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      // An eleventh, on any replica: no idle session anywhere to make room, so the cluster-wide cap refuses it.
      const refused = await rawPost(at(1, 'fresh'), INITIALIZE, { authorization: `Bearer ${carol}` });
      assert.equal(refused.status, 429, refused.text);
      assert.match(refused.text, /at most 10 per user/);
      for (const { text } of await Promise.all(running)) assert.equal(text, 'slept');
    },
  );

  it(
    'tunnels a WebSocket session of a per-user server opened on a non-owner to the owner’s backend',
    TIMEOUT,
    async () => {
      const dave = keys.dave as string;
      const { owner, pid } = await placeMine(0, dave);
      const landing = (owner + 1) % 3;
      const [sentBefore, receivedBefore] = [
        await forwards(landing, 'sent'),
        await forwards(owner, 'received'),
      ];
      const ws = await connectOver('ws', replicas[landing]?.url as string, 'mine', dave);
      try {
        assert.equal(textOf(await ws.client.callTool({ name: 'pid' })), pid);
        const echoed = await ws.client.callTool({ name: 'echo', arguments: { text: 'over the tunnel' } });
        assert.equal(textOf(echoed), 'over the tunnel');
        // Progress before the result crosses the tunnel too.
        const steps: number[] = [];
        await ws.client.callTool({ name: 'progress', arguments: { steps: 3 } }, undefined, {
          onprogress: ({ progress }) => steps.push(progress),
        });
        assert.equal(steps.length, 3);
      } finally {
        await ws.close();
      }
      // A per-session server's socket is served where it lands: no forward.
      assert.match(await pidOverWs(landing, 'fresh', dave), /^\d+$/);
      // One forward for the whole socket, counted once on each side.
      assert.equal(await forwards(landing, 'sent'), sentBefore + 1);
      assert.equal(await forwards(owner, 'received'), receivedBefore + 1);
    },
  );

  it(
    'serves a legacy HTTP+SSE session whose stream and POSTs land on replicas other than its owner',
    TIMEOUT,
    async () => {
      const erin = keys.erin as string;
      const { owner, pid } = await placeMine(2, erin);
      const [streamAt, postAt] = [(owner + 1) % 3, (owner + 2) % 3];
      const posted: string[] = [];
      // The SDK's client, its GET to one non-owner and every POST sent to the other.
      const client = await connectLegacyClient(at(streamAt, 'mine/sse'), erin, postingTo(postAt, posted));
      try {
        assert.equal(textOf(await client.callTool({ name: 'pid' })), pid);
        const echoed = await client.callTool({ name: 'echo', arguments: { text: 'posted elsewhere' } });
        assert.equal(textOf(echoed), 'posted elsewhere');
      } finally {
        await client.close();
      }
      // The endpoint the stream named is the owner's session: its id names the owner.
      const sessionId = new URL(posted[0] as string).searchParams.get('sessionId') ?? '';
      assert.match(sessionId, new RegExp(`^${replicas[owner]?.id}\\.[A-Za-z0-9_-]{22}$`));
      assert.ok(posted.every((url) => url.startsWith(replicas[postAt]?.url as string)));
    },
  );

  it('serves a legacy HTTP+SSE session of a per-session server through two replicas', TIMEOUT, async () => {
    const alice = keys.alice as string;
    const client = await connectLegacyClient(at(0, 'fresh/sse'), alice, postingTo(1));
    try {
      const echoed = await client.callTool({ name: 'echo', arguments: { text: 'r1 streams, r2 posts' } });
      assert.equal(textOf(echoed), 'r1 streams, r2 posts');
    } finally {
      await client.close();
    }
  });

  it(
    'never forwards to a replica whose registry entry lacks the cluster secret’s signature, as one written by someone with access to Redis',
    TIMEOUT,
    async () => {
      // A trap where the users' credentials would go, registered as a live replica r9 by hand.
      const connections: string[] = [];
      const trap = createServer((socket) => {
        connections.push('connected');
        socket.destroy();
      });
      await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
      const link = await linkTo(redis, 'test:');
      try {
        const { port } = trap.address() as AddressInfo;
        await link.client.hSet('test:replica:r9', {
          epoch: 'e9',
          peerUrl: `http://127.0.0.1:${port}`,
          address: `127.0.0.1:${port}`,
          signature: 'forged',
        });
        await link.client.set('test:alive:r9', 'e9', { PX: 60_000 });
        await link.client.sAdd('test:replicas', 'r9');
        // Each replica reads the registry every 2 s.
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        const reply = await call(at(1, 'fresh'), keys.alice as string, `r9.${'A'.repeat(22)}`, 'pid');
        assert.equal(reply.status, 404);
        assert.deepEqual(connections, [], 'nothing reached the address written into Redis');
        const config = join(dir, 'status.yaml');
        writeFileSync(
          config,
          JSON.stringify(
            await replicaConfig('r1', {
              redis: redis.url,
              keyPrefix: 'test:',
              keysFile: join(dir, 'keys.yaml'),
              servers,
            }),
          ),
        );
        const status = await runCliInProcess(['cluster', 'status', '--config', config]);
        assert.match(status.stdout, /^r9\s+unsigned/m);
        assert.match(status.stdout, /^Unsigned: r9 — not signed with this config's cluster\.secret/m);
        for (const replica of replicas)
          assert.match(status.stdout, new RegExp(`^${replica.id}\\s+alive`, 'm'));
      } finally {
        await link.client.del(['test:replica:r9', 'test:alive:r9']);
        await link.client.sRem('test:replicas', 'r9');
        await link.close();
        trap.close();
      }
    },
  );

  it(
    'serves a caller of one replica’s SSH socket at the owner as that user, on the owner’s backend for them',
    TIMEOUT,
    async () => {
      const viaSocket = (index: number) =>
        new Agent({ connect: { socketPath: join(dir, `r${index + 1}.sock`) } });
      // frank has no API key: ssh-entry names him on a replica's socket.
      const frank = { 'mcp-relay-user': 'frank', 'mcp-relay-groups': 'ops' };
      const post = async (index: number, body: string, session?: string) => {
        const agent = viaSocket(index);
        try {
          return await rawPost(
            'http://localhost/mcp/mine',
            body,
            {
              ...frank,
              ...(session === undefined ? {} : { 'mcp-session-id': session }),
            },
            agent,
          );
        } finally {
          await agent.close();
        }
      };
      const toolCall = (name: string) =>
        JSON.stringify({
          jsonrpc: '2.0',
          id: nextId++,
          method: 'tools/call',
          params: { name, arguments: {} },
        });
      // r2 places frank's backend (he reached its socket first).
      const first = await post(1, INITIALIZE);
      assert.equal(first.status, 200, first.text);
      const atOwner = first.headers.get('mcp-session-id') as string;
      assert.match(atOwner, /^r2\./);
      const pid = textOf((answerOf(await post(1, toolCall('pid'), atOwner)) as { result: unknown }).result);
      // On r1's socket he is forwarded to r2, which serves him as frank (not 401, not `local`), on his backend.
      let init = await post(0, INITIALIZE);
      // Until r1 has read r2's peer address from the registry (a 2 s beat), it answers 503.
      for (let tries = 0; init.status === 503 && tries < 20; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        init = await post(0, INITIALIZE);
      }
      assert.equal(init.status, 200, init.text);
      const session = init.headers.get('mcp-session-id') as string;
      assert.match(session, /^r2\./);
      assert.ok((await forwards(0, 'sent')) > 0);
      const who = answerOf(await post(0, toolCall('whoami'), session)) as { result: unknown };
      assert.equal(textOf(who.result), 'frank');
      const again = answerOf(await post(0, toolCall('pid'), session)) as { result: unknown };
      assert.equal(textOf(again.result), pid);
    },
  );

  it('refuses unsigned requests and upgrades on the peer listener', TIMEOUT, async () => {
    const peer = `http://127.0.0.1:${replicas[0]?.peerPort}`;
    const reply = await rawPost(`${peer}/mcp/fresh`, INITIALIZE, {
      authorization: `Bearer ${keys.alice}`,
    });
    assert.equal(reply.status, 403);
    const upgrade = await refusedUpgrade(wsUrlOf(peer, 'fresh'), { authorization: `Bearer ${keys.alice}` });
    assert.equal(upgrade.status, 403);
    assert.match(upgrade.body, /not a signed request/);
    // A forged signature is no better.
    const forged = await refusedUpgrade(wsUrlOf(peer, 'fresh'), {
      authorization: `Bearer ${keys.alice}`,
      'mcp-relay-peer': `r2 ${Date.now()} AAAA`,
    });
    assert.equal(forged.status, 403);
  });

  it(
    "counts an every-replica server's change notifications fanned out, in each replica's metrics",
    TIMEOUT,
    async () => {
      const notifications = (index: number, direction: string) =>
        metricOf(replicas[index], `mcp_relay_cluster_notifications_total{direction="${direction}"}`);
      const key = keys.dave as string;
      const published = await notifications(0, 'published');
      const received = await notifications(1, 'received');
      const session = await open(at(0, 'search'), key);
      assert.equal((await call(at(0, 'search'), key, session, 'announce')).status, 200);
      const deadline = Date.now() + 5_000;
      while ((await notifications(1, 'received')) === received && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await notifications(0, 'published'), published + 1);
      assert.equal(await notifications(1, 'received'), received + 1);
      assert.equal(await notifications(0, 'dropped'), 0);
    },
  );

  it("writes each replica's audit lines to its own log, naming the replica", TIMEOUT, async () => {
    const key = keys.carol as string;
    const { owner } = await placeMine(0, key);
    const session = await open(at(owner, 'mine'), key);
    assert.equal((await call(at(owner, 'mine'), key, session, 'echo', { text: 'audited' })).text, 'audited');
    const id = replicas[owner]?.id as string;
    const lines = readFileSync(join(dir, `audit-${id}.jsonl`), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { replica?: string; event: string; user: string; tool?: string });
    const called = lines.filter((line) => line.event === 'tools.call' && line.user === 'carol');
    assert.ok(called.length > 0, JSON.stringify(lines.slice(-3)));
    assert.ok(lines.every((line) => line.replica === id));
  });

  it('refuses to start a second process with a live replica id', TIMEOUT, async () => {
    const config = buildConfig(
      await replicaConfig('r2', {
        redis: redis.url,
        keyPrefix: 'test:',
        keysFile: join(dir, 'keys.yaml'),
        servers,
      }),
      dir,
    );
    const twin = createGateway({ config, log: silentLogger });
    await assert.rejects(twin.listen(), /replica id r2 is in use by a live process/);
    await twin.close();
  });

  it(
    'with Redis down: sessions go on, new single-owner placements get 503, then it resumes',
    TIMEOUT,
    async () => {
      const alice = keys.alice as string;
      const established = await open(at(0, 'fresh'), alice);
      await redis.stop();
      try {
        assert.equal(
          (await call(at(0, 'fresh'), alice, established, 'echo', { text: 'still here' })).text,
          'still here',
        );
        // A per-session server needs no owner: new sessions are fine.
        await open(at(1, 'fresh'), alice);
        // A per-user backend nobody runs yet cannot be placed without Redis.
        const refused = await rawPost(at(2, 'mine'), INITIALIZE, { authorization: `Bearer ${keys.alice}` });
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.get('retry-after'), '5');
        // Nor by a WebSocket upgrade.
        const upgrade = await refusedUpgrade(wsUrlOf(replicas[1]?.url as string, 'mine'), {
          authorization: `Bearer ${keys.alice}`,
        });
        assert.equal(upgrade.status, 503);
        assert.equal(upgrade.headers['retry-after'], '5');
      } finally {
        await redis.start();
      }
      const deadline = Date.now() + 15_000;
      let status = 0;
      while (Date.now() < deadline) {
        status = (await rawPost(at(2, 'mine'), INITIALIZE, { authorization: `Bearer ${keys.alice}` })).status;
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.equal(status, 200);
    },
  );
});
