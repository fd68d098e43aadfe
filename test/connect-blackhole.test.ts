// `mcp-relay connect` when the network between it and the gateway black-holes (sockets stay open,
// bytes go nowhere) or keeps cutting connections: the SDK stdio client → connect → a fault relay → an
// in-process gateway → the fixture backend's counting tool. Silent connections are dropped after the
// idle timeout; a call whose answer was lost is sent again in the same session, which the gateway
// answers without running it twice (it advertises Mcp-Relay-Retries); the GET stream comes back.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { type Bridged, connectThroughBridge } from './helpers/cli.ts';
import { type FaultRelay, startFaultRelay } from './helpers/fault-relay.ts';
import { fixtureServer, rawSession, startGateway, type TestGateway } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const OUTCOME_UNKNOWN = /outcome is unknown and the tool may have run/;
/** Longer than any bound asserted here, so a hang shows as a failed bound, not as an SDK timeout. */
const CALL_TIMEOUT = { timeout: 75_000 };
/** What issue 11 asks for: every call caught in the hole answered within this of the heal. */
const AFTER_HEAL_BOUND_MS = 60_000;

type Outcome = { ok: true } | { ok: false; message: string };

/** A gateway with the fixture as a shared server `fx`, a fault relay in front, and a counting file. */
class Setup {
  readonly dir = mkdtempSync(join(tmpdir(), 'mcp-relay-blackhole-'));
  readonly countFile = join(this.dir, 'counts.txt');
  gateway!: TestGateway;
  relay!: FaultRelay;

  async start(limits: Record<string, unknown> = {}): Promise<void> {
    writeFileSync(this.countFile, '');
    this.gateway = await startGateway(
      {
        servers: { fx: fixtureServer('well', { isolation: 'shared' }) },
        sse: { keepAlive: '1s' },
        limits,
      },
      { users: ['alice'] },
    );
    this.relay = await startFaultRelay(Number(new URL(this.gateway.url).port));
  }

  bridge(): Promise<Bridged> {
    return connectThroughBridge(this.relay.url('/mcp/fx'), {
      args: ['--idle-timeout', '3s'],
      env: { MCP_RELAY_TOKEN: this.gateway.keys.alice ?? '' },
    });
  }

  executions(key: string): number {
    return readFileSync(this.countFile, 'utf8')
      .split('\n')
      .filter((line) => line === key).length;
  }

  async count(client: Client, key: string, ms = 0): Promise<Outcome> {
    try {
      await client.callTool(
        { name: 'count', arguments: { key, ms, file: this.countFile } },
        undefined,
        CALL_TIMEOUT,
      );
      return { ok: true };
    } catch (error) {
      return { ok: false, message: (error as Error).message };
    }
  }

