// The multiplexer's state across time, in-process over a FakeBackend: tasks owned per session,
// subscriptions counted per URI (and held for other replicas), a backend that goes down, restarts, crash-loops or stops responding.

import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { silentLogger } from '../src/log.ts';
import { Multiplexer } from '../src/mux/multiplexer.ts';
import type { JsonRpcRequest } from '../src/protocol/jsonrpc.ts';
import { FakeBackend } from './helpers/fake-backend.ts';
import { harness, lastBackendId, settle, TestSession } from './helpers/mux-harness.ts';

function errorOf(response: unknown): { code: number; message: string } | undefined {
  return (response as { error?: { code: number; message: string } } | undefined)?.error;
}

describe('multiplexer tasks and subscriptions (in-process)', () => {
  it('scopes tasks to the session that created them', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(1, 'tools/call', { name: 'long', task: {} });
    backend.answer(lastBackendId(backend, 'tools/call'), {
      result: { task: { taskId: 'T1', status: 'working' } },
    });
    b.request(2, 'tasks/get', { taskId: 'T1' });
    assert.match(errorOf(b.responseTo(2))?.message ?? '', /Task not found: "T1"/);
    assert.equal(backend.requests('tasks/get').length, 0, 'another session’s task never reaches the backend');
    a.request(2, 'tasks/get', { taskId: 'T1' });
    assert.equal(backend.requests('tasks/get').length, 1);
    b.request(3, 'tasks/list');
    backend.answer(lastBackendId(backend, 'tasks/list'), {
      result: { tasks: [{ taskId: 'T1' }, { taskId: 'T9' }] },
    });
    assert.deepEqual((b.responseTo(3) as { result?: unknown }).result, { tasks: [] });
    backend.emit({ jsonrpc: '2.0', method: 'notifications/tasks/status', params: { taskId: 'T1' } });
    assert.equal(a.calls('notifications/tasks/status').length, 1);
    assert.equal(b.calls('notifications/tasks/status').length, 0);
    // A message naming the task has a certain owner, even on a backend several users worked on.
    backend.emit({
      jsonrpc: '2.0',
      method: 'notifications/message',
      params: {
        level: 'info',
        data: 'x',
        _meta: { 'io.modelcontextprotocol/related-task': { taskId: 'T1' } },
      },
    });
    assert.equal(a.calls('notifications/message').length, 1);
    assert.equal(b.calls('notifications/message').length, 0);
  });

  it('subscribes the backend once per URI and unsubscribes it when the last session leaves', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(1, 'resources/subscribe', { uri: 'file:///x' });
    await settle();
    b.request(1, 'resources/subscribe', { uri: 'file:///x' });
    assert.equal(backend.requests('resources/subscribe').length, 1);
    assert.deepEqual(b.responseTo(1), { jsonrpc: '2.0', id: 1, result: {} });
    assert.deepEqual(a.responseTo(1), { jsonrpc: '2.0', id: 1, result: {} });
    backend.emit({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'file:///x' } });
    assert.equal(a.calls('notifications/resources/updated').length, 1);
    assert.equal(b.calls('notifications/resources/updated').length, 1);
    a.request(2, 'resources/unsubscribe', { uri: 'file:///x' });
    assert.equal(backend.requests('resources/unsubscribe').length, 0);
    assert.deepEqual(a.responseTo(2), { jsonrpc: '2.0', id: 2, result: {} });
    await b.upstream.close();
    assert.equal(
      backend.requests('resources/unsubscribe').length,
      1,
      'the last subscriber’s detach unsubscribes',
    );
  });

  it('forgets a subscription the backend refused', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    backend.handlers.set('resources/subscribe', () => ({
      error: { code: -32602, message: 'no such resource' },
    }));
    a.request(1, 'resources/subscribe', { uri: 'file:///nope' });
    await settle();
    assert.equal(errorOf(a.responseTo(1))?.code, -32602);
    a.request(2, 'resources/subscribe', { uri: 'file:///nope' });
    assert.equal(
      backend.requests('resources/subscribe').length,
      2,
      'asked again, not answered from a stale count',
    );
  });
});

