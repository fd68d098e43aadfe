// The haproxy.cfg `mcp-relay deploy print haproxy` renders for a cluster, from the replicas alive in
// Redis: `haproxy -c` accepts it, and a real HAProxy running it in front of three in-process replicas on
// a real redis-server keeps each session on its replica — ten sessions of two users opened through
// HAProxy and sessions opened straight at each replica, each called through HAProxy, with no replica
// forwarding a request (a request that reached the wrong replica would be forwarded and counted), a
// legacy SSE session's POSTs too (routed on their ?sessionId=); a GET
// stream's keep-alive comments arrive as the gateway writes them; other paths get HAProxy's 404.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { createKey } from '../src/auth/key-admin.ts';
import { buildConfig } from '../src/config/load.ts';
import { createGateway, type Gateway } from '../src/gateway/create-gateway.ts';
import { silentLogger } from '../src/log.ts';
import { TestPki } from './helpers/certs.ts';
import { runCliInProcess, runProcess } from './helpers/cli.ts';
import { connectLegacyClient } from './helpers/fronts.ts';
import { answerOf, fixtureServer, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { freePort } from './helpers/ports.ts';
import { redisUnavailable, startRedis, type TestRedis } from './helpers/redis-server.ts';

const HAPROXY = '/usr/sbin/haproxy';
const IDS = ['r1', 'r2', 'r3'] as const;
const USERS = ['alice', 'bob'] as const;
const TIMEOUT = { timeout: 60_000 };
/** The gateway's SSE keep-alive comments, short so a test sees several flow through HAProxy. */
const KEEP_ALIVE_MS = 300;
const skip = existsSync(HAPROXY) ? redisUnavailable() : `${HAPROXY} is missing (Debian package haproxy)`;

/** A rendered haproxy.cfg listening on 127.0.0.1:`port` only (the rendering binds every address). */
function onLoopback(cfg: string, port: number): string {
  const bind = /^ {4}bind :::(\d+) v4v6 ssl /m;
  assert.match(cfg, bind);
  return cfg.replace(bind, `    bind 127.0.0.1:${port} ssl `);
}

/** Resolves once something accepts connections on 127.0.0.1:`port`; fails when `child` exits first. */
async function accepting(port: number, child: ChildProcess, output: () => string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`haproxy did not listen on ${port}:\n${output()}`);
}

