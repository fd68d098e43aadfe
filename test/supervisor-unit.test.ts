// The Supervisor in-process, over fake processes and mock timers: restart with backoff, the crash-loop
// cool-down, a process that cannot be started, replacing a useless one, and stopping for good.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { BackendExit, BackendProcess } from '../src/backends/process.ts';
import { Supervisor } from '../src/backends/supervisor.ts';
import { silentLogger } from '../src/log.ts';
import type { JsonRpcMessage } from '../src/protocol/jsonrpc.ts';

/** What the supervisor uses of a BackendProcess, in memory. */
class FakeProcess {
  static count = 0;
  readonly pid = ++FakeProcess.count;
  readonly spec = { server: 'fake' };
  readonly written: JsonRpcMessage[] = [];
  started = false;
  killed = false;
  stopped = false;
  onmessage: (message: JsonRpcMessage) => void = () => {};
  onexit: (exit: BackendExit) => void = () => {};
  get dying(): boolean {
    return this.killed;
  }
  start(): void {
    this.started = true;
  }
  send(message: JsonRpcMessage): boolean {
    this.written.push(message);
    return true;
  }
  kill(): void {
    this.killed = true;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  async finalStderrTail(): Promise<readonly string[]> {
    return [`stderr of ${this.pid}`];
  }
  exit(code = 1): void {
    this.onexit({ code, signal: null });
  }
}

/** Lets the supervisor's awaited spawn and its follow-up run (setImmediate is not mocked). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function supervised(spawnError?: Error, fingerprint?: () => string) {
  const processes: FakeProcess[] = [];
  const events: string[] = [];
  const supervisor = new Supervisor(
    async () => {
      if (spawnError) throw spawnError;
      const process = new FakeProcess();
      processes.push(process);
      return process as unknown as BackendProcess;
    },
    silentLogger,
    fingerprint ? { fingerprint } : {},
  );
  supervisor.onstarted = (restart) => events.push(restart ? 'restarted' : 'started');
  supervisor.ondown = (reason) => events.push(`down: ${reason}`);
  supervisor.onunhealthy = (reason) => events.push(`unhealthy: ${reason}`);
  supervisor.onmessage = (message) => events.push(`message: ${JSON.stringify(message)}`);
  return { supervisor, processes, events };
}

describe('Supervisor (fake processes, mock timers)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
  afterEach(() => mock.timers.reset());

  it('starts a process, passes messages both ways, and restarts it after a crash with a doubling delay', async () => {
    const { supervisor, processes, events } = supervised();
    await supervisor.start();
    assert.equal(supervisor.state, 'running');
    assert.ok(processes[0]?.started);
    assert.ok(supervisor.send({ jsonrpc: '2.0', method: 'x' }));
    assert.equal(processes[0]?.written.length, 1);
    processes[0]?.onmessage({ jsonrpc: '2.0', method: 'y' });
    processes[0]?.exit(1);
    assert.equal(supervisor.state, 'restarting');
    assert.equal(supervisor.send({ jsonrpc: '2.0', method: 'x' }), false, 'nothing is written while down');
    mock.timers.tick(199);
    await settle();
    assert.equal(processes.length, 1);
    mock.timers.tick(1);
    await settle();
    assert.equal(processes.length, 2);
    processes[1]?.exit(1);
    mock.timers.tick(399);
    await settle();
    assert.equal(processes.length, 2, 'the second restart waits twice as long');
    mock.timers.tick(1);
    await settle();
    assert.equal(processes.length, 3);
    assert.deepEqual(events, [
      'started',
      'message: {"jsonrpc":"2.0","method":"y"}',
      'down: backend exited (code 1)',
      'restarted',
      'down: backend exited (code 1)',
      'restarted',
    ]);
  });

  it('marks a crash loop unhealthy for the cool-down, then tries again', async () => {
    const { supervisor, processes, events } = supervised();
    await supervisor.start();
    for (let crash = 0; crash < 5; crash++) {
      processes.at(-1)?.exit(3);
      if (crash === 4) break;
      mock.timers.tick(5_000);
      await settle();
    }
    assert.equal(supervisor.state, 'unhealthy');
    assert.equal(processes.length, 5);
    assert.match(
      events.at(-1) ?? '',
      /^unhealthy: crashed 5 times within 60s \(last: backend exited \(code 3\)\); next attempt in 60s$/,
    );
    await supervisor.start();
    assert.equal(processes.length, 5, 'no attempt during the cool-down');
    mock.timers.tick(30_000);
    assert.match(supervisor.unhealthyReason ?? '', /next attempt in 30s/);
    await supervisor.start();
    assert.equal(processes.length, 5);
    mock.timers.tick(30_000);
    await supervisor.start();
    assert.equal(processes.length, 6);
    assert.equal(supervisor.state, 'running');
  });

  it('gives up at once on a command that cannot be started', async () => {
    const { supervisor, events } = supervised(new Error('spawn ENOENT'));
    await supervisor.start();
    assert.equal(supervisor.state, 'unhealthy');
    assert.deepEqual(events, [
      'down: backend could not be started: spawn ENOENT',
      'unhealthy: backend could not be started: spawn ENOENT; next attempt in 60s',
    ]);
  });

  it('ends a cool-down when it has passed: the reason is gone and the next start tries', async () => {
    const { supervisor, processes } = supervised();
    await supervisor.start();
    for (let crash = 0; crash < 5; crash++) {
      processes.at(-1)?.exit(1);
      mock.timers.tick(5_000);
      await settle();
    }
    assert.equal(supervisor.state, 'unhealthy');
    assert.ok(supervisor.unhealthyReason);
    mock.timers.tick(60_000);
    assert.equal(supervisor.unhealthyReason, undefined, 'no refusal once the cool-down is over');
  });

  it('ends a cool-down at once when the launch fingerprint changes (the script was fixed) or on endCooldown', async () => {
    let onDisk = 'script:missing';
    const { supervisor, processes } = supervised(undefined, () => onDisk);
    await supervisor.start();
    for (let crash = 0; crash < 5; crash++) {
      processes.at(-1)?.exit(1);
      mock.timers.tick(300 * 2 ** crash);
      await settle();
    }
    assert.equal(supervisor.state, 'unhealthy');
    await supervisor.start();
    assert.equal(processes.length, 5, 'nothing changed on disk: still cooling down');
    onDisk = 'script:1234:56:78';
    assert.equal(supervisor.unhealthyReason, undefined);
    await supervisor.start();
    assert.equal(processes.length, 6);
    assert.equal(supervisor.state, 'running');

    const broken = supervised(new Error('spawn ENOENT'));
    await broken.supervisor.start();
    assert.match(broken.supervisor.unhealthyReason ?? '', /ENOENT/);
    broken.supervisor.endCooldown();
    assert.equal(broken.supervisor.unhealthyReason, undefined);
    await broken.supervisor.start();
    assert.equal(broken.events.filter((event) => event.startsWith('down')).length, 2, 'tried again at once');
  });

  it('replaces a useless process now, as a crash, and ignores its later exit', async () => {
    const { supervisor, processes, events } = supervised();
    await supervisor.start();
    const old = processes[0];
    supervisor.replace('backend stopped responding');
    assert.ok(old?.killed);
    assert.deepEqual(events.slice(1), ['down: backend stopped responding']);
    old?.exit(137);
    assert.equal(events.length, 2, 'the killed process’s exit is not a second crash');
    mock.timers.tick(200);
    await settle();
    assert.equal(processes.length, 2);
    assert.equal(events.at(-1), 'restarted');
  });

  it('stops for good: the process is stopped, its exit restarts nothing, stop is idempotent', async () => {
    const { supervisor, processes, events } = supervised();
    await supervisor.start();
    await Promise.all([supervisor.stop(), supervisor.stop()]);
    assert.ok(processes[0]?.stopped);
    processes[0]?.exit(0);
    mock.timers.tick(60_000);
    await settle();
    await supervisor.start();
    assert.equal(processes.length, 1);
    assert.equal(supervisor.state, 'stopped');
    assert.deepEqual(events, ['started']);
  });

  it('runs a second process beside the current one, switches to it, and drains and retires the old one', async () => {
    const { supervisor, processes, events } = supervised();
    const sideExits: string[] = [];
    supervisor.onsideexit = (generation, reason) => sideExits.push(`${generation}: ${reason}`);
    const from: Array<number | undefined> = [];
    await supervisor.start();
    supervisor.onmessage = (_message, generation) => from.push(generation);
    const [old] = processes as [FakeProcess];
    const oldGeneration = supervisor.generation;
    const next = await supervisor.startNext();
    const fresh = processes[1] as FakeProcess;
    assert.ok(fresh.started);
    assert.equal(supervisor.pid, old.pid, 'not switched yet');
    assert.ok(supervisor.send({ jsonrpc: '2.0', method: 'to-new' }, undefined, next));
    assert.equal(fresh.written.length, 1);
    assert.equal(old.written.length, 0);
    fresh.onmessage({ jsonrpc: '2.0', method: 'hi' });
    supervisor.promote(next);
    assert.equal(supervisor.pid, fresh.pid);
    assert.equal(supervisor.generation, next);
    assert.ok(supervisor.send({ jsonrpc: '2.0', method: 'current' }));
    assert.equal(fresh.written.length, 2);
    assert.ok(supervisor.send({ jsonrpc: '2.0', method: 'to-old' }, undefined, oldGeneration));
    assert.equal(old.written.length, 1);
    old.onmessage({ jsonrpc: '2.0', method: 'bye' });
    assert.deepEqual(from, [next, oldGeneration]);
    // The old process exiting while drained is no crash: nothing restarts, it is told as a side exit.
    old.exit(0);
    assert.deepEqual(sideExits, [`${oldGeneration}: backend exited (code 0)`]);
    assert.equal(supervisor.state, 'running');
    assert.deepEqual(await supervisor.retire(oldGeneration), [`stderr of ${old.pid}`]);
    assert.equal(supervisor.send({ jsonrpc: '2.0', method: 'x' }, undefined, oldGeneration), false);
    assert.ok(!events.some((event) => event.startsWith('down')));
    // A candidate that is retired is stopped, its exit not reported; the current one's exit is a crash.
    const third = await supervisor.startNext();
    const candidate = processes[2] as FakeProcess;
    assert.deepEqual(await supervisor.retire(third), [`stderr of ${candidate.pid}`]);
    assert.ok(candidate.stopped);
    candidate.exit(1);
    assert.equal(sideExits.length, 1);
    fresh.exit(1);
    assert.equal(supervisor.state, 'restarting');
    await assert.rejects(supervisor.startNext(), /not running/);
  });
});
