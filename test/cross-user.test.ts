// One user must never act for another through a shared backend: answer their server→client requests,
// receive their call-backs or logs, or see and touch their tasks; and a request may not skip the gate
// by coming without an id. Each case is played by a real attacker: a raw HTTP client or the SDK client.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  CreateTaskResultSchema,
  GetTaskResultSchema,
  ListTasksResultSchema,
  LoggingMessageNotificationSchema,
  type McpError,
} from '@modelcontextprotocol/sdk/types.js';
import { buildConfig } from '../src/config/load.ts';
import {
  connectClient,
  fixtureServer,
  rawSession,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';

const TIMEOUT = { timeout: 30_000 };

/** An SDK client that records the sampling prompts and log lines it gets; its sampling answer waits `delayMs`. */
async function recordingClient(url: string, key: string, name: string, delayMs = 0) {
  const { client, transport } = await connectClient(url, key, { sampling: {} });
  const seen = { sampled: [] as string[], logs: [] as string[], samplingIds: [] as unknown[] };
  client.setRequestHandler(CreateMessageRequestSchema, async (request, extra) => {
    seen.samplingIds.push(extra.requestId);
    const first = request.params.messages[0]?.content;
    seen.sampled.push(first && 'text' in first ? String(first.text) : '');
    await sleep(delayMs);
    return { role: 'assistant', content: { type: 'text', text: `answer of ${name}` }, model: 'm' };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, ({ params }) => {
    seen.logs.push(String(params.data));
  });
  return { client, transport, seen };
}

describe('server→client requests in a shared backend', () => {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway(
      { servers: { demo: fixtureServer('well', { isolation: 'shared' }) } },
      { users: ['alice', 'bob'] },
    );
    url = `${gw.url}/mcp/demo`;
  });
  after(() => gw.close());

  it('only the session asked may answer, under an id nobody can guess', TIMEOUT, async () => {
    const alice = await recordingClient(url, gw.keys.alice as string, 'alice', 500);
    const bob = await rawSession(url, gw.keys.bob as string);
    try {
      const call = alice.client.callTool({ name: 'sample', arguments: {} });
      while (alice.seen.samplingIds.length === 0) await sleep(10);
      // Bob answers with every id an attacker would try while Alice's client is still thinking.
      const aliceId = alice.seen.samplingIds[0];
      for (const id of [1, 2, 3, '1', 'srv-1', 0, aliceId]) {
        const spoof = await bob.post({
          jsonrpc: '2.0',
          id,
          result: { role: 'assistant', content: { type: 'text', text: 'answer of bob' }, model: 'm' },
        });
        assert.equal(spoof.status, 400, `bob's answer under id ${JSON.stringify(id)}: ${spoof.text}`);
        assert.match(spoof.text, /no server→client request with this id/);
      }
      assert.equal(textOf(await call), 'sampled: answer of alice');
      assert.equal(typeof aliceId, 'string');
      assert.ok(String(aliceId).length >= 16, `an unguessable id: ${String(aliceId)}`);
    } finally {
      await alice.client.close();
    }
  });

  it('another user’s background log and call-back reach nobody, busy or alone', TIMEOUT, async () => {
    const bob = await recordingClient(url, gw.keys.bob as string, 'bob');
    const alice = await recordingClient(url, gw.keys.alice as string, 'alice');
    try {
      // Alice starts work that logs and samples later, then leaves; Bob is the only session left.
      assert.equal(
        textOf(
          await alice.client.callTool({ name: 'later', arguments: { ms: 200, text: 'alice-secret-1' } }),
        ),
        'later',
      );
      await alice.transport.terminateSession();
      await sleep(500);
      assert.deepEqual(
        [bob.seen.logs, bob.seen.sampled],
        [[], []],
        'the only session left got Alice’s messages',
      );
      // Again, with Bob the one session busy when Alice's messages come.
      const again = await recordingClient(url, gw.keys.alice as string, 'alice');
      await again.client.callTool({ name: 'later', arguments: { ms: 200, text: 'alice-secret-2' } });
      await again.transport.terminateSession();
      assert.equal(textOf(await bob.client.callTool({ name: 'sleep', arguments: { ms: 600 } })), 'slept');
      assert.deepEqual([bob.seen.logs, bob.seen.sampled], [[], []], 'the busy session got Alice’s messages');
      await again.client.close();
    } finally {
      await Promise.all([alice.client.close(), bob.client.close()]);
    }
  });

  it('a request sent without an id is refused, not forwarded around policy and audit', TIMEOUT, async () => {
    const bob = await rawSession(url, gw.keys.bob as string);
    const sneaky = await bob.post({
      jsonrpc: '2.0',
      method: 'tools/call',
      params: { name: 'crash', arguments: {} },
    });
    assert.equal(sneaky.status, 400, sneaky.text);
    assert.equal(
      (sneaky.json as { error: { message: string } }).error.message,
      '"tools/call" is a request and needs an id',
    );
    // A notification no client may send is dropped (202); the backend is still the same process.
    const odd = await bob.post({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    assert.equal(odd.status, 202);
    const pid = await bob.post({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'cancellations' },
    });
    assert.equal(pid.status, 200, pid.text);
    const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {
      servers: { demo: { backends: number } };
    };
    assert.equal(health.servers.demo.backends, 1, 'the crash tool never ran');
  });
});

/** The installed server-everything's bin script (it speaks MCP on stdio with `stdio`). */
function everythingEntry(): string {
  const packageJson = createRequire(import.meta.url).resolve(
    '@modelcontextprotocol/server-everything/package.json',
  );
  const { bin } = JSON.parse(readFileSync(packageJson, 'utf8')) as { bin: Record<string, string> };
  return join(dirname(packageJson), bin['mcp-server-everything'] as string);
}

describe('MCP tasks in a shared backend (server-everything)', () => {
  let gw: TestGateway;
  let alice: Client;
  let bob: Client;
  const server = (tools?: unknown) => ({
    everything: {
      command: process.execPath,
      args: [everythingEntry(), 'stdio'],
      isolation: 'shared',
      ...(tools ? { tools } : {}),
    },
  });
  const research = { deny: [] as string[], groups: { research: { allow: ['*'] } } };
  before(async () => {
    gw = await startGateway(
      { servers: server(research) },
      { users: ['alice', 'bob'], groups: { alice: ['research'] } },
    );
    alice = (await connectClient(`${gw.url}/mcp/everything`, gw.keys.alice)).client;
    bob = (await connectClient(`${gw.url}/mcp/everything`, gw.keys.bob)).client;
  });
  after(async () => {
    await Promise.all([alice.close(), bob.close()]);
    await gw.close();
  });

  const startTask = async (client: Client) =>
    (
      await client.request(
        {
          method: 'tools/call',
          params: { name: 'simulate-research-query', arguments: { topic: 'tides' }, task: { ttl: 60_000 } },
        },
        CreateTaskResultSchema,
      )
    ).task.taskId;
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => assert.fail('expected an error'),
      (error: McpError) => ({ code: error.code, message: error.message }),
    );

  it('shows and lets act on a task only the session that created it', TIMEOUT, async () => {
    const taskId = await startTask(alice);
    const own = await alice.request({ method: 'tasks/get', params: { taskId } }, GetTaskResultSchema);
    assert.equal(own.taskId, taskId);
    const listed = await alice.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema);
    assert.deepEqual(
      listed.tasks.map((task) => task.taskId),
      [taskId],
    );

    const bobsList = await bob.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema);
    assert.deepEqual(bobsList.tasks, [], 'bob lists none of alice’s tasks');
    const madeUp = '00000000-0000-4000-8000-000000000000';
    for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel'] as const) {
      const theirs = await failure(bob.request({ method, params: { taskId } }, GetTaskResultSchema));
      const unknown = await failure(bob.request({ method, params: { taskId: madeUp } }, GetTaskResultSchema));
      // Exactly the answer for a task that does not exist, but for the id it names.
      assert.deepEqual(
        { ...theirs, message: theirs.message.replace(taskId, '<id>') },
        {
          ...unknown,
          message: unknown.message.replace(madeUp, '<id>'),
        },
      );
      assert.equal(theirs.code, -32602, `${method}: ${theirs.message}`);
    }
    // Alice's task was neither cancelled nor read away by Bob: she gets its result.
    const result = await alice.request({ method: 'tasks/result', params: { taskId } }, CallToolResultSchema);
    assert.match(JSON.stringify(result.content), /Research Report: tides/);
  });

  it('applies the tool policy to the task’s tool after a reload', TIMEOUT, async () => {
    const taskId = await startTask(alice);
    const denied = { ...research, deny: ['simulate-research-query'] };
    const change = gw.gateway.reload(
      buildConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          auth: { apiKeys: { file: gw.keysFile } },
          servers: server(denied),
        },
        gw.dir,
      ),
    );
    assert.ok(change);
    const refused = await failure(
      alice.request({ method: 'tasks/result', params: { taskId } }, CallToolResultSchema),
    );
    assert.equal(refused.code, -32003);
    assert.match(refused.message, /tool "simulate-research-query" is not available/);
  });
});
