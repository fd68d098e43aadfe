// A graceful restart inside the multiplexer, in-process over a FakeBackend that runs processes beside
// each other under generations: what goes to the new process, what stays with the old one while it
// drains, what the new one learns, and a new process that fails.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { harness, lastBackendId, settle } from './helpers/mux-harness.ts';

const OPTIONS = { startTimeoutMs: 1_000, drainTimeoutMs: 5_000 };

describe('multiplexer graceful restart (in-process)', () => {
  it('initializes the new process like the old, then restores subscriptions and the log level and tells sessions', async () => {
    const { backend, mux, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(1, 'resources/subscribe', { uri: 'file:///a' });
    b.request(1, 'logging/setLevel', { level: 'debug' });
    await settle();
    const restart = mux.restart(OPTIONS);
    await settle();
    await settle();
    const next = backend.generation;
    assert.equal(next, 2, 'switched to the new process');
    const [init] = backend.requestsTo(next, 'initialize');
    assert.deepEqual(init?.params, backend.requestsTo(1, 'initialize')[0]?.params, 'the same initialize');
    assert.equal(backend.notificationsTo(next, 'notifications/initialized').length, 1);
    assert.deepEqual(
      backend.requestsTo(next, 'resources/subscribe').map((r) => r.params),
      [{ uri: 'file:///a' }],
    );
    assert.deepEqual(
      backend.requestsTo(next, 'logging/setLevel').map((r) => r.params),
      [{ level: 'debug' }],
    );
    for (const s of [a, b]) {
      assert.equal(s.calls('notifications/tools/list_changed').length, 1);
      assert.equal(s.calls('notifications/resources/list_changed').length, 1);
      assert.equal(s.calls('notifications/prompts/list_changed').length, 1);
    }
    const outcome = await restart;
    assert.equal(outcome.status, 'restarted');
    assert.deepEqual(backend.retired, [1], 'the old process, with nothing in flight, was stopped');
  });

  it('keeps the old process’s calls, their progress, its sampling and cancellations on it while new calls go to the new one', async () => {
    const { backend, mux, session } = harness('per-user');
    const a = session('alice');
    await a.initialize({ sampling: {} });
    a.request('slow', 'tools/call', { name: 'slow', _meta: { progressToken: 'tok' } });
    a.request('other', 'tools/call', { name: 'other' });
    const slowId = backend.requests('tools/call')[0]?.id;
    const otherId = backend.requests('tools/call')[1]?.id;
    const progressKey = (backend.requests('tools/call')[0]?.params?._meta as { progressToken?: string })
      ?.progressToken;
    const restart = mux.restart(OPTIONS);
    await settle();
    await settle();
    assert.equal(backend.generation, 2);
    // New work goes to the new process.
    a.request('new', 'tools/call', { name: 'fresh' });
    assert.equal(backend.requestsTo(2, 'tools/call').length, 1);
    // The old process still reports progress and asks the client to sample; the answer goes back to it.
    backend.emitFrom(1, {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: progressKey, progress: 1 },
    });
    assert.deepEqual(a.calls('notifications/progress').at(-1), {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'tok', progress: 1 },
    });
    backend.emitFrom(1, { jsonrpc: '2.0', id: 'srv-1', method: 'sampling/createMessage', params: {} });
    const asked = a.calls('sampling/createMessage').at(-1) as { id: string };
    a.send({ jsonrpc: '2.0', id: asked.id, result: { role: 'assistant', content: {} } });
    assert.ok(
      backend.written.some(
        ({ generation, message }) => generation === 1 && 'id' in message && message.id === 'srv-1',
      ),
      'the answer went to the old process',
    );
    // A cancellation of a call on the old process goes to it.
    a.notify('notifications/cancelled', { requestId: 'other' });
    assert.deepEqual(
      backend.notificationsTo(1, 'notifications/cancelled').map((n) => ('params' in n ? n.params : {})),
      [{ requestId: otherId }],
    );
    assert.deepEqual(backend.retired, [], 'still draining');
    backend.answerFrom(1, slowId as number, { result: { content: [] } });
    assert.deepEqual(a.responseTo('slow'), { jsonrpc: '2.0', id: 'slow', result: { content: [] } });
    const outcome = await restart;
    assert.equal(outcome.status, 'restarted');
    assert.equal(outcome.status === 'restarted' && outcome.inFlight, 2);
    assert.equal(outcome.status === 'restarted' && outcome.unfinished, 0);
    assert.deepEqual(backend.retired, [1]);
  });

  it('a session that leaves during the drain has its calls cancelled at the old process, which then stops', async () => {
    const { backend, mux, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    a.request(1, 'tools/call', { name: 'slow' });
    const backendId = lastBackendId(backend, 'tools/call');
    const restart = mux.restart(OPTIONS);
    await settle();
    await settle();
    assert.equal(backend.generation, 2);
    await a.upstream.close();
    assert.deepEqual(
      backend.notificationsTo(1, 'notifications/cancelled').map((n) => ('params' in n ? n.params : {})),
      [{ requestId: backendId, reason: 'the client session ended' }],
    );
    assert.equal(backend.notificationsTo(2, 'notifications/cancelled').length, 0);
    const outcome = await restart;
    assert.equal(outcome.status === 'restarted' && outcome.unfinished, 0);
    assert.deepEqual(backend.retired, [1]);
  });

  it('an old process that dies while draining fails what it still had, at once', async () => {
    const { backend, mux, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    a.request(1, 'tools/call', { name: 'slow' });
    const restart = mux.restart(OPTIONS);
    await settle();
    await settle();
    assert.equal(backend.generation, 2);
    backend.onsideexit?.(1, 'backend exited (SIGKILL)');
    const error = (a.responseTo(1) as { error?: { code: number; message: string } }).error;
    assert.equal(error?.code, -32000);
    assert.equal(
      error?.message,
      'backend exited (SIGKILL) while finishing its calls after a restart; whether the call ran is unknown',
    );
    const outcome = await restart;
    assert.equal(outcome.status === 'restarted' && outcome.unfinished, 1);
    // The new process serves on.
    a.request(2, 'tools/call', { name: 'x' });
    assert.equal(backend.requestsTo(2, 'tools/call').length, 1);
  });

  it('sends a task’s requests to the old process while it drains; at the bound what is left fails as unknown', async () => {
    const { backend, mux, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    a.request(1, 'tools/call', { name: 'long', task: {} });
    backend.answer(lastBackendId(backend, 'tools/call'), {
      result: { task: { taskId: 'T1', status: 'working' } },
    });
    a.request(2, 'tools/call', { name: 'forever' });
    // The drain's timer does not hold the process open (a gateway's listener does): this does.
    const keepAlive = setInterval(() => {}, 1_000);
    const restart = mux.restart({ ...OPTIONS, drainTimeoutMs: 50 });
    await settle();
    await settle();
    a.request(3, 'tasks/result', { taskId: 'T1' });
    assert.equal(backend.requestsTo(1, 'tasks/result').length, 1, 'to the process the task runs on');
    assert.equal(backend.requestsTo(2, 'tasks/result').length, 0);
    const outcome = await restart.finally(() => clearInterval(keepAlive));
    assert.equal(outcome.status === 'restarted' && outcome.unfinished, 2);
    for (const id of [2, 3]) {
      const error = (a.responseTo(id) as { error?: { code: number; message: string } }).error;
      assert.equal(error?.code, -32000);
      assert.match(error?.message ?? '', /whether the call ran is unknown/);
    }
    // The task went with the old process: the session's next look at it is answered as unknown.
    a.request(4, 'tasks/get', { taskId: 'T1' });
    assert.match(JSON.stringify(a.responseTo(4)), /Task not found/);
  });

  it('a new process that refuses initialize is stopped and the old one goes on serving', async () => {
    const { backend, mux, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    backend.nextInitialize = { error: { code: -32603, message: 'boom' } };
    const outcome = await mux.restart(OPTIONS);
    assert.deepEqual(outcome, {
      status: 'failed',
      reason: 'refused initialize: boom',
      stderr: ['stderr of 2'],
    });
    assert.equal(backend.generation, 1);
    assert.deepEqual(backend.retired, [2]);
    assert.equal(a.calls('notifications/tools/list_changed').length, 0);
    a.request(1, 'tools/call', { name: 'x' });
    assert.equal(backend.requestsTo(1, 'tools/call').length, 1);
    // A new process that never answers fails at the start timeout.
    backend.nextInitialize = null;
    const silent = await mux.restart({ ...OPTIONS, startTimeoutMs: 30 });
    assert.equal(silent.status === 'failed' && silent.reason, 'did not answer initialize within 0.03 s');
    assert.equal(backend.generation, 1);
  });

  it('a new process that exits before answering is reported with why, and a second restart waits its turn', async () => {
    const { backend, mux, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    backend.nextInitialize = null;
    const first = mux.restart(OPTIONS);
    const second = await mux.restart(OPTIONS);
    assert.deepEqual(second, { status: 'skipped', reason: 'a restart of this backend is already under way' });
    await settle();
    backend.onsideexit?.(2, 'backend exited (code 2)');
    const outcome = await first;
    assert.equal(
      outcome.status === 'failed' && outcome.reason,
      'backend exited (code 2) before answering initialize',
    );
  });
});
