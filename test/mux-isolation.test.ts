// Isolation modes as users see them: with the 3d-scene demo, `per-user` gives each user one scene
// shared by all of that user's sessions, `shared` gives everybody one scene; a per-user backend knows
// its user; a backend killed under load fails its calls at once and comes back for the same sessions.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectClient, fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';

const SCENE_SERVER = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));
const PID_FIXTURE = fileURLToPath(new URL('./fixtures/stdio-server-pid.mjs', import.meta.url));
const TIMEOUT = { timeout: 30_000 };

function sceneServer(isolation: string): Record<string, unknown> {
  return { command: process.execPath, args: [SCENE_SERVER], isolation, app: { portEnv: 'APP_PORT' } };
}

async function backendsOf(gw: TestGateway, server: string): Promise<number | undefined> {
  const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {
    servers: Record<string, { backends: number }>;
  };
  return health.servers[server]?.backends;
}

/** The names of the objects in the scene, as list_objects reports them. */
async function objectNames(client: Client): Promise<string[]> {
  const result = await client.callTool({ name: 'list_objects', arguments: {} });
  const data = result.structuredContent as { objects: Array<{ name: string }> };
  return data.objects.map((object) => object.name).sort();
}

/** The names of the objects in the scene, as the scene://current resource reports them. */
async function resourceNames(client: Client): Promise<string[]> {
  const { contents } = await client.readResource({ uri: 'scene://current' });
  const first = contents[0];
  assert.ok(first && 'text' in first, 'scene://current is JSON text');
  const scene = JSON.parse(first.text) as { objects: Array<{ name: string }> };
  return scene.objects.map((object) => object.name).sort();
}

async function addObject(client: Client, name: string, shape: string): Promise<void> {
  const result = await client.callTool({ name: 'add_object', arguments: { name, shape } });
  assert.notEqual(result.isError, true, textOf(result));
}

describe('3d-scene per user and shared', () => {
  let gw: TestGateway;
  const clients: Client[] = [];
  const connect = async (server: string, user: string) => {
    const { client } = await connectClient(`${gw.url}/mcp/${server}`, gw.keys[user]);
    clients.push(client);
    return client;
  };

  before(async () => {
    gw = await startGateway(
      { servers: { mine: sceneServer('per-user'), ours: sceneServer('shared') } },
      { users: ['alice', 'bob'] },
    );
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await gw.close();
  });

  it('per-user: two users build two scenes, and each sees only their own', TIMEOUT, async () => {
    const alice = await connect('mine', 'alice');
    const bob = await connect('mine', 'bob');
    await addObject(alice, 'alice-box', 'box');
    await addObject(bob, 'bob-sphere', 'sphere');
    await addObject(bob, 'bob-cone', 'cone');
    assert.deepEqual(await objectNames(alice), ['alice-box']);
    assert.deepEqual(await objectNames(bob), ['bob-cone', 'bob-sphere']);
    assert.deepEqual(await resourceNames(alice), ['alice-box']);
    assert.deepEqual(await resourceNames(bob), ['bob-cone', 'bob-sphere']);
    assert.equal(await backendsOf(gw, 'mine'), 2, 'one backend per user');
  });

  it('per-user: two sessions of one user work on one scene', TIMEOUT, async () => {
    const first = await connect('mine', 'alice');
    const second = await connect('mine', 'alice');
    await addObject(second, 'alice-torus', 'torus');
    assert.deepEqual(await objectNames(first), ['alice-box', 'alice-torus']);
    assert.deepEqual(await resourceNames(second), ['alice-box', 'alice-torus']);
    assert.equal(await backendsOf(gw, 'mine'), 2, "Alice's new sessions reuse her backend");
  });

  it('shared: two users see and build one scene', TIMEOUT, async () => {
    const alice = await connect('ours', 'alice');
    const bob = await connect('ours', 'bob');
    await addObject(alice, 'common-box', 'box');
    assert.deepEqual(await objectNames(bob), ['common-box']);
    await addObject(bob, 'common-plane', 'plane');
    assert.deepEqual(await resourceNames(alice), ['common-box', 'common-plane']);
    assert.equal(await backendsOf(gw, 'ours'), 1, 'one backend for everybody');
  });
});

