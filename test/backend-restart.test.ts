// A graceful restart of a server's backends (Gateway.restartBackends, servers.<name>.watch): new code
// runs without a failed call. Real gateway, real fixture processes, the official SDK client.

import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CreateMessageRequestSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { connectClient, FIXTURE_SERVER, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { startServe } from './helpers/serve.ts';

const USERS = ['alice', 'bob', 'carol'];

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  return textOf(await client.callTool({ name, arguments: args }));
}

/** Whether process `pid` still exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The gateway with the fixture copied into its folder (so a test may replace the server's code). */
async function gatewayWithScript(
  server: Record<string, unknown>,
  top: Record<string, unknown> = {},
): Promise<{ gw: TestGateway; script: string }> {
  const gw = await startGateway(
    { servers: { s: { command: process.execPath, args: ['server.mjs', 'well'], ...server } }, ...top },
    { users: USERS },
  );
  const script = join(gw.dir, 'server.mjs');
  copyFileSync(FIXTURE_SERVER, script);
  return { gw, script };
}

describe('graceful backend restart', () => {
  it('shared: calls in flight and a stream of new calls across a restart all succeed, each run once', async (t) => {
    const { gw } = await gatewayWithScript({ isolation: 'shared', drainTimeout: '20s' });
    const url = `${gw.url}/mcp/s`;
    const ledger = join(gw.dir, 'executions.log');
    const clients = await Promise.all(USERS.map((user) => connectClient(url, gw.keys[user])));
    const changed = { tools: 0, resources: 0 };
    for (const { client } of clients) {
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changed.tools++;
      });
      client.setNotificationHandler(ResourceListChangedNotificationSchema, () => {
        changed.resources++;
      });
    }
    try {
      const first = clients[0]?.client as Client;
      const oldPid = Number(await call(first, 'pid'));
      // Long calls on the old process, from every user's session.
      const slow = clients.flatMap(({ client }, index) =>
        [0, 1].map((n) => call(client, 'count', { key: `slow-${index}-${n}`, ms: 3_000, file: ledger })),
      );
      // A call that reports progress all through the restart, from the old process.
      const progressed: number[] = [];
      const reporting = first.callTool({ name: 'progress', arguments: { steps: 100 } }, undefined, {
        onprogress: ({ progress }) => {
          progressed.push(progress);
        },
      });
      await sleep(300);
      // A steady stream of new calls while the restart runs: one every 20 ms, round robin over the sessions.
      let streaming = true;
      const stream: Array<Promise<string>> = [];
      const streamer = (async () => {
        for (let n = 0; streaming; n++) {
          const { client } = clients[n % clients.length] as { client: Client };
          stream.push(call(client, 'count', { key: `new-${n}`, file: ledger }));
          await sleep(20);
        }
      })();
      const started = Date.now();
      const restart = await gw.gateway.restartBackends('s');
      const tookMs = Date.now() - started;
      streaming = false;
      await streamer;
      const results = await Promise.allSettled([...slow, ...stream]);
      const [instance] = restart.instances;
      assert.equal(restart.instances.length, 1);
      assert.equal(instance?.status, 'restarted', JSON.stringify(instance));
      if (instance?.status !== 'restarted') return;
      t.diagnostic(
        `switch ${instance.switchMs} ms, ${instance.inFlight} in flight at the switch, drain ${instance.drainMs} ms, whole restart ${tookMs} ms, ${stream.length} new calls during it`,
      );
      assert.ok(instance.inFlight >= 6, `the long calls were in flight at the switch (${instance.inFlight})`);
      assert.equal(textOf(await reporting), 'done 100');
      assert.deepEqual(
        progressed,
        Array.from({ length: 100 }, (_, i) => i + 1),
        'every progress notification of the old process reached its session',
      );
      const failed = results.filter((result) => result.status === 'rejected');
      assert.deepEqual(failed, [], 'no call failed');
      assert.equal(instance.unfinished, 0);
      const newPid = Number(await call(first, 'pid'));
      assert.notEqual(newPid, oldPid);
      assert.equal(instance.oldPid, oldPid);
      assert.equal(instance.newPid, newPid);
      assert.ok(!alive(oldPid), 'the old process was stopped');
      // Every call ran exactly once, across both processes.
      const lines = readFileSync(ledger, 'utf8').split('\n').filter(Boolean);
      const keys = [...slow.keys()].map((i) => `slow-${Math.floor(i / 2)}-${i % 2}`);
      keys.push(...stream.map((_, n) => `new-${n}`));
      assert.deepEqual([...lines].sort(), [...keys].sort());
      await sleep(100);
      assert.equal(changed.tools, USERS.length, 'each session was told its tools may have changed');
      assert.equal(changed.resources, USERS.length, 'and its resources (the server declares them)');
    } finally {
      await Promise.all(clients.map(({ client }) => client.close()));
      await gw.close();
    }
  });

  it('routes a sampling request of the old process back to it after the switch', async () => {
    const { gw } = await gatewayWithScript({ isolation: 'per-user' });
    const { client } = await connectClient(`${gw.url}/mcp/s`, gw.keys.alice, { sampling: {} });
    let release: () => void = () => {};
    const asked = new Promise<void>((resolve) => {
      client.setRequestHandler(CreateMessageRequestSchema, async () => {
        resolve();
        await new Promise<void>((resume) => {
          release = resume;
        });
        return { role: 'assistant', content: { type: 'text', text: 'from the client' }, model: 'm' };
      });
    });
    try {
      const oldPid = Number(await call(client, 'pid'));
      const sampled = call(client, 'sample');
      await asked;
      const restart = gw.gateway.restartBackends('s');
      // The new process serves new calls while the old one waits for the client's answer.
      for (let tries = 0; Number(await call(client, 'pid')) === oldPid; tries++) {
        assert.ok(tries < 200, 'switched to the new process');
        await sleep(20);
      }
      release();
      assert.equal(await sampled, 'sampled: from the client');
      const [instance] = (await restart).instances;
      assert.equal(instance?.status, 'restarted');
    } finally {
      await client.close();
      await gw.close();
    }
  });

  it('a broken new version leaves the old process serving and reports why, with its stderr', async () => {
    const { gw, script } = await gatewayWithScript({ isolation: 'shared' });
    const { client } = await connectClient(`${gw.url}/mcp/s`, gw.keys.alice);
    try {
      const oldPid = Number(await call(client, 'pid'));
      const inFlight = call(client, 'sleep', { ms: 800 });
      writeFileSync(script, "console.error('deploy broke: missing module ./tools.js');\nprocess.exit(2);\n");
      const restart = await gw.gateway.restartBackends('s');
      const [instance] = restart.instances;
      assert.equal(instance?.status, 'failed', JSON.stringify(instance));
      if (instance?.status !== 'failed') return;
      assert.match(instance.reason, /exited \(code 2\) before answering initialize/);
      assert.ok(instance.stderr.some((line) => line.includes('deploy broke: missing module')));
      assert.equal(await inFlight, 'slept');
      assert.equal(Number(await call(client, 'pid')), oldPid, 'the old process still serves');
      assert.equal(await call(client, 'echo', { text: 'still here' }), 'still here');
      // A new version that never answers initialize fails at the start timeout, with the same outcome.
      writeFileSync(script, "console.error('stuck at start');\nsetInterval(() => {}, 1000);\n");
      const hung = await gw.gateway.restartBackends('s', { startTimeoutMs: 500 });
      assert.equal(hung.instances[0]?.status, 'failed');
      assert.match(JSON.stringify(hung.instances[0]), /did not answer initialize within 0.5 s/);
      assert.match(JSON.stringify(hung.instances[0]), /stuck at start/);
      assert.equal(Number(await call(client, 'pid')), oldPid);
    } finally {
      await client.close();
      await gw.close();
    }
  });

  it('a call still running at the drain bound fails with the honest "unknown" error; the old process is stopped', async () => {
    const { gw } = await gatewayWithScript({ isolation: 'shared', drainTimeout: '400ms' });
    const { client } = await connectClient(`${gw.url}/mcp/s`, gw.keys.alice);
    try {
      const oldPid = Number(await call(client, 'pid'));
      const long = call(client, 'sleep', { ms: 5_000 }).then(
        () => 'answered',
        (error: Error) => error.message,
      );
      await sleep(100);
      const [instance] = (await gw.gateway.restartBackends('s')).instances;
      assert.equal(instance?.status, 'restarted');
      assert.equal(instance?.status === 'restarted' && instance.unfinished, 1);
      assert.match(
        await long,
        /did not answer within the 0.4 s drain; it was stopped, whether the call ran is unknown/,
      );
      assert.ok(!alive(oldPid));
      assert.notEqual(Number(await call(client, 'pid')), oldPid);
    } finally {
      await client.close();
      await gw.close();
    }
  });

  it('watch: editing the server’s code restarts its backend, a call in flight still answered', async () => {
    const { gw, script } = await gatewayWithScript({ isolation: 'shared', watch: ['server.mjs'] });
    const { client } = await connectClient(`${gw.url}/mcp/s`, gw.keys.alice);
    try {
      const oldPid = Number(await call(client, 'pid'));
      const inFlight = call(client, 'sleep', { ms: 2_000 });
      await sleep(100);
      appendFileSync(script, '\n// a new version\n');
      let pid = oldPid;
      for (let tries = 0; pid === oldPid; tries++) {
        assert.ok(tries < 150, 'the backend was restarted after the change');
        await sleep(50);
        pid = Number(await call(client, 'pid'));
      }
      assert.equal(await inFlight, 'slept', 'the call in flight on the old process was answered');
      assert.notEqual(pid, oldPid);
    } finally {
      await client.close();
      await gw.close();
    }
  });

  it('per-user: restarting one user’s backends leaves the others’ alone', async () => {
    const { gw } = await gatewayWithScript({ isolation: 'per-user' });
    const url = `${gw.url}/mcp/s`;
    const alice = (await connectClient(url, gw.keys.alice)).client;
    const bob = (await connectClient(url, gw.keys.bob)).client;
    try {
      const [alicePid, bobPid] = [Number(await call(alice, 'pid')), Number(await call(bob, 'pid'))];
      assert.notEqual(alicePid, bobPid);
      const restart = await gw.gateway.restartBackends('s', { user: 'alice' });
      const byUser = Object.fromEntries(
        restart.instances.map((instance) => [instance.user, instance.status]),
      );
      assert.deepEqual(byUser, { alice: 'restarted', bob: 'skipped' });
      assert.notEqual(Number(await call(alice, 'pid')), alicePid);
      assert.equal(Number(await call(bob, 'pid')), bobPid);
      await assert.rejects(gw.gateway.restartBackends('nope'), /no server named "nope"/);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
      await gw.close();
    }
  });

  it('per-session: each session’s backend is restarted the same way', async () => {
    const { gw } = await gatewayWithScript({ isolation: 'per-session' });
    const url = `${gw.url}/mcp/s`;
    const one = (await connectClient(url, gw.keys.alice)).client;
    const two = (await connectClient(url, gw.keys.alice)).client;
    try {
      const before = [Number(await call(one, 'pid')), Number(await call(two, 'pid'))];
      const inFlight = call(one, 'sleep', { ms: 800 });
      await sleep(100);
      assert.deepEqual(
        (await gw.gateway.restartBackends('s', { user: 'bob' })).instances.map(({ status }) => status),
        ['skipped', 'skipped'],
      );
      const restart = await gw.gateway.restartBackends('s');
      assert.deepEqual(
        restart.instances.map(({ status, user }) => `${user} ${status}`),
        ['alice restarted', 'alice restarted'],
      );
      assert.equal(new Set(restart.instances.map(({ session }) => session)).size, 2);
      assert.equal(await inFlight, 'slept');
      const after = [Number(await call(one, 'pid')), Number(await call(two, 'pid'))];
      assert.ok(after.every((pid, i) => pid !== before[i]) && after[0] !== after[1]);
    } finally {
      await Promise.all([one.close(), two.close()]);
      await gw.close();
    }
  });

  it('stateDir: each instance keeps its MCP_RELAY_STATE_DIR across a restart, so its state can too', async () => {
    const { gw } = await gatewayWithScript({ isolation: 'per-user' }, { stateDir: 'state' });
    const url = `${gw.url}/mcp/s`;
    const alice = (await connectClient(url, gw.keys.alice)).client;
    const bob = (await connectClient(url, gw.keys.bob)).client;
    try {
      const dir = await call(alice, 'env', { name: 'MCP_RELAY_STATE_DIR' });
      assert.equal(dir, join(gw.dir, 'state', 's', 'user-alice'));
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(
        await call(bob, 'env', { name: 'MCP_RELAY_STATE_DIR' }),
        join(gw.dir, 'state', 's', 'user-bob'),
      );
      // State the server wrote to its folder is there for its next process.
      const file = join(dir, 'counts');
      await call(alice, 'count', { key: 'k', file });
      const oldPid = Number(await call(alice, 'pid'));
      assert.equal((await gw.gateway.restartBackends('s', { user: 'alice' })).instances[0]?.user, 'alice');
      assert.notEqual(Number(await call(alice, 'pid')), oldPid);
      assert.equal(await call(alice, 'env', { name: 'MCP_RELAY_STATE_DIR' }), dir);
      assert.equal(await call(alice, 'executions', { key: 'k', file }), '1');
    } finally {
      await Promise.all([alice.close(), bob.close()]);
      await gw.close();
    }
  });

  it('mcp-relay serve restarts every server’s backends on SIGUSR2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-usr2-'));
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        'servers:',
        '  s:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(FIXTURE_SERVER)}]`,
        '    isolation: shared',
        '',
      ].join('\n'),
    );
    const serve = await startServe(file);
    const { client } = await connectClient(`${serve.url}/mcp/s`, undefined);
    try {
      const oldPid = Number(await call(client, 'pid'));
      const inFlight = call(client, 'sleep', { ms: 1_000 });
      await sleep(100);
      process.kill(serve.pid, 'SIGUSR2');
      let pid = oldPid;
      for (let tries = 0; pid === oldPid; tries++) {
        assert.ok(tries < 150, `restarted on SIGUSR2:\n${serve.stderr()}`);
        await sleep(50);
        pid = Number(await call(client, 'pid'));
      }
      assert.equal(await inFlight, 'slept');
      assert.match(serve.stderr(), /backend restarted: new requests go to the new process/);
    } finally {
      await client.close();
      await serve.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
