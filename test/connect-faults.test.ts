// `mcp-relay connect` under faults, end to end: the SDK stdio client → connect → (a fault relay) → a
// real `mcp-relay serve` child → the fixture backend's counting tool, whose counts live in a file so
// they survive a gateway restart. Nothing may run twice; a lost answer is fetched again in its session
// (the gateway keeps it) or said to be lost when the session is gone; a restart is
// waited out; a third-party server's 400 "No valid session ID" starts a new session.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type Bridged, connectThroughBridge } from './helpers/cli.ts';
import { type FaultRelay, startFaultRelay } from './helpers/fault-relay.ts';
import { FIXTURE_SERVER } from './helpers/gateway.ts';
import { freePort } from './helpers/ports.ts';
import { type ServeProcess, startServe } from './helpers/serve.ts';
import { eventually } from './helpers/wait.ts';

/** What the bridge answers for a request that may have run: it must say both things. */
const OUTCOME_UNKNOWN = /outcome is unknown and the tool may have run/;
const CALL_TIMEOUT = { timeout: 60_000 };

/** A gateway on a fixed port with the fixture backend as `fx`, restartable by the test. */
class Gateway {
  readonly dir = mkdtempSync(join(tmpdir(), 'mcp-relay-faults-'));
  readonly countFile = join(this.dir, 'counts.txt');
  readonly port: number;
  serve: ServeProcess | undefined;

