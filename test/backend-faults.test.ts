// A backend that hangs (SIGSTOP) or dies (kill -9) under load: hung ones are detected by the
// liveness ping and replaced, their calls failed with an error that says so; a call that arrives
// right after a kill -9 waits for the restart instead of failing.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { BackendProcess, statSaysDying } from '../src/backends/process.ts';
import { Supervisor } from '../src/backends/supervisor.ts';
import { silentLogger } from '../src/log.ts';
import { Multiplexer } from '../src/mux/multiplexer.ts';
import type { JsonRpcMessage, JsonRpcResponse } from '../src/protocol/jsonrpc.ts';
import {
  connectClient,
  FIXTURE_SERVER,
  fixtureServer,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';

interface ServerHealth {
  unresponsive: number;
  hangs: number;
  lastHang?: { at: string; reason: string };
}

async function health(url: string, server: string): Promise<ServerHealth> {
  const response = await fetch(`${url}/healthz`);
  const body = (await response.json()) as { servers: Record<string, ServerHealth> };
  return body.servers[server] as ServerHealth;
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

describe('a hung backend (SIGSTOP)', () => {
  let gateway: TestGateway;
  let stopped: number | undefined;

  before(async () => {
    gateway = await startGateway(
      {
        servers: {
          shared: fixtureServer('well', {
            isolation: 'shared',
            livenessTimeout: '2s',
            requestTimeout: '40s',
          }),
          slow: fixtureServer('hang', { isolation: 'shared', livenessTimeout: '1s' }),
        },
      },
      { users: ['alice', 'bob'] },
    );
  });

  after(async () => {
    if (stopped !== undefined) tryKill(stopped, 'SIGCONT');
    await gateway.close();
  });

  it('fails the calls in flight, says so in /healthz, and a new process serves the next call', async () => {
    const url = `${gateway.url}/mcp/shared`;
    const { client: alice } = await connectClient(url, gateway.keys.alice);
    const { client: bob } = await connectClient(url, gateway.keys.bob);
    const pid = Number(textOf(await alice.callTool({ name: 'pid', arguments: {} })));
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    const calls = [alice, bob, alice].map((client, index) =>
      client
        .callTool({ name: 'echo', arguments: { text: `in flight ${index}` } }, undefined, { timeout: 60_000 })
        .then(
          () => 'answered',
          (error: Error) => error.message,
        ),
    );
    // While the backend is silent, /healthz shows it pinged and unanswered, then replaced.
    let sawUnresponsive = false;
    let seen: ServerHealth | undefined;
    for (let tries = 0; tries < 300; tries++) {
      seen = await health(gateway.url, 'shared');
      sawUnresponsive ||= seen.unresponsive > 0;
      if (seen.hangs > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const outcomes = await Promise.all(calls);
    for (const outcome of outcomes)
      assert.match(outcome, /stopped responding.*whether the call ran is unknown/);
    assert.equal(seen?.hangs, 1);
    assert.match(seen?.lastHang?.reason ?? '', /no output for \ds/);
    assert.ok(sawUnresponsive, 'the ping window showed in /healthz');
    const next = Number(textOf(await bob.callTool({ name: 'pid', arguments: {} })));
    assert.notEqual(next, pid);
    // SIGKILL reached the stopped process: it is gone, not left frozen.
    assert.throws(() => readFileSync(`/proc/${pid}/status`));
    await alice.close();
    await bob.close();
  });

  it('leaves a backend alone that answers the ping while a call takes long', async () => {
    const url = `${gateway.url}/mcp/slow`;
    const { client } = await connectClient(url, gateway.keys.alice);
    const controller = new AbortController();
    const call = client
      .callTool({ name: 'echo', arguments: {} }, undefined, { signal: controller.signal })
      .catch(() => 'aborted');
    // Three times the liveness timeout: the ping keeps proving the process alive.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const seen = await health(gateway.url, 'slow');
    assert.equal(seen.hangs, 0);
    controller.abort();
    assert.equal(await call, 'aborted');
    await client.close();
  });
});

/** A multiplexer over one real fixture process, with a session link that collects answers by id. */
async function startMux() {
  const supervisor = new Supervisor(
    async () =>
      new BackendProcess(
        {
          server: 'fixture',
          command: process.execPath,
          args: [FIXTURE_SERVER, 'well'],
          cwd: tmpdir(),
          env: {},
        },
        silentLogger,
      ),
    silentLogger,
    // Many kills in a row must not trip the crash-loop guard: that is not what is tested here.
    {
      policy: {
        initialDelayMs: 20,
        maxDelayMs: 20,
        crashLimit: 1_000,
        crashWindowMs: 60_000,
        cooldownMs: 60_000,
      },
    },
  );
  const mux = new Multiplexer(supervisor, {
    server: 'fixture',
    mode: 'shared',
    log: silentLogger,
    onEmpty: () => {},
  });
  const waiters = new Map<string | number, (response: JsonRpcResponse) => void>();
  const link = mux.attach(
    {
      deliver(message: JsonRpcMessage) {
        if ('id' in message && !('method' in message) && message.id !== null)
          waiters.get(message.id)?.(message);
      },
    },
    'alice',
  );
  let nextId = 1;
  const request = (method: string, params: Record<string, unknown>) => {
    const id = nextId++;
    const answer = new Promise<JsonRpcResponse>((resolve) => waiters.set(id, resolve));
    link.send({ jsonrpc: '2.0', id, method, params });
    return answer;
  };
  await request('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 't', version: '1' },
  });
  return { mux, supervisor, request };
}

describe('a call right after a kill -9', () => {
  it('waits for the restart instead of failing, in every round', async () => {
    // The supervisor's restart timer does not hold the process open (a gateway's listener does): this does.
    const keepAlive = setInterval(() => {}, 1_000);
    const { supervisor, request } = await startMux();
    const rounds = 25;
    const failures: string[] = [];
    try {
      for (let round = 0; round < rounds; round++) {
        const pid = supervisor.pid;
        assert.ok(pid, `round ${round}: ${supervisor.state}; failures so far: ${failures.join(' | ')}`);
        process.kill(pid, 'SIGKILL');
        // Sent in the same tick: the gateway has not seen the exit, and the process will never read it.
        const answer = await request('tools/call', { name: 'pid', arguments: {} });
        if ('error' in answer) failures.push(answer.error.message);
        else assert.notEqual(Number(textOf(answer.result)), pid);
      }
    } finally {
      clearInterval(keepAlive);
      await supervisor.stop();
    }
    assert.deepEqual(failures, []);
  });

  it('through the gateway, a call at once after each kill is answered', async () => {
    // Several servers so the rounds stay under each one's crash-loop limit (5 exits a minute).
    const servers = ['a', 'b', 'c', 'd', 'e'];
    const gateway = await startGateway(
      {
        servers: Object.fromEntries(
          servers.map((name) => [name, fixtureServer('well', { isolation: 'shared' })]),
        ),
      },
      { users: ['alice'] },
    );
    const failures: string[] = [];
    let rounds = 0;
    try {
      await Promise.all(
        servers.map(async (name) => {
          const { client } = await connectClient(`${gateway.url}/mcp/${name}`, gateway.keys.alice);
          for (let round = 0; round < 4; round++) {
            const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
            process.kill(pid, 'SIGKILL');
            try {
              const next = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
              assert.notEqual(next, pid);
            } catch (error) {
              failures.push((error as Error).message);
            }
            rounds++;
          }
          await client.close();
        }),
      );
    } finally {
      await gateway.close();
    }
    assert.equal(rounds, 20);
    assert.deepEqual(failures, []);
  });
});

describe('statSaysDying', () => {
  const line = (state: string, flags: number, pending: number) =>
    `42 (odd) name) ${state} 1 42 42 0 -1 ${flags} 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1 1 1 ${pending} 0 0 0 0`;
  it('reads the state, PF_EXITING and a pending SIGKILL, past a name with ") " in it', () => {
    assert.equal(statSaysDying(line('S', 4194304, 0)), false);
    assert.equal(statSaysDying(line('T', 4194304, 0)), false);
    assert.equal(statSaysDying(line('Z', 4194304, 0)), true);
    assert.equal(statSaysDying(line('R', 4194304 | 4, 0)), true);
    assert.equal(statSaysDying(line('S', 4194304, 256)), true);
    assert.equal(statSaysDying(line('S', 4194304, 2)), false);
  });
});

describe('writes to a backend process', () => {
  /** `cat` as the backend: every line written to it comes back, so what reached it is seen. */
  async function startCat() {
    const backend = new BackendProcess(
      { server: 'cat', command: 'cat', args: [], cwd: tmpdir(), env: {} },
      silentLogger,
    );
    const echoed: JsonRpcMessage[] = [];
    backend.onmessage = (message) => echoed.push(message);
    const exited = new Promise<void>((resolve) => {
      backend.onexit = () => resolve();
    });
    backend.start();
    return { backend, echoed, exited };
  }
  const written = (send: (onWritten: (failed: boolean) => void) => boolean) =>
    new Promise<boolean>((resolve, reject) => {
      if (!send((failed) => resolve(failed))) reject(new Error('not taken'));
    });
  const waitFor = async (check: () => boolean) => {
    for (let tries = 0; tries < 200 && !check(); tries++) await new Promise((r) => setTimeout(r, 10));
  };

  it('writes what one turn sent, in order, each write reported', async () => {
    const { backend, echoed, exited } = await startCat();
    const outcomes = Array.from({ length: 50 }, (_, id) =>
      written((onWritten) =>
        backend.send(
          { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'n', arguments: { id } } },
          onWritten,
        ),
      ),
    );
    backend.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.deepEqual(await Promise.all(outcomes), Array(50).fill(false));
    await waitFor(() => echoed.length === 51);
    assert.deepEqual(
      echoed.map((message) => ('id' in message ? message.id : 'note')),
      [...Array.from({ length: 50 }, (_, id) => id), 'note'],
    );
    await backend.stop();
    await exited;
  });

  it('leaves out a request sent in the turn of its kill -9, and says it never reached the process', async () => {
    const { backend, exited } = await startCat();
    assert.equal(
      await written((onWritten) => backend.send({ jsonrpc: '2.0', id: 0, method: 'ping' }, onWritten)),
      false,
    );
    backend.kill();
    const failed = await written((onWritten) =>
      backend.send({ jsonrpc: '2.0', id: 1, method: 'ping' }, onWritten),
    );
    assert.equal(failed, true);
    await exited;
    assert.equal(backend.send({ jsonrpc: '2.0', id: 2, method: 'ping' }), false);
  });

  it('writes what was sent before a stop ahead of closing stdin', async () => {
    const { backend, echoed, exited } = await startCat();
    backend.send({ jsonrpc: '2.0', id: 7, method: 'ping' });
    await backend.stop();
    await exited;
    assert.deepEqual(
      echoed.map((message) => ('id' in message ? message.id : undefined)),
      [7],
    );
  });
});
