// The reference server-everything (stdio) behind one `shared` backend with several users at once:
// progress, sampling, elicitation, resource updates and logs must each reach only the session they
// belong to, and another user's text must never show up anywhere.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { connectClient, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';

const EVERYTHING = everythingEntry();
const TIMEOUT = { timeout: 30_000 };
const BOTH_ASKS = { sampling: {}, elicitation: {} };

/** The installed server-everything's bin script; started with `stdio` it speaks MCP on stdin/stdout. */
function everythingEntry(): string {
  const packageJson = createRequire(import.meta.url).resolve(
    '@modelcontextprotocol/server-everything/package.json',
  );
  const { bin } = JSON.parse(readFileSync(packageJson, 'utf8')) as { bin: Record<string, string> };
  const entry = bin['mcp-server-everything'];
  assert.ok(entry, 'server-everything names its bin mcp-server-everything');
  return join(dirname(packageJson), entry);
}

async function startEverything(users: string[], isolation = 'shared'): Promise<TestGateway> {
  return startGateway(
    {
      servers: {
        everything: { command: process.execPath, args: [EVERYTHING, 'stdio'], isolation },
      },
    },
    { users },
  );
}

/** Fails unless every session so far landed on one backend process: otherwise nothing here is multiplexed. */
async function assertOneBackend(gw: TestGateway): Promise<void> {
  const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {
    servers: Record<string, { backends: number }>;
  };
  assert.equal(health.servers.everything?.backends, 1, 'all sessions share one server-everything process');
}

interface Peer {
  user: string;
  client: Client;
  /** `level: data` of every notifications/message this session received. */
  logs: string[];
  /** The uri of every notifications/resources/updated this session received. */
  updates: string[];
}

async function connectPeer(gw: TestGateway, user: string, capabilities: Record<string, unknown> = {}) {
  const { client } = await connectClient(`${gw.url}/mcp/everything`, gw.keys[user], capabilities);
  const peer: Peer = { user, client, logs: [], updates: [] };
  client.setNotificationHandler(LoggingMessageNotificationSchema, ({ params }) => {
    peer.logs.push(
      `${params.level}: ${typeof params.data === 'string' ? params.data : JSON.stringify(params.data)}`,
    );
  });
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, ({ params }) => {
    peer.updates.push(params.uri);
  });
  return peer;
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A tool call's visible outcome: its text, or the error it was rejected with; never a hang. */
async function settle(call: Promise<unknown>, ms: number): Promise<{ error: boolean; text: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`call still unanswered after ${ms} ms`)), ms);
  });
  try {
    const result = (await Promise.race([call, timeout])) as { isError?: boolean; content?: unknown[] };
    return { error: result.isError === true, text: JSON.stringify(result.content ?? []) };
  } catch (error) {
    if ((error as Error).message.startsWith('call still unanswered')) throw error;
    return { error: true, text: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

describe('server-everything shared: progress', () => {
  let gw: TestGateway;
  const users = ['alice', 'bob', 'carol'];
  before(async () => {
    gw = await startEverything(users);
  });
  after(() => gw.close());

  it(
    'gives each of three concurrent callers exactly its own progress, and every call completes',
    TIMEOUT,
    async () => {
      const peers = await Promise.all(users.map((user) => connectPeer(gw, user)));
      try {
        await assertOneBackend(gw);
        // Every SDK client uses its own request id as progress token, so the three tokens collide at the backend
        // unless the gateway rewrites them; a different step count per caller shows whose progress arrived where.
        const runs = peers.map(async ({ client }, index) => {
          const steps = 3 + index;
          const seen: Array<[number, number | undefined]> = [];
          const result = await client.callTool(
            { name: 'trigger-long-running-operation', arguments: { duration: 1, steps } },
            undefined,
            { onprogress: ({ progress, total }) => seen.push([progress, total]) },
          );
          return { steps, seen, text: textOf(result) };
        });
        for (const run of await Promise.all(runs)) {
          assert.equal(
            run.text,
            `Long running operation completed. Duration: 1 seconds, Steps: ${run.steps}.`,
          );
          assert.deepEqual(
            run.seen,
            Array.from({ length: run.steps }, (_, step) => [step + 1, run.steps]),
          );
        }
      } finally {
        await Promise.all(peers.map((peer) => peer.client.close()));
      }
    },
  );
});

/** Alice and Bob connected with clients that answer sampling and elicitation with their own text. */
function samplingPeers(isolation: string) {
  const state = {
    gw: undefined as unknown as TestGateway,
    alice: undefined as unknown as Peer,
    bob: undefined as unknown as Peer,
    /** The sampling prompts and elicitation messages each user's client was asked to answer. */
    asked: { alice: [], bob: [] } as Record<string, string[]>,
  };
  before(async () => {
    state.gw = await startEverything(['alice', 'bob'], isolation);
    state.alice = await connectPeer(state.gw, 'alice', BOTH_ASKS);
    state.bob = await connectPeer(state.gw, 'bob', BOTH_ASKS);
    for (const peer of [state.alice, state.bob]) {
      peer.client.setRequestHandler(CreateMessageRequestSchema, async ({ params }) => {
        const first = params.messages[0]?.content;
        state.asked[peer.user]?.push(first && 'text' in first ? String(first.text) : JSON.stringify(first));
        return {
          role: 'assistant',
          content: { type: 'text', text: `answer-of-${peer.user}` },
          model: 'test',
        };
      });
      peer.client.setRequestHandler(ElicitRequestSchema, async () => {
        state.asked[peer.user]?.push('elicitation');
        return { action: 'accept', content: { name: `name-of-${peer.user}`, check: true } };
      });
    }
  });
  after(async () => {
    await Promise.all([state.alice.client.close(), state.bob.client.close()]);
    await state.gw.close();
  });
  return state;
}

const sample = (peer: Peer) =>
  peer.client.callTool({
    name: 'trigger-sampling-request',
    arguments: { prompt: `prompt-of-${peer.user}` },
  });
const elicit = (peer: Peer) => peer.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });

