// The multiplexer's routing rules in-process, over a FakeBackend: ids and progress tokens rewritten
// per session, answers routed by id, server→client requests only to a certain session, tasks per session.
// test/multiplexer.test.ts checks the same rules end to end through a real gateway and process.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SUBSCRIPTIONS_PER_SESSION } from '../src/mux/from-client.ts';
import type { JsonRpcRequest } from '../src/protocol/jsonrpc.ts';
import { harness, lastBackendId, settle } from './helpers/mux-harness.ts';

function versionOf(response: unknown): unknown {
  return (response as { result?: { protocolVersion?: unknown } } | undefined)?.result?.protocolVersion;
}

describe('multiplexer routing (in-process)', () => {
  it('initializes the backend once and answers every initialize itself, per-client protocol version', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    const [answerA, answerB] = await Promise.all([a.initialize(), b.initialize({}, '2025-03-26')]);
    assert.equal(backend.requests('initialize').length, 1);
    assert.equal(backend.notifications('notifications/initialized').length, 1);
    assert.equal(versionOf(answerA), '2025-11-25');
    assert.equal(versionOf(answerB), '2025-03-26');
    assert.equal(answerB?.id, 'init-0');
    // A shared backend is told the client can do what the gateway can route; sessions that cannot get an error.
    const capabilities = backend.requests('initialize')[0]?.params?.capabilities as Record<string, unknown>;
    assert.deepEqual(Object.keys(capabilities).sort(), ['elicitation', 'roots', 'sampling']);
    const c = session('carol');
    await c.initialize({}, '1999-01-01');
    assert.equal(versionOf(c.responses()[0]), '2025-11-25');
    assert.equal(backend.requests('initialize').length, 1);
  });

  it('passes the client’s initialize unchanged to a per-session backend', async () => {
    const { backend, session } = harness('per-session');
    await session('alice').initialize({ sampling: {} });
    assert.deepEqual(backend.requests('initialize')[0]?.params?.capabilities, { sampling: {} });
  });

  it('restores colliding ids exactly: two sessions, id 1 and "1", at once', async () => {
    const { backend, session } = harness();
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(1, 'tools/call', { name: 'echo', arguments: { text: 'a-number' } });
    a.request('1', 'tools/call', { name: 'echo', arguments: { text: 'a-string' } });
    b.request(1, 'tools/call', { name: 'echo', arguments: { text: 'b-number' } });
    const seen = backend.requests('tools/call');
    assert.equal(new Set(seen.map((request) => request.id)).size, 3);
    assert.ok(
      seen.every((request) => typeof request.id === 'number'),
      'the backend sees its own ids',
    );
    for (const request of [...seen].reverse()) {
      const text = (request.params?.arguments as { text?: string } | undefined)?.text;
      backend.answer(request.id, { result: { content: [{ type: 'text', text }] } });
    }
    const textOf = (response: unknown) =>
      (response as { result: { content: Array<{ text: string }> } }).result.content[0]?.text;
    assert.equal(textOf(a.responseTo(1)), 'a-number');
    assert.equal(textOf(a.responseTo('1')), 'a-string');
    assert.equal(textOf(b.responseTo(1)), 'b-number');
    assert.equal(b.responseTo('1'), undefined);
  });

  it('routes progress by rewritten token: both sessions use token "t"', async () => {
    const { backend, session } = harness();
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(5, 'tools/call', { name: 'progress', _meta: { progressToken: 't', other: 1 } });
    b.request(5, 'tools/call', { name: 'progress', _meta: { progressToken: 't' } });
    const [toA, toB] = backend.requests('tools/call').map((request) => request.params?._meta) as Array<
      Record<string, unknown>
    >;
    assert.notEqual(toA?.progressToken, 't');
    assert.notEqual(toA?.progressToken, toB?.progressToken);
    assert.equal(toA?.other, 1, 'the rest of _meta is kept');
    backend.emit({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: toB?.progressToken, progress: 1, total: 2 },
    });
    assert.equal(a.calls('notifications/progress').length, 0);
    assert.deepEqual(b.calls('notifications/progress'), [
      {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: 't', progress: 1, total: 2 },
      },
    ]);
    backend.answer(lastBackendId(backend, 'tools/call'), { result: {} });
    backend.emit({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: toB?.progressToken, progress: 2, total: 2 },
    });
    assert.equal(b.calls('notifications/progress').length, 1, 'no progress after the answer');
  });

  it('answers ping and logging/setLevel itself; the backend logs at the most verbose level asked', async () => {
    const { backend, session } = harness('per-user');
    const a = session('alice');
    const a2 = session('alice');
    await a.initialize();
    await a2.initialize();
    a.request(9, 'ping');
    assert.deepEqual(a.responseTo(9), { jsonrpc: '2.0', id: 9, result: {} });
    assert.equal(backend.requests('ping').length, 0);
    a.request(10, 'logging/setLevel', { level: 'error' });
    a2.request(10, 'logging/setLevel', { level: 'info' });
    assert.deepEqual(a.responseTo(10), { jsonrpc: '2.0', id: 10, result: {} });
    assert.deepEqual(
      backend.requests('logging/setLevel').map((request) => request.params?.level),
      ['error', 'info'],
    );
    a.request(11, 'logging/setLevel', { level: 'nonsense' });
    assert.equal(
      backend.requests('logging/setLevel').length,
      3,
      'an unknown level goes to the backend to refuse',
    );
  });

  it('delivers a log message to its one certain session at the level that session set', async () => {
    const { backend, session } = harness('per-user');
    const a = session('alice');
    await a.initialize();
    a.request(1, 'logging/setLevel', { level: 'error' });
    a.request(2, 'tools/call', { name: 'log' });
    const log = (level: string) =>
      backend.emit({ jsonrpc: '2.0', method: 'notifications/message', params: { level, data: level } });
    log('info');
    log('error');
    assert.deepEqual(
      a.calls('notifications/message').map((m) => (m as unknown as { params: { data: string } }).params.data),
      ['error'],
    );
  });

  it('drops a log message tied to no request when several users worked on the backend', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    a.request(1, 'tools/call', { name: 'x' });
    b.request(1, 'tools/call', { name: 'x' });
    backend.emit({
      jsonrpc: '2.0',
      method: 'notifications/message',
      params: { level: 'error', data: 'whose?' },
    });
    assert.equal(a.calls('notifications/message').length + b.calls('notifications/message').length, 0);
  });

  it('never guesses: a call-back of a backend several users worked on is refused, naming per-user', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize({ sampling: {} });
    await b.initialize({ sampling: {} });
    a.request(1, 'tools/call', { name: 'x' });
    backend.answer(lastBackendId(backend, 'tools/call'), { result: {} });
    b.request(1, 'tools/call', { name: 'sample' });
    backend.emit({ jsonrpc: '2.0', id: 'srv-1', method: 'sampling/createMessage', params: {} });
    assert.equal(a.calls('sampling/createMessage').length + b.calls('sampling/createMessage').length, 0);
    const refusal = backend.sent.find((m) => 'id' in m && m.id === 'srv-1' && 'error' in m);
    assert.match(
      (refusal as { error: { message: string } }).error.message,
      /cannot tell which user .* use isolation per-user/,
    );
  });

  it('per-user: a call-back goes to the one busy session under a random id only it can answer', async () => {
    const { backend, session } = harness('per-user');
    const first = session('alice');
    const second = session('alice');
    await first.initialize({ sampling: {} });
    await second.initialize({ sampling: {} });
    second.request(1, 'tools/call', { name: 'sample' });
    backend.emit({
      jsonrpc: '2.0',
      id: 7,
      method: 'sampling/createMessage',
      params: { _meta: { progressToken: 'srv-t' } },
    });
    const [asked] = second.calls('sampling/createMessage') as JsonRpcRequest[];
    assert.ok(asked);
    assert.equal(first.calls('sampling/createMessage').length, 0);
    assert.match(String(asked.id), /^[\w-]{16}$/);
    // The other session can neither answer it nor report progress on it.
    first.send({ jsonrpc: '2.0', id: asked.id, result: { stolen: true } });
    first.notify('notifications/progress', { progressToken: 'srv-t', progress: 1 });
    assert.equal(
      backend.sent.filter((m) => 'result' in m || ('method' in m && m.method === 'notifications/progress'))
        .length,
      0,
    );
    second.notify('notifications/progress', { progressToken: 'srv-t', progress: 1 });
    second.send({ jsonrpc: '2.0', id: asked.id, result: { role: 'assistant' } });
    second.send({ jsonrpc: '2.0', id: asked.id, result: { again: true } });
    assert.equal(backend.notifications('notifications/progress').length, 1);
    assert.deepEqual(
      backend.sent.filter((m) => 'result' in m),
      [{ jsonrpc: '2.0', id: 7, result: { role: 'assistant' } }],
    );
  });

  it('per-user: with two sessions of the user busy, a call-back is refused naming per-session', async () => {
    const { backend, session } = harness('per-user');
    const first = session('alice');
    const second = session('alice');
    await first.initialize({ sampling: {} });
    await second.initialize({ sampling: {} });
    first.request(1, 'tools/call', { name: 'sleep' });
    second.request(1, 'tools/call', { name: 'sample' });
    backend.emit({ jsonrpc: '2.0', id: 8, method: 'sampling/createMessage', params: {} });
    const refusal = backend.sent.find((m) => 'id' in m && m.id === 8 && 'error' in m);
    assert.match(
      (refusal as { error: { message: string } }).error.message,
      /which of this user's 2 sessions .* use isolation per-session/,
    );
  });

  it('answers a call-back the certain session’s client cannot handle with method-not-found', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    await a.initialize({});
    a.request(1, 'tools/call', { name: 'sample' });
    backend.emit({ jsonrpc: '2.0', id: 9, method: 'sampling/createMessage', params: {} });
    assert.equal(a.calls('sampling/createMessage').length, 0);
    const refusal = backend.sent.find((m) => 'id' in m && m.id === 9 && 'error' in m);
    assert.equal((refusal as { error: { code: number } }).error.code, -32601);
  });

  it('translates a client cancellation to the backend id, and a backend one to the session’s id', async () => {
    const { backend, session } = harness('per-user');
    const a = session('alice');
    await a.initialize({ sampling: {} });
    a.request('slow', 'tools/call', { name: 'sleep' });
    const backendId = lastBackendId(backend, 'tools/call');
    a.notify('notifications/cancelled', { requestId: 'slow', reason: 'no' });
    assert.deepEqual(backend.notifications('notifications/cancelled'), [
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: backendId, reason: 'no' } },
    ]);
    a.notify('notifications/cancelled', { requestId: 'slow' });
    assert.equal(backend.notifications('notifications/cancelled').length, 1, 'cancelled once');
    a.request(2, 'tools/call', { name: 'sample' });
    backend.emit({ jsonrpc: '2.0', id: 70, method: 'sampling/createMessage', params: {} });
    const asked = a.calls('sampling/createMessage')[0] as JsonRpcRequest;
    backend.emit({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 70 } });
    assert.deepEqual(a.calls('notifications/cancelled'), [
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: asked.id } },
    ]);
  });

  it('cancels a detached session’s calls at the backend and reports the last one gone', async () => {
    const h = harness('shared');
    const a = h.session('alice');
    const b = h.session('bob');
    await a.initialize();
    a.request(77, 'tools/call', { name: 'sleep' });
    const backendId = lastBackendId(h.backend, 'tools/call');
    await a.upstream.close();
    assert.deepEqual(h.backend.notifications('notifications/cancelled'), [
      {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: backendId, reason: 'the client session ended' },
      },
    ]);
    a.request(78, 'tools/call', { name: 'late' });
    assert.equal(h.backend.requests('tools/call').length, 1, 'a closed upstream forwards nothing');
    assert.equal(h.emptied(), 0);
    await b.upstream.close();
    assert.equal(h.emptied(), 1);
  });

  it('sends list_changed to every session and resources/updated to its subscribers only', async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    backend.emit({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    assert.equal(a.calls('notifications/tools/list_changed').length, 1);
    assert.equal(b.calls('notifications/tools/list_changed').length, 1);
    a.request(1, 'resources/subscribe', { uri: 'file:///x' });
    await settle();
    backend.emit({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'file:///x' } });
    assert.equal(a.calls('notifications/resources/updated').length, 1);
    assert.equal(b.calls('notifications/resources/updated').length, 0);
  });

  it(`keeps at most ${MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions per session, refusing the next with the limit`, async () => {
    const { backend, session } = harness('shared');
    const a = session('alice');
    const b = session('bob');
    await a.initialize();
    await b.initialize();
    for (let index = 0; index < MAX_SUBSCRIPTIONS_PER_SESSION; index++)
      a.request(`s${index}`, 'resources/subscribe', { uri: `file:///${index}` });
    await settle();
    assert.equal(backend.requests('resources/subscribe').length, MAX_SUBSCRIPTIONS_PER_SESSION);
    a.request('over', 'resources/subscribe', { uri: 'file:///over' });
    await settle();
    const refused = a.responseTo('over');
    assert.ok(refused && 'error' in refused, JSON.stringify(refused));
    assert.match(refused.error.message, /subscribed to 256 resources already/);
    assert.equal(backend.requests('resources/subscribe').length, MAX_SUBSCRIPTIONS_PER_SESSION);
    // One already held is no new entry; another session has its own room; one let go makes room.
    a.request('again', 'resources/subscribe', { uri: 'file:///0' });
    b.request('other', 'resources/subscribe', { uri: 'file:///over' });
    a.request('drop', 'resources/unsubscribe', { uri: 'file:///1' });
    await settle();
    assert.ok(a.responseTo('again') && !('error' in (a.responseTo('again') ?? {})));
    assert.ok(b.responseTo('other') && !('error' in (b.responseTo('other') ?? {})));
    a.request('room', 'resources/subscribe', { uri: 'file:///room' });
    await settle();
    assert.ok(a.responseTo('room') && !('error' in (a.responseTo('room') ?? {})));
  });
});
