// Session in-process, with a recording reply, a fake upstream and a fake gate: how a request is
// admitted, forwarded, answered, timed out, cancelled, retried and ended, and where backend messages go.

import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { silentLogger } from '../src/log.ts';
import type { JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from '../src/protocol/jsonrpc.ts';
import { Session } from '../src/sessions/session.ts';
import type { Admission, Refusal, ReplyTarget, RequestGate, Upstream } from '../src/sessions/types.ts';

class RecordingReply implements ReplyTarget {
  readonly sent: JsonRpcMessage[] = [];
  finished: JsonRpcResponse | undefined;
  refused: Refusal | undefined;
  send(message: JsonRpcMessage): void {
    this.sent.push(message);
  }
  finish(response: JsonRpcResponse): undefined {
    assert.equal(this.finished, undefined, 'a reply is finished once');
    this.finished = response;
  }
  refuse(refusal: Refusal, response: JsonRpcResponse): void {
    this.refused = refusal;
    this.finish(response);
  }
}

class FakeUpstream implements Upstream {
  readonly sent: JsonRpcMessage[] = [];
  closed = 0;
  send(message: JsonRpcMessage): void {
    this.sent.push(message);
  }
  async close(): Promise<void> {
    this.closed++;
  }
}

function setup(
  admit: (request: JsonRpcRequest) => Admission | Promise<Admission> = () => ({ track: undefined }),
) {
  const upstream = new FakeUpstream();
  const passes: RequestGate['passes'] = (notification) => notification.method !== 'notifications/secret';
  const gate: RequestGate = { admit, passes };
  const session = new Session(
    {
      id: 'sid',
      identity: { user: 'alice', groups: [], method: 'api-key', credential: 'k1' },
      server: 's',
      requestTimeoutMs: 1_000,
      retries: { answers: 10, bytes: 100_000, maxAgeMs: 60_000 },
      log: silentLogger,
    },
    { connect: () => upstream, gate: () => gate },
  );
  const call = (
    id: string | number,
    method = 'tools/call',
    params: Record<string, unknown> = { name: 'x' },
  ) => {
    const reply = new RecordingReply();
    session.request({ jsonrpc: '2.0', id, method, params }, reply);
    return reply;
  };
  return { session, upstream, call };
}

const result = (id: string | number, value: unknown = 'ok'): JsonRpcResponse => ({
  jsonrpc: '2.0',
  id,
  result: { value },
});

describe('Session (in-process)', () => {
  it('forwards an admitted request and finishes its reply with the answer of the same id', () => {
    const { session, upstream, call } = setup();
    const number = call(1);
    const string = call('1');
    assert.equal(upstream.sent.length, 2);
    session.deliver(result('1', 'string'));
    session.deliver(result(1, 'number'));
    assert.deepEqual(string.finished, result('1', 'string'));
    assert.deepEqual(number.finished, result(1, 'number'));
    assert.equal(session.inFlightCount, 0);
  });

  it('answers a refused request with the gate’s status, and never forwards it', async () => {
    const { upstream, call } = setup(async () => ({
      refusal: { status: 429, code: -32003, message: 'slow down', retryAfterSeconds: 3 },
    }));
    const reply = call(1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(reply.refused?.status, 429);
    assert.equal((reply.finished as { error: { message: string } }).error.message, 'slow down');
    assert.equal(upstream.sent.length, 0);
  });

  it('keeps the order of requests while an admission is decided asynchronously', async () => {
    let release: (admission: Admission) => void = () => {};
    const slow = new Promise<Admission>((resolve) => {
      release = resolve;
    });
    const { upstream, call } = setup((request) => (request.id === 1 ? slow : { track: undefined }));
    call(1);
    call(2);
    assert.equal(upstream.sent.length, 0, 'the second waits behind the first');
    release({ track: undefined });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      upstream.sent.map((m) => (m as JsonRpcRequest).id),
      [1, 2],
    );
  });

  it('ends the session when its initialize is refused', async () => {
    const { session, call } = setup(() => ({ refusal: { status: 403, code: -32003, message: 'no' } }));
    const reply = call('init', 'initialize', {});
    assert.equal(reply.refused?.status, 403);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(session.closed, true);
  });

  it('routes progress by the request’s token and refreshes nothing after its answer', () => {
    const { session, call } = setup();
    const reply = call(1, 'tools/call', { name: 'x', _meta: { progressToken: 'p' } });
    const progress = {
      jsonrpc: '2.0' as const,
      method: 'notifications/progress',
      params: { progressToken: 'p' },
    };
    session.deliver(progress);
    assert.deepEqual(reply.sent, [progress]);
    session.deliver(result(1));
    session.deliver(progress);
    assert.equal(reply.sent.length, 1);
  });

  it('sends a server→client request on the one request in flight, else on the GET stream, queued until it opens', () => {
    const { session, call } = setup();
    const reply = call(1);
    const ask = (id: string): JsonRpcMessage => ({ jsonrpc: '2.0', id, method: 'sampling/createMessage' });
    session.deliver(ask('a'));
    assert.deepEqual(reply.sent, [ask('a')]);
    session.deliver(result(1));
    session.deliver(ask('b'));
    session.deliver({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    const stream: JsonRpcMessage[] = [];
    session.setStandalone({ send: (message) => stream.push(message) });
    assert.deepEqual(
      stream.map((m) => ('id' in m ? m.id : (m as { method: string }).method)),
      ['b', 'notifications/tools/list_changed'],
    );
  });

  it('takes the client’s answer to a server→client request once, and refuses answers to nothing', () => {
    const { session, upstream } = setup();
    session.setStandalone({ send: () => {} });
    session.deliver({ jsonrpc: '2.0', id: 'srv', method: 'roots/list' });
    assert.equal(session.post({ jsonrpc: '2.0', id: 'srv', result: {} }), undefined);
    assert.match(session.post({ jsonrpc: '2.0', id: 'srv', result: {} }) ?? '', /no server→client request/);
    assert.equal(upstream.sent.length, 1);
  });

  it('refuses a request method without an id and drops notifications clients do not send', () => {
    const { session, upstream } = setup();
    assert.match(session.post({ jsonrpc: '2.0', method: 'tools/call' }) ?? '', /needs an id/);
    assert.equal(session.post({ jsonrpc: '2.0', method: 'notifications/message' }), undefined);
    assert.equal(upstream.sent.length, 0);
    session.post({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
    assert.equal(upstream.sent.length, 1);
  });

  it('drops a backend notification its gate does not pass', () => {
    const { session } = setup();
    const stream: JsonRpcMessage[] = [];
    session.setStandalone({ send: (message) => stream.push(message) });
    session.deliver({ jsonrpc: '2.0', method: 'notifications/secret' });
    session.deliver({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    assert.equal(stream.length, 1);
  });

  it('finishes a request the client cancelled and passes the cancellation on', () => {
    const { session, upstream, call } = setup();
    const reply = call('slow');
    session.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'slow' } });
    assert.equal((reply.finished as { error: { code: number } }).error.code, -32800);
    assert.equal(upstream.sent.length, 2);
    session.deliver(result('slow'));
    assert.equal(
      (reply.finished as { error: { code: number } }).error.code,
      -32800,
      'the late answer is dropped',
    );
  });

  it('times a request out, answering -32001 and cancelling it upstream', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const { upstream, call } = setup();
      const reply = call(5);
      mock.timers.tick(1_000);
      assert.equal((reply.finished as { error: { code: number } }).error.code, -32001);
      assert.deepEqual(upstream.sent.at(-1), {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 5, reason: 'timed out at the gateway' },
      });
    } finally {
      mock.timers.reset();
    }
  });

  it('joins a retry to its call in flight, answers a later one from memory, and refuses another request under a busy id', () => {
    const { session, upstream, call } = setup();
    const first = call(1);
    const retry = call(1);
    const other = call(1, 'tools/call', { name: 'different' });
    assert.equal(upstream.sent.length, 1, 'the backend sees the call once');
    assert.match((other.finished as { error: { message: string } }).error.message, /already in flight/);
    session.deliver(result(1));
    assert.deepEqual(first.finished, result(1));
    assert.deepEqual(retry.finished, result(1));
    const late = call(1);
    assert.deepEqual(late.finished, result(1));
    assert.equal(upstream.sent.length, 1);
  });

  it('refuses new requests with 503 while draining; calls in flight may finish', () => {
    const { session, upstream, call } = setup();
    const running = call(1);
    session.drain();
    const late = call(2);
    assert.equal(late.refused?.status, 503);
    assert.equal(upstream.sent.length, 1);
    session.deliver(result(1));
    assert.deepEqual(running.finished, result(1));
  });

  it('closes once: calls in flight fail, listeners hear it, the upstream is released', async () => {
    const { session, upstream, call } = setup();
    const reply = call(1);
    const reasons: string[] = [];
    session.onClose((_session, reason) => reasons.push(reason));
    await Promise.all([session.close('bye'), session.close('again')]);
    assert.equal((reply.finished as { error: { code: number } }).error.code, -32002);
    assert.deepEqual(reasons, ['bye']);
    assert.equal(upstream.closed, 1);
    const after = call(2);
    assert.equal((after.finished as { error: { code: number } }).error.code, -32002);
  });

  it('does not exist when its backend cannot be connected', () => {
    let gated = 0;
    assert.throws(
      () =>
        new Session(
          {
            id: 'x',
            identity: { user: 'a', groups: [], method: 'none', credential: '' },
            server: 's',
            requestTimeoutMs: 1_000,
            retries: { answers: 0, bytes: 0, maxAgeMs: 0 },
            log: silentLogger,
          },
          {
            connect: () => {
              throw new Error('no room');
            },
            gate: () => {
              gated++;
              return { admit: () => ({ track: undefined }), passes: () => true };
            },
          },
        ),
      /no room/,
    );
    assert.equal(gated, 0, 'no gate is opened (nor audited) for a session that never was');
  });
});