describe('server-everything shared: sampling and elicitation', () => {
  const peers = samplingPeers('shared');

  it(
    'asks the only user the backend has worked for, and no one once a second user has',
    TIMEOUT,
    async () => {
      const { alice, bob, asked } = peers;
      await assertOneBackend(peers.gw);
      assert.match(textOf(await sample(alice)), /"text": "answer-of-alice"/);
      assert.match(JSON.stringify((await elicit(alice)).content), /- Name: name-of-alice/);
      assert.deepEqual(asked, {
        alice: ['Resource trigger-sampling-request context: prompt-of-alice', 'elicitation'],
        bob: [],
      });
      // Bob alone is busy now, but Alice's earlier work could be what calls back: nobody is asked.
      for (const call of [sample, elicit]) {
        const outcome = await settle(call(bob), 10_000);
        assert.ok(outcome.error, outcome.text);
        assert.match(outcome.text, /use isolation per-user/);
      }
      assert.deepEqual(asked.bob, []);
      // From now on Alice's call-backs are just as uncertain.
      const after = await settle(sample(alice), 10_000);
      assert.ok(after.error && /use isolation per-user/.test(after.text), after.text);
      assert.equal(asked.alice.length, 2);
    },
  );

  for (const [kind, call] of [
    ['sampling', sample],
    ['elicitation', elicit],
  ] as const) {
    it(
      `never hands one user's ${kind} request or answer to the other when both ask at once`,
      TIMEOUT,
      async () => {
        const { alice, bob, asked } = peers;
        for (let round = 0; round < 5; round++) {
          asked.alice = [];
          asked.bob = [];
          const [aliceOutcome, bobOutcome] = await Promise.all([
            settle(call(alice), 10_000),
            settle(call(bob), 10_000),
          ]);
          for (const [peer, outcome, other] of [
            ['alice', aliceOutcome, 'bob'],
            ['bob', bobOutcome, 'alice'],
          ] as const) {
            assert.doesNotMatch(outcome.text, new RegExp(`-of-${other}`), `${peer} got ${other}'s text`);
            // Several users share the backend: the gateway refuses to guess.
            assert.ok(outcome.error, `${peer}: ${outcome.text}`);
            assert.deepEqual(asked[peer], [], `${peer} was asked`);
          }
        }
      },
    );
  }
});

describe('server-everything per-user: sampling and elicitation', () => {
  const peers = samplingPeers('per-user');

  it(
    'sends each user their own sampling and elicitation requests and returns their answers',
    TIMEOUT,
    async () => {
      const { alice, bob, asked } = peers;
      const [aliceSampled, bobSampled] = await Promise.all([sample(alice), sample(bob)]);
      assert.match(textOf(aliceSampled), /"text": "answer-of-alice"/);
      assert.match(textOf(bobSampled), /"text": "answer-of-bob"/);
      const [aliceElicited, bobElicited] = await Promise.all([elicit(alice), elicit(bob)]);
      assert.match(JSON.stringify(aliceElicited.content), /- Name: name-of-alice/);
      assert.match(JSON.stringify(bobElicited.content), /- Name: name-of-bob/);
      assert.deepEqual(asked, {
        alice: ['Resource trigger-sampling-request context: prompt-of-alice', 'elicitation'],
        bob: ['Resource trigger-sampling-request context: prompt-of-bob', 'elicitation'],
      });
    },
  );
});