describe('per-user backends know their user', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(
      { servers: { who: fixtureServer('well', { isolation: 'per-user' }) } },
      { users: ['alice', 'bob'] },
    );
  });
  after(() => gw.close());

  it('runs each user’s backend with MCP_RELAY_USER set to that user', TIMEOUT, async () => {
    const alice = await connectClient(`${gw.url}/mcp/who`, gw.keys.alice);
    const bob = await connectClient(`${gw.url}/mcp/who`, gw.keys.bob);
    try {
      assert.equal(textOf(await alice.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
      assert.equal(textOf(await bob.client.callTool({ name: 'whoami', arguments: {} })), 'bob');
    } finally {
      await Promise.all([alice.client.close(), bob.client.close()]);
    }
  });
});

describe('a shared backend killed under load', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(
      { servers: { pid: { command: process.execPath, args: [PID_FIXTURE], isolation: 'shared' } } },
      { users: ['alice', 'bob'] },
    );
  });
  after(() => gw.close());

  it(
    'fails in-flight calls within 1 s, restarts, and the same sessions carry on with a list_changed',
    TIMEOUT,
    async () => {
      const peers = await Promise.all(
        ['alice', 'bob'].map(async (user) => {
          const { client, transport } = await connectClient(`${gw.url}/mcp/pid`, gw.keys[user]);
          let listChanged = 0;
          client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
            listChanged++;
          });
          return { client, transport, listChanged: () => listChanged };
        }),
      );
      try {
        const pids = await Promise.all(
          peers.map(async ({ client }) =>
            Number(textOf(await client.callTool({ name: 'pid', arguments: {} }))),
          ),
        );
        assert.equal(pids[0], pids[1], 'both sessions reach one backend');
        const oldPid = pids[0] as number;
        assert.ok(oldPid > 0);
        const sessionIds = peers.map(({ transport }) => transport.sessionId);

        // Ten calls in flight, from both users, that the backend would answer only after 20 s.
        const inFlight = peers.flatMap(({ client }) =>
          Array.from({ length: 5 }, () =>
            client.callTool({ name: 'sleep', arguments: { ms: 20_000 } }).then(
              () => ({ failed: false, at: Date.now() }),
              () => ({ failed: true, at: Date.now() }),
            ),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
        const killedAt = Date.now();
        process.kill(oldPid, 'SIGKILL');
        const outcomes = await Promise.all(inFlight);
        for (const outcome of outcomes) {
          assert.ok(outcome.failed, 'an in-flight call on a dead backend is answered with an error');
          assert.ok(outcome.at - killedAt < 1_000, `answered ${outcome.at - killedAt} ms after the kill`);
        }

        // Later calls work on a new process, in the same sessions (no new initialize).
        for (const { client } of peers) {
          const deadline = Date.now() + 10_000;
          let newPid: number | undefined;
          while (newPid === undefined) {
            try {
              newPid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
            } catch (error) {
              if (Date.now() > deadline) throw error;
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
          }
          assert.ok(
            newPid > 0 && newPid !== oldPid,
            `restarted backend has a new pid (${oldPid} → ${newPid})`,
          );
          assert.equal(
            textOf(await client.callTool({ name: 'echo', arguments: { text: 'again' } })),
            'again',
          );
        }
        assert.deepEqual(
          peers.map(({ transport }) => transport.sessionId),
          sessionIds,
        );
        const deadline = Date.now() + 5_000;
        while (peers.some((peer) => peer.listChanged() === 0) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.deepEqual(
          peers.map((peer) => peer.listChanged() > 0),
          [true, true],
          'every session is told the tool list may have changed',
        );
        assert.equal(await backendsOf(gw, 'pid'), 1);
      } finally {
        await Promise.all(peers.map(({ client }) => client.close()));
      }
    },
  );
});