  constructor(port: number) {
    this.port = port;
    writeFileSync(
      join(this.dir, 'relay.yaml'),
      [
        `listen: { host: 127.0.0.1, port: ${port} }`,
        'servers:',
        '  fx:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(FIXTURE_SERVER)}]`,
        '',
      ].join('\n'),
    );
    writeFileSync(this.countFile, '');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp/fx`;
  }

  async start(): Promise<void> {
    this.serve = await startServe(join(this.dir, 'relay.yaml'));
  }

  /** SIGKILL: no goodbye to anyone, as a crash or an OOM kill. */
  async kill(): Promise<void> {
    const child = this.serve?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** How often `key` ran, across every gateway and backend process so far. */
  executions(key: string): number {
    return readFileSync(this.countFile, 'utf8')
      .split('\n')
      .filter((line) => line === key).length;
  }

  async close(): Promise<void> {
    await this.serve?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

type Outcome = { ok: true } | { ok: false; message: string };

async function count(client: Client, gateway: Gateway, key: string, ms = 0): Promise<Outcome> {
  try {
    await client.callTool(
      { name: 'count', arguments: { key, ms, file: gateway.countFile } },
      undefined,
      CALL_TIMEOUT,
    );
    return { ok: true };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}

/** Runs `calls` counting calls, `concurrency` at a time, each with its own key. */
async function countLoop(
  client: Client,
  gateway: Gateway,
  prefix: string,
  calls: number,
  concurrency: number,
  ms = 0,
): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>();
  let next = 0;
  const worker = async () => {
    while (next < calls) {
      const key = `${prefix}-${next++}`;
      outcomes.set(key, await count(client, gateway, key, ms));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcomes;
}

/**
 * Calls run twice, calls answered ok or with the honest error, any other failure (by message), and
 * answers that do not match what ran (ok but not run once, another failure although it ran).
 */
function tally(gateway: Gateway, outcomes: Map<string, Outcome>) {
  let twice = 0;
  let honest = 0;
  let ok = 0;
  const other: string[] = [];
  const mismatched: string[] = [];
  for (const [key, outcome] of outcomes) {
    const runs = gateway.executions(key);
    if (runs > 1) twice++;
    if (outcome.ok) {
      ok++;
      if (runs !== 1) mismatched.push(`${key} answered ok but ran ${runs}×`);
    } else if (OUTCOME_UNKNOWN.test(outcome.message)) honest++;
    else {
      other.push(outcome.message);
      if (runs !== 0) mismatched.push(`${key} failed with "${outcome.message}" but ran ${runs}×`);
    }
  }
  return { ok, twice, honest, other, mismatched };
}

describe('connect: a gateway killed or restarted under it', () => {
  let gateway: Gateway;
  let bridged: Bridged;
  before(async () => {
    gateway = new Gateway(await freePort());
    await gateway.start();
    bridged = await connectThroughBridge(gateway.url);
  });
  after(async () => {
    await bridged?.close();
    await gateway?.close();
  });

  for (const [reply, ms] of [
    ['JSON', 700],
    ['SSE', 4_000],
  ] as const) {
    it(`SIGKILL mid-call (${reply} reply): the call is not re-sent and says its outcome is unknown`, async (t) => {
      const key = `kill-${reply}`;
      const call = count(bridged.client, gateway, key, ms);
      await eventually(() => gateway.executions(key) === 1, `${key} to start`);
      // An SSE reply starts after a second; kill once it has, so the stream itself is cut.
      if (reply === 'SSE') await new Promise((resolve) => setTimeout(resolve, 1_500));
      await gateway.kill();
      await gateway.start();
      const outcome = await call;
      // The next call rides on a new session once the bridge re-initialized.
      const after = await count(bridged.client, gateway, `${key}-after`);
      t.diagnostic(`${key}: ran ${gateway.executions(key)}×, answer: ${outcome.ok ? 'ok' : outcome.message}`);
      assert.equal(gateway.executions(key), 1, 'the call ran exactly once');
      assert.equal(outcome.ok, false);
      assert.match(outcome.ok ? '' : outcome.message, OUTCOME_UNKNOWN);
      assert.deepEqual(after, { ok: true });
    });
  }

  it('a restart during 300 quick calls: none refused for a missing session id, none run twice', async (t) => {
    const loop = countLoop(bridged.client, gateway, 'loop', 300, 6);
    await eventually(() => gateway.executions('loop-100') === 1, 'a third of the calls');
    await gateway.kill();
    await gateway.start();
    const outcomes = await loop;
    const { ok, twice, honest, other, mismatched } = tally(gateway, outcomes);
    const missingSession = other.filter((message) => /Mcp-Session-Id header is required/.test(message));
    t.diagnostic(`300 calls over a restart: ${ok} ok, ${honest} outcome unknown, ${twice} ran twice`);
    t.diagnostic(`${missingSession.length} refused for a missing session id; ${other.length} other failures`);
    t.diagnostic(`other failures: ${JSON.stringify([...new Set(other)].slice(0, 3))}`);
    assert.equal(twice, 0);
    assert.deepEqual(mismatched, []);
    assert.deepEqual(other, [], 'no call failed for any other reason (no 400, no give-up)');
    assert.ok(honest <= 6, 'only the calls in flight at the kill are in doubt');
  });

  it('calls made during a 3 s outage wait for the gateway and then succeed', async (t) => {
    await gateway.serve?.stop();
    const started = Date.now();
    const calls = [0, 1, 2].map(async (index) => {
      const outcome = await count(bridged.client, gateway, `outage-${index}`);
      return { outcome, waitedMs: Date.now() - started };
    });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await gateway.start();
    const backMs = Date.now() - started;
    const results = await Promise.all(calls);
    const waits = results.map((result) => result.waitedMs).join(', ');
    t.diagnostic(`outage: the gateway was back after ${backMs} ms; the calls waited ${waits} ms`);
    for (const [index, { outcome }] of results.entries()) {
      assert.deepEqual(outcome, { ok: true }, `call ${index}: ${outcome.ok ? '' : outcome.message}`);
      assert.equal(gateway.executions(`outage-${index}`), 1);
    }
  });
});

describe('connect: a network that loses answers', () => {
  let gateway: Gateway;
  let relay: FaultRelay;
  let bridged: Bridged;
  before(async () => {
    gateway = new Gateway(await freePort());
    await gateway.start();
    relay = await startFaultRelay(gateway.port);
    bridged = await connectThroughBridge(relay.url('/mcp/fx'));
  });
  after(async () => {
    await bridged?.close();
    await relay?.close();
    await gateway?.close();
  });

  it('a lost answer (replies dropped, then the connection cut) is sent again in its session and runs once', async (t) => {
    // The SDK client lists tools before its first call: that answer must not be the one lost.
    assert.deepEqual(await count(bridged.client, gateway, 'lost-warm-up'), { ok: true });
    const outcomes: Outcome[] = [];
    for (let index = 0; index < 5; index++) {
      const key = `lost-${index}`;
      relay.setMode('drop-replies');
      const call = count(bridged.client, gateway, key);
      try {
        await eventually(() => gateway.executions(key) === 1, `${key} to run`);
      } finally {
        relay.cut();
        relay.setMode('pass');
      }
      outcomes.push(await call);
    }
    const twice = outcomes.filter((_, index) => gateway.executions(`lost-${index}`) > 1).length;
    t.diagnostic(`lost answers: ${twice} of 5 ran twice`);
    assert.equal(twice, 0);
    // The gateway keeps answers for a repeat (Mcp-Relay-Retries): the re-send gets the real one.
    for (const outcome of outcomes) assert.deepEqual(outcome, { ok: true });
    assert.deepEqual(await count(bridged.client, gateway, 'lost-after'), { ok: true });
  });

  it('a flaky network (cut every 150 ms): no call runs twice, every failure says why', async (t) => {
    const cutter = setInterval(() => relay.cut(), 150);
    let outcomes: Map<string, Outcome>;
    try {
      outcomes = await countLoop(bridged.client, gateway, 'flaky', 60, 3, 40);
    } finally {
      clearInterval(cutter);
    }
    const { ok, twice, honest, other, mismatched } = tally(gateway, outcomes);
    t.diagnostic(`flaky: ${ok} ok, ${honest} outcome unknown, ${twice} ran twice, ${other.length} other`);
    t.diagnostic(`other failures: ${JSON.stringify([...new Set(other)].slice(0, 3))}`);
    assert.equal(twice, 0);
    assert.deepEqual(mismatched, []);
    assert.deepEqual(await count(bridged.client, gateway, 'flaky-after'), { ok: true });
  });
});

/** The installed server-everything's bin script. */
function everythingEntry(): string {
  const packageJson = createRequire(import.meta.url).resolve(
    '@modelcontextprotocol/server-everything/package.json',
  );
  const { bin } = JSON.parse(readFileSync(packageJson, 'utf8')) as { bin: Record<string, string> };
  return join(dirname(packageJson), bin['mcp-server-everything'] as string);
}

/** server-everything's own Streamable HTTP server (express + the SDK's transport) on `port`. */
async function startEverything(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [everythingEntry(), 'streamableHttp'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  await eventually(() => /listening on port/.test(stderr) || child.exitCode !== null, 'server-everything');
  assert.equal(child.exitCode, null, `server-everything exited:\n${stderr}`);
  return child;
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

describe('connect: a third-party server that forgets sessions with 400 "No valid session ID"', () => {
  let everything: ChildProcess | undefined;
  let bridged: Bridged | undefined;
  after(async () => {
    await bridged?.close();
    await stopProcess(everything);
  });

  it('starts a new session after the server restarts, and the call succeeds', async () => {
    const port = await freePort();
    everything = await startEverything(port);
    bridged = await connectThroughBridge(`http://127.0.0.1:${port}/mcp`);
    const echo = () =>
      bridged?.client.callTool({ name: 'echo', arguments: { message: 'hi' } }, undefined, CALL_TIMEOUT);
    assert.match(JSON.stringify(await echo()), /Echo: hi/);
    await stopProcess(everything);
    everything = await startEverything(port);
    assert.match(JSON.stringify(await echo()), /Echo: hi/);
    assert.match(bridged.stderr(), /starting a new one/);
  });
});