describe('server-everything shared: resource subscriptions', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startEverything(['alice', 'bob']);
  });
  after(() => gw.close());

  const ALICE_URI = 'demo://resource/dynamic/text/1';
  const BOB_URI = 'demo://resource/dynamic/text/2';

  /** Flips the backend's simulated updates; when switched on it sends an update for every subscribed uri at once. */
  async function toggleUpdates(peer: Peer, expected: 'Started' | 'Stopped'): Promise<void> {
    const text = textOf(await peer.client.callTool({ name: 'toggle-subscriber-updates', arguments: {} }));
    assert.ok(text.startsWith(expected), text);
  }

  it(
    'sends resources/updated only to subscribers, counting shared subscriptions, and none after unsubscribe',
    TIMEOUT,
    async () => {
      const alice = await connectPeer(gw, 'alice');
      const bob = await connectPeer(gw, 'bob');
      try {
        await assertOneBackend(gw);
        await alice.client.subscribeResource({ uri: ALICE_URI });
        // Bob subscribes to Alice's uri and leaves again: the backend must keep Alice's subscription.
        await bob.client.subscribeResource({ uri: ALICE_URI });
        await bob.client.unsubscribeResource({ uri: ALICE_URI });
        await bob.client.subscribeResource({ uri: BOB_URI });

        await toggleUpdates(bob, 'Started');
        await waitFor(
          () => alice.updates.includes(ALICE_URI),
          7_000,
          'the update of the uri Alice subscribed to',
        );
        await waitFor(() => bob.updates.includes(BOB_URI), 7_000, 'the update of the uri Bob subscribed to');
        await sleep(300);
        assert.ok(!alice.updates.includes(BOB_URI), `alice got updates ${alice.updates}`);
        assert.ok(!bob.updates.includes(ALICE_URI), `bob got updates ${bob.updates}`);

        await alice.client.unsubscribeResource({ uri: ALICE_URI });
        await bob.client.unsubscribeResource({ uri: BOB_URI });
        const seen = { alice: alice.updates.length, bob: bob.updates.length };
        // Off and on again: the backend would send at once for anything still subscribed.
        await toggleUpdates(alice, 'Stopped');
        await toggleUpdates(alice, 'Started');
        await sleep(1_000);
        assert.deepEqual({ alice: alice.updates.length, bob: bob.updates.length }, seen);
        await toggleUpdates(alice, 'Stopped');
      } finally {
        await Promise.all([alice.client.close(), bob.client.close()]);
      }
    },
  );
});

describe('server-everything shared: logging', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startEverything(['alice', 'bob']);
  });
  after(() => gw.close());

  it("applies each session's log level and never shows one user's logs to another", TIMEOUT, async () => {
    const alice = await connectPeer(gw, 'alice');
    let bob: Peer | undefined;
    try {
      // The subscribe handler logs at info level while the request is in flight.
      await alice.client.setLoggingLevel('error');
      await alice.client.subscribeResource({ uri: 'demo://resource/dynamic/text/1' });
      await sleep(500);
      assert.deepEqual(alice.logs, [], 'info logs must be filtered at level error');
      await alice.client.setLoggingLevel('debug');
      await alice.client.subscribeResource({ uri: 'demo://resource/dynamic/text/2' });
      await waitFor(
        () => alice.logs.some((line) => line.includes('request for URI: demo://resource/dynamic/text/2')),
        2_000,
        'the info log of Alice’s own subscribe at level debug',
      );

      bob = await connectPeer(gw, 'bob');
      await bob.client.setLoggingLevel('debug');
      await assertOneBackend(gw);
      // Alice's simulated logs come every 5 s, tied to no request; Bob has a call in flight across the
      // next one, so a gateway that guessed "the session with a request in flight" would show it to Bob.
      const started = textOf(
        await alice.client.callTool({ name: 'toggle-simulated-logging', arguments: {} }),
      );
      assert.ok(started.startsWith('Started'), started);
      const longCall = await bob.client.callTool({
        name: 'trigger-long-running-operation',
        arguments: { duration: 7, steps: 1 },
      });
      assert.match(textOf(longCall), /completed/);
      assert.deepEqual(bob.logs, [], 'Bob must never receive the logs of Alice’s backend activity');
      const stopped = textOf(
        await alice.client.callTool({ name: 'toggle-simulated-logging', arguments: {} }),
      );
      assert.ok(stopped.startsWith('Stopped'), stopped);
    } finally {
      await Promise.all([alice.client.close(), bob?.client.close()]);
    }
  });
});