  async close(): Promise<void> {
    await this.relay?.close();
    await this.gateway?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('connect: a black hole between connect and the gateway', () => {
  const setup = new Setup();
  let bridged: Bridged;
  let listChanged = 0;
  before(async () => {
    await setup.start();
    bridged = await setup.bridge();
    bridged.client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      listChanged++;
    });
  });
  after(async () => {
    await bridged?.close();
    await setup.close();
  });

  it('the gateway advertises how long it keeps answers and how often it sends keep-alives', async () => {
    const session = await rawSession(`${setup.gateway.url}/mcp/fx`, setup.gateway.keys.alice ?? '');
    const reply = await session.call(1, 'echo', { text: 'hi' });
    assert.equal(reply.headers.get('mcp-relay-retries'), '300');
    assert.equal(reply.headers.get('mcp-relay-keep-alive'), '1');
  });

  it('calls caught in the hole get their real answer after the heal, run once; list_changed flows again', async (t) => {
    assert.deepEqual(await setup.count(bridged.client, 'bh-warm-up'), { ok: true });
    // The GET stream works before the hole.
    await bridged.client.callTool({ name: 'announce', arguments: {} }, undefined, CALL_TIMEOUT);
    await eventually(() => listChanged === 1, 'list_changed before the hole', 30_000);

    // A slow call whose reply has become an SSE stream (after 1 s), then the hole.
    const slow = setup.count(bridged.client, 'bh-slow', 3_000);
    await eventually(() => setup.executions('bh-slow') === 1, 'the slow call to start', 30_000);
    await sleep(1_500);
    setup.relay.setMode('blackhole');
    // A quick call sent into the hole: its POST never reaches the gateway until the network heals.
    const quick = setup.count(bridged.client, 'bh-quick');
    const timed = (call: Promise<Outcome>) => call.then((outcome) => ({ outcome, at: Date.now() }));
    const answers = Promise.all([timed(slow), timed(quick)]);
    await sleep(7_000);
    setup.relay.setMode('pass');
    const healed = Date.now();

    const [slowAnswer, quickAnswer] = await answers;
    const afterHeal = [slowAnswer, quickAnswer].map((answer) => Math.max(0, answer.at - healed));
    t.diagnostic(`answered ${afterHeal.join(' ms, ')} ms after the heal (bound ${AFTER_HEAL_BOUND_MS} ms)`);
    t.diagnostic(`runs: slow ${setup.executions('bh-slow')}, quick ${setup.executions('bh-quick')}`);
    for (const [name, answer] of [
      ['slow', slowAnswer],
      ['quick', quickAnswer],
    ] as const) {
      assert.deepEqual(answer.outcome, { ok: true }, `${name}: ${JSON.stringify(answer.outcome)}`);
      assert.equal(setup.executions(`bh-${name}`), 1, `${name} ran once`);
    }
    for (const ms of afterHeal) assert.ok(ms <= AFTER_HEAL_BOUND_MS, `answered ${ms} ms after the heal`);

    // A list_changed sent after the heal reaches the client: the GET stream came back.
    await bridged.client.callTool({ name: 'announce', arguments: {} }, undefined, CALL_TIMEOUT);
    const waited = await eventually(
      () => listChanged >= 2,
      'list_changed after the heal',
      AFTER_HEAL_BOUND_MS,
    );
    t.diagnostic(`list_changed after the heal arrived ${waited} ms after the announce call returned`);
  });

  it('a flaky network (cut every 150 ms during 60 calls): none runs twice, lost answers are recovered', async (t) => {
    const outcomes = new Map<string, Outcome>();
    const cutter = setInterval(() => setup.relay.cut(), 150);
    try {
      let next = 0;
      const worker = async () => {
        while (next < 60) {
          const key = `flaky-${next++}`;
          outcomes.set(key, await setup.count(bridged.client, key, 40));
        }
      };
      await Promise.all([worker(), worker(), worker()]);
    } finally {
      clearInterval(cutter);
    }
    let ok = 0;
    let honest = 0;
    let twice = 0;
    const wrong: string[] = [];
    for (const [key, outcome] of outcomes) {
      const runs = setup.executions(key);
      if (runs > 1) twice++;
      if (outcome.ok) {
        ok++;
        if (runs !== 1) wrong.push(`${key} answered ok but ran ${runs}×`);
      } else if (OUTCOME_UNKNOWN.test(outcome.message)) honest++;
      else wrong.push(`${key}: ${outcome.message}`);
    }
    t.diagnostic(`flaky: ${ok} ok, ${honest} outcome unknown, ${twice} ran twice`);
    assert.equal(twice, 0);
    assert.deepEqual(wrong, []);
    // Before re-sends, about 18 of 60 lost their answer; each now gets up to 5 more tries.
    assert.ok(ok >= 54, `${ok} of 60 got their real answer`);
  });
});

describe('connect: a gateway that keeps no answers for retries', () => {
  const setup = new Setup();
  let bridged: Bridged;
  before(async () => {
    await setup.start({ retryAnswers: 0 });
    bridged = await setup.bridge();
  });
  after(async () => {
    await bridged?.close();
    await setup.close();
  });

  it('says nothing about retries, and a lost answer stays an honest error, run once', async () => {
    const session = await rawSession(`${setup.gateway.url}/mcp/fx`, setup.gateway.keys.alice ?? '');
    assert.equal((await session.call(1, 'echo', { text: 'hi' })).headers.get('mcp-relay-retries'), null);
    assert.deepEqual(await setup.count(bridged.client, 'none-warm-up'), { ok: true });
    setup.relay.setMode('drop-replies');
    const call = setup.count(bridged.client, 'none-lost');
    try {
      await eventually(() => setup.executions('none-lost') === 1, 'the call to run', 30_000);
    } finally {
      setup.relay.cut();
      setup.relay.setMode('pass');
    }
    const outcome = await call;
    assert.equal(setup.executions('none-lost'), 1);
    assert.match(outcome.ok ? 'ok' : outcome.message, OUTCOME_UNKNOWN);
    assert.match(outcome.ok ? '' : outcome.message, /not sent again/);
  });
});