describe('haproxy: the rendered haproxy.cfg in front of three replicas', { skip }, () => {
  const pki = new TestPki();
  let dir: string;
  let redis: TestRedis;
  let dispatcher: Agent;
  let haproxy: ChildProcess | undefined;
  let haproxyOutput = '';
  let cfgFile: string;
  let publicUrl: string;
  const replicas = new Map<string, Gateway>();
  const keys: Record<string, string> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-haproxy-'));
    redis = await startRedis();
    const ca = pki.createCa('haproxy-ca');
    const server = pki.serverCert(ca, 'haproxy');
    // HAProxy reads the certificate and its key from one file.
    const pem = join(dir, 'relay.pem');
    writeFileSync(pem, readFileSync(server.cert, 'utf8') + readFileSync(server.key, 'utf8'));
    dispatcher = new Agent({ connect: { ca: readFileSync(ca.cert) }, connections: 16 });
    const port = await freePort();
    publicUrl = `https://localhost:${port}`;
    const keysFile = join(dir, 'keys.yaml');
    for (const user of USERS) keys[user] = (await createKey(keysFile, { user, groups: [] })).key;
    const relay = async (id: string) => ({
      listen: { host: '127.0.0.1', port: 0 },
      publicUrl,
      auth: { apiKeys: { file: keysFile } },
      sse: { keepAlive: `${KEEP_ALIVE_MS}ms` },
      cluster: {
        replica: id,
        redis: redis.url,
        secret: 'a-cluster-secret-of-at-least-32-chars!',
        keyPrefix: 'haproxy:',
        peer: { listen: `127.0.0.1:${await freePort()}` },
      },
      servers: {
        mine: fixtureServer('well', { isolation: 'per-user' }),
        fresh: fixtureServer('well', { isolation: 'per-session' }),
      },
    });
    for (const id of IDS) {
      const gateway = createGateway({ config: buildConfig(await relay(id), dir), log: silentLogger });
      await gateway.listen();
      replicas.set(id, gateway);
    }
    // JSON is YAML: the CLI reads the cluster section (Redis, key prefix) from the file.
    const relayYaml = join(dir, 'relay.yaml');
    writeFileSync(relayYaml, JSON.stringify(await relay('r1')));
    const printed = await runCliInProcess([
      'deploy',
      'print',
      'haproxy',
      '--config',
      relayYaml,
      '--cert',
      pem,
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    cfgFile = join(dir, 'haproxy.cfg');
    writeFileSync(cfgFile, onLoopback(printed.stdout, port));
    const started = spawn(HAPROXY, ['-f', cfgFile, '-db'], {
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    haproxy = started;
    started.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      haproxyOutput += chunk;
    });
    started.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      haproxyOutput += chunk;
    });
    await accepting(port, started, () => haproxyOutput);
  });

  after(async () => {
    const running = haproxy;
    if (running?.pid !== undefined && running.exitCode === null) {
      const exited = new Promise((resolve) => running.once('exit', resolve));
      process.kill(running.pid, 'SIGTERM');
      await exited;
    }
    await dispatcher?.close();
    await Promise.all([...replicas.values()].map((gateway) => gateway.close()));
    await redis?.close();
    rmSync(dir, { recursive: true, force: true });
    pki.close();
  });

  let nextId = 1;
  const post = async (url: string, user: string, body: string, session?: string) => {
    const reply = await rawPost(
      url,
      body,
      { authorization: `Bearer ${keys[user]}`, ...(session ? { 'mcp-session-id': session } : {}) },
      dispatcher,
    );
    return { ...reply, session: reply.headers.get('mcp-session-id') };
  };
  const open = async (url: string, user: string): Promise<string> => {
    const init = await post(url, user, INITIALIZE);
    assert.equal(init.status, 200, init.text);
    assert.ok(init.session);
    await post(
      url,
      user,
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      init.session,
    );
    return init.session;
  };
  const echo = async (url: string, user: string, session: string, text: string) => {
    const reply = await post(
      url,
      user,
      JSON.stringify({
        jsonrpc: '2.0',
        id: nextId++,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text } },
      }),
      session,
    );
    assert.equal(reply.status, 200, reply.text);
    const answer = answerOf(reply) as { result?: unknown };
    return textOf(answer.result);
  };
  const cluster = async (id: string) => {
    const response = await fetch(`${replicas.get(id)?.url}/healthz`);
    return ((await response.json()) as { cluster: { forwardsSent: number; forwardsReceived: number } })
      .cluster;
  };

  it('haproxy -c accepts the rendered haproxy.cfg', async () => {
    const checked = await runProcess(HAPROXY, ['-c', '-f', cfgFile]);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout + checked.stderr, /Configuration file is valid/);
    const text = readFileSync(cfgFile, 'utf8');
    for (const id of IDS) {
      assert.match(text, new RegExp(`^ {4}server ${id} 127\\.0\\.0\\.1:\\d+ check`, 'm'));
      assert.ok(text.includes(`use-server ${id} if { req.hdr(mcp-session-id) -m beg ${id}. }`));
    }
  });

  it('keeps every session on the replica its id names: no replica forwards a request', TIMEOUT, async () => {
    const sessions: Array<{ user: string; server: string; session: string }> = [];
    // Ten sessions of two users opened through HAProxy (hashed by credential).
    for (let index = 0; index < 10; index++) {
      const user = USERS[index % 2] as string;
      const server = index % 4 < 2 ? 'mine' : 'fresh';
      sessions.push({ user, server, session: await open(`${publicUrl}/mcp/${server}`, user) });
    }
    // Sessions opened straight at each replica: the hash alone would send most of them elsewhere, so
    // only the session id's prefix (use-server) keeps them where they live.
    for (const id of IDS)
      for (const user of USERS)
        sessions.push({
          user,
          server: 'fresh',
          session: await open(`${replicas.get(id)?.url}/mcp/fresh`, user),
        });
    const placed = new Set(sessions.map(({ session }) => session.split('.')[0]));
    assert.deepEqual([...placed].sort(), [...IDS]);

    for (const [index, { user, server, session }] of sessions.entries()) {
      const text = `${user}-${index}`;
      assert.equal(await echo(`${publicUrl}/mcp/${server}`, user, session, text), text);
    }
    const counts = await Promise.all(IDS.map((id) => cluster(id)));
    console.log(
      `# ${sessions.length} sessions through haproxy: forwards sent ${counts.map((c) => c.forwardsSent).join(', ')}`,
    );
    assert.deepEqual(
      counts.map((count) => [count.forwardsSent, count.forwardsReceived]),
      IDS.map(() => [0, 0]),
      haproxyOutput,
    );
  });

  it('sends a legacy SSE session’s POSTs to the replica their ?sessionId= names', TIMEOUT, async () => {
    // Where HAProxy sends alice's requests that name no session (the hash of her credential); her legacy
    // stream is opened straight at another replica, so only use-server on the query keeps its POSTs there.
    const hashed = (await open(`${publicUrl}/mcp/fresh`, 'alice')).slice(0, 2);
    const elsewhere = IDS.find((id) => id !== hashed) as string;
    const before = await Promise.all(IDS.map((id) => cluster(id)));
    const posted: string[] = [];
    const client = await connectLegacyClient(
      `${replicas.get(elsewhere)?.url}/mcp/fresh/sse`,
      keys.alice,
      (input, init) => {
        if (init?.method !== 'POST') return fetch(input, init);
        const url = new URL(String(input));
        posted.push(url.search);
        return undiciFetch(new URL(`${url.pathname}${url.search}`, publicUrl), {
          ...(init as object),
          dispatcher,
        }) as unknown as Promise<Response>;
      },
    );
    try {
      const echoed = await client.callTool({ name: 'echo', arguments: { text: 'through haproxy' } });
      assert.equal(textOf(echoed), 'through haproxy');
    } finally {
      await client.close();
    }
    assert.match(posted[0] ?? '', new RegExp(`^\\?sessionId=${elsewhere}\\.`));
    const after = await Promise.all(IDS.map((id) => cluster(id)));
    assert.deepEqual(
      after.map((count, index) => count.forwardsSent - (before[index]?.forwardsSent ?? 0)),
      IDS.map(() => 0),
    );
  });

  it(
    'passes a GET stream on as the gateway writes it: keep-alive comments arrive one by one',
    TIMEOUT,
    async () => {
      const session = await open(`${publicUrl}/mcp/fresh`, 'alice');
      const stream = await undiciFetch(`${publicUrl}/mcp/fresh`, {
        dispatcher,
        headers: {
          authorization: `Bearer ${keys.alice}`,
          accept: 'text/event-stream',
          'mcp-session-id': session,
          'mcp-protocol-version': '2025-11-25',
        },
      });
      assert.equal(stream.status, 200);
      assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      const arrivals: number[] = [];
      const started = Date.now();
      while (Date.now() - started < 8 * KEEP_ALIVE_MS) {
        const { value, done } = await reader.read();
        assert.equal(done, false, 'the stream ended');
        const comments = decoder.decode(value, { stream: true }).match(/^: keep-alive$/gm)?.length ?? 0;
        for (let index = 0; index < comments; index++) arrivals.push(Date.now() - started);
      }
      await reader.cancel();
      // Buffered by HAProxy, they would come together at the end; passed on, one every keep-alive.
      assert.ok(arrivals.length >= 5, `${arrivals.length} comments`);
      assert.ok((arrivals[0] ?? Infinity) < 3 * KEEP_ALIVE_MS, `first comment after ${arrivals[0]} ms`);
    },
  );

  it('answers what the gateway does not serve with 404 from HAProxy, and /healthz from a replica', async () => {
    const other = await undiciFetch(`${publicUrl}/metrics`, { dispatcher });
    assert.equal(other.status, 404);
    await other.text();
    const health = await undiciFetch(`${publicUrl}/healthz`, { dispatcher });
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
  });

  // Last: it stops a replica.
  it(
    'drains a stopping replica behind HAProxy: its call in flight finishes, then its session starts again on another replica',
    TIMEOUT,
    async () => {
      const url = `${publicUrl}/mcp/fresh`;
      const session = await open(url, 'alice');
      const owner = session.split('.')[0] as string;
      const stopping = replicas.get(owner);
      assert.ok(stopping, session);
      const call = post(
        url,
        'alice',
        JSON.stringify({
          jsonrpc: '2.0',
          id: nextId++,
          method: 'tools/call',
          params: { name: 'sleep', arguments: { ms: 1_500 } },
        }),
        session,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stopped = stopping.close({ drainMs: 10_000 });
      const reply = await call;
      assert.equal(reply.status, 200, reply.text);
      assert.equal(textOf((answerOf(reply) as { result?: unknown }).result), 'slept');
      await stopped;
      // HAProxy finds the replica gone (a refused connection, then its checks): the session is unknown
      // wherever the request lands, and a new one is placed on a replica still running.
      const after = await post(
        url,
        'alice',
        JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/list' }),
        session,
      );
      assert.equal(after.status, 404, after.text);
      const again = await open(url, 'alice');
      assert.notEqual(again.split('.')[0], owner);
      assert.equal(await echo(url, 'alice', again, 'moved'), 'moved');
    },
  );
});