describe('multiplexer lifecycle (in-process)', () => {
  it('queues calls sent before the backend is initialized and forwards them after', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    a.request('init', 'initialize', { protocolVersion: '2025-11-25', capabilities: {} });
    a.request(1, 'tools/list');
    assert.equal(backend.requests('tools/list').length, 0);
    await settle();
    assert.equal(backend.requests('tools/list').length, 1);
    assert.equal(backend.starts, 1);
  });

  it('initializes a backend whose first initialize came while it was still being spawned', async () => {
    // The channel says running from the start of a launch; until the process exists, writes fail. A
    // second session's initialize in that window must not leave the handshake waiting forever.
    const { backend, session } = harness('per-user');
    const a = session('alice');
    const b = session('alice');
    a.request('init', 'initialize', { protocolVersion: '2025-11-25', capabilities: {} });
    backend.refuseWrites = true;
    b.request('init', 'initialize', { protocolVersion: '2025-11-25', capabilities: {} });
    backend.refuseWrites = false;
    await settle();
    assert.ok(a.responseTo('init') && 'result' in (a.responseTo('init') as object));
    assert.ok(b.responseTo('init') && 'result' in (b.responseTo('init') as object));
    assert.equal(backend.requests('initialize').length, 1);
  });

  it('holds subscriptions for other replicas beside its sessions’ own: kept while either wants a URI, restored after a restart', async () => {
    const backend = new FakeBackend();
    const reported: string[][] = [];
    const mux = new Multiplexer(backend, {
      server: 's',
      mode: 'shared',
      log: silentLogger,
      onEmpty: () => {},
      onSubscriptions: (uris) => reported.push(uris),
    });
    const uris = (method: string) => backend.requests(method).map((request) => request.params?.uri);
    // Held before the backend ever started: the first process is subscribed once it is initialized.
    mux.hold(new Set(['file:///held']));
    const a = new TestSession(mux, 'alice');
    await a.initialize();
    assert.deepEqual(uris('resources/subscribe'), ['file:///held']);
    // A session's own subscription is reported (a cluster announces it) and outlives nothing held.
    a.request(1, 'resources/subscribe', { uri: 'file:///held' });
    a.request(2, 'resources/subscribe', { uri: 'file:///mine' });
    await settle();
    a.request(3, 'resources/unsubscribe', { uri: 'file:///held' });
    await settle();
    assert.deepEqual(reported, [['file:///held'], ['file:///held', 'file:///mine'], ['file:///mine']]);
    assert.deepEqual(uris('resources/unsubscribe'), [], 'still held for another replica');
    assert.ok(a.responseTo(3) && 'result' in (a.responseTo(3) as object));
    // An update of a held URI reaches no session here (the fan-out carries it to the replica that wants it).
    backend.emit({
      jsonrpc: '2.0',
      method: 'notifications/resources/updated',
      params: { uri: 'file:///held' },
    });
    assert.equal(a.calls('notifications/resources/updated').length, 0);
    // No longer held: let go; a URI a session here has stays subscribed.
    mux.hold(new Set(['file:///mine', 'file:///other']));
    assert.deepEqual(uris('resources/unsubscribe'), ['file:///held']);
    assert.deepEqual(uris('resources/subscribe').slice(3), ['file:///other']);
    backend.down();
    backend.restart();
    await settle();
    assert.deepEqual(uris('resources/subscribe').slice(4).sort(), ['file:///mine', 'file:///other']);
    mux.hold(new Set());
    assert.deepEqual(uris('resources/unsubscribe'), ['file:///held', 'file:///other']);
  });

  it('reports its sessions’ subscriptions with the users taking turns, so a bounded announcement holds some of each', async () => {
    const reported: string[][] = [];
    const mux = new Multiplexer(new FakeBackend(), {
      server: 's',
      mode: 'shared',
      log: silentLogger,
      onEmpty: () => {},
      onSubscriptions: (uris) => reported.push(uris),
    });
    const alice = [new TestSession(mux, 'alice'), new TestSession(mux, 'alice')];
    const bob = new TestSession(mux, 'bob');
    for (const session of [...alice, bob]) await session.initialize();
    for (const [index, uri] of ['a1', 'a2', 'a3'].entries())
      alice[index % 2]?.request(index, 'resources/subscribe', { uri: `file:///${uri}` });
    bob.request(1, 'resources/subscribe', { uri: 'file:///b1' });
    bob.request(2, 'resources/subscribe', { uri: 'file:///a2' });
    await settle();
    // Alice's three (over two sessions) and Bob's two, one of them also Alice's: each URI once.
    assert.deepEqual(reported.at(-1), ['file:///a1', 'file:///b1', 'file:///a2', 'file:///a3']);
  });

  it('fails calls in flight when the backend goes down, then re-initializes and restores the sessions’ state', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(1, 'resources/subscribe', { uri: 'file:///x' });
    b.request(1, 'logging/setLevel', { level: 'warning' });
    await settle();
    b.request(2, 'tools/call', { name: 'sleep' });
    await settle(); // its write reached the process
    backend.down('backend exited (code 1)');
    assert.deepEqual(errorOf(b.responseTo(2)), {
      code: -32000,
      message: 'backend exited (code 1); it is being restarted',
    });
    a.request(3, 'tools/call', { name: 'echo' });
    assert.equal(backend.requests('tools/call').length, 1, 'held until the new process is initialized');
    backend.restart();
    await settle();
    assert.equal(backend.requests('initialize').length, 2);
    assert.equal(backend.requests('resources/subscribe').length, 2, 'the subscription is restored');
    assert.deepEqual(backend.requests('logging/setLevel').at(-1)?.params, { level: 'warning' });
    assert.equal(backend.requests('tools/call').length, 2, 'the held call goes to the new process');
    for (const s of [a, b]) {
      assert.equal(s.calls('notifications/tools/list_changed').length, 1);
      assert.equal(s.calls('notifications/resources/list_changed').length, 1);
      assert.equal(s.calls('notifications/prompts/list_changed').length, 1);
    }
  });

  it('answers waiting sessions with the reason when the backend crash-loops, and refuses new ones', async () => {
    const h = harness('shared');
    const a = h.session('alice');
    h.backend.handlers.delete('initialize');
    a.request('init', 'initialize', { protocolVersion: '2025-11-25', capabilities: {} });
    await settle();
    h.backend.crashLoop('crashed 5 times within 60s');
    assert.equal(h.unhealthy.length, 1);
    assert.match(errorOf(a.responseTo('init'))?.message ?? '', /^server "s" is unavailable: crashed 5 times/);
    const b = h.session('bob');
    b.request('init', 'initialize', { protocolVersion: '2025-11-25', capabilities: {} });
    assert.match(
      errorOf(b.responseTo('init'))?.message ?? '',
      /unavailable: crashed 5 times .* next attempt in 60s/,
    );
    assert.equal(h.mux.healthy, false);
  });

  it('sends a request whose write was refused to the next process, replacing the one that stopped reading', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    await a.initialize();
    backend.refuseWrites = true;
    a.request(1, 'tools/call', { name: 'echo' });
    assert.equal(backend.replaced.length, 1);
    assert.match(backend.replaced[0] ?? '', /stopped taking input/);
    assert.equal(a.responseTo(1), undefined, 'not failed: it never reached a process');
    backend.refuseWrites = false;
    backend.restart();
    await settle();
    const call = backend.requests('tools/call')[0] as JsonRpcRequest;
    backend.answer(call.id, { result: { ok: true } });
    assert.deepEqual(a.responseTo(1), { jsonrpc: '2.0', id: 1, result: { ok: true } });
  });

  it('pings a backend silent with calls pending and replaces it when the ping goes unanswered', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const { backend, session, mux } = harness('shared', 2_000);
      const a = session('alice');
      a.request('init', 'initialize', { protocolVersion: '2025-11-25', capabilities: {} });
      await backend.start();
      await Promise.resolve();
      await Promise.resolve();
      a.request(1, 'tools/call', { name: 'sleep' });
      await settle();
      assert.ok(a.responseTo('init'), 'initialized');
      mock.timers.tick(1_000);
      assert.equal(backend.requests('ping').length, 1, 'pinged after half the timeout');
      assert.equal(mux.liveness.unresponsive, true);
      backend.handlers.delete('ping');
      mock.timers.tick(1_000);
      assert.equal(backend.replaced.length, 1);
      assert.match(backend.replaced[0] ?? '', /stopped responding .* 2 request\(s\) pending/);
      assert.equal(mux.liveness.hangs, 1);
      assert.match(errorOf(a.responseTo(1))?.message ?? '', /stopped responding/);
    } finally {
      mock.timers.reset();
    }
  });
});
