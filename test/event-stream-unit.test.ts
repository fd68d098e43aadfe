// EventStream and PostReply in process, on a fake ServerResponse: framing, replay after a reconnect
// within its bounds, keep-alives, a client that stops reading, and when a reply becomes a stream.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, it, mock } from 'node:test';
import type { JsonRpcResponse } from '../src/protocol/jsonrpc.ts';
import { EventStream, type EventStreamOptions } from '../src/transports/streamable-http/event-stream.ts';
import { JSON_REPLY_WINDOW_MS, PostReply } from '../src/transports/streamable-http/post-reply.ts';
import { ReplayLog } from '../src/transports/streamable-http/replay-log.ts';

/** The parts of a ServerResponse the streams use; `unread` plays a client that stopped reading. */
class FakeResponse extends EventEmitter {
  status: number | undefined;
  head: Record<string, string | number> = {};
  chunks: string[] = [];
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  unread = 0;
  /** A client that reads nothing: every write stays unread. */
  stalled = false;

  get writableLength(): number {
    return this.unread;
  }
  writeHead(status: number, headers: Record<string, string | number> = {}): this {
    this.status = status;
    this.head = { ...this.head, ...headers };
    this.headersSent = true;
    return this;
  }
  setHeader(name: string, value: string): void {
    this.head[name] = value;
  }
  flushHeaders(): void {}
  cork(): void {}
  uncork(): void {}
  write(chunk: string | Buffer): boolean {
    this.chunks.push(chunk.toString());
    if (this.stalled) this.unread += chunk.length;
    return true;
  }
  end(chunk?: string | Buffer): this {
    if (chunk !== undefined) this.write(chunk);
    this.writableEnded = true;
    this.emit('close');
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
  get text(): string {
    return this.chunks.join('');
  }
  get res(): ServerResponse {
    return this as unknown as ServerResponse;
  }
}

function stream(options: Partial<EventStreamOptions> = {}): EventStream {
  return new EventStream({
    id: 's',
    keepAliveMs: 15_000,
    replayEvents: 100,
    replay: new ReplayLog({ maxBytes: 1_000_000, maxAgeMs: 60_000 }),
    bufferBytes: 1_000,
    headers: { 'mcp-session-id': 'abc' },
    prime: false,
    ...options,
  });
}

const note = (n: number) => ({ jsonrpc: '2.0' as const, method: 'notifications/message', params: { n } });
const answer: JsonRpcResponse = { jsonrpc: '2.0', id: 7, result: { ok: true } };
const ids = (text: string) => [...text.matchAll(/^id: (\S+)$/gm)].map((match) => match[1]);

afterEach(() => mock.timers.reset());

describe('EventStream', () => {
  it('sends SSE headers with its own, a priming event when asked, and numbered events', () => {
    const res = new FakeResponse();
    const events = stream({ prime: true });
    events.attach(res.res);
    events.send(note(1));
    assert.equal(res.status, 200);
    assert.equal(res.head['content-type'], 'text/event-stream');
    assert.equal(res.head['mcp-session-id'], 'abc');
    assert.equal(res.text, `id: s-1\ndata: \n\nid: s-2\ndata: ${JSON.stringify(note(1))}\n\n`);
    events.finish(answer);
    assert.ok(res.writableEnded, 'finish ends the connection');
    assert.ok(events.ended);
  });

  it('replays what a lost connection missed on resume, and only that', () => {
    const first = new FakeResponse();
    const events = stream();
    let detached = 0;
    events.ondetach = () => detached++;
    events.attach(first.res);
    events.send(note(1));
    first.destroy();
    assert.equal(detached, 1);
    assert.equal(events.attached, false);
    events.send(note(2));
    events.send(note(3));
    const second = new FakeResponse();
    events.attach(second.res, 1);
    assert.deepEqual(ids(second.text), ['s-2', 's-3']);
    assert.match(second.text, /"n":2/);
  });

  it('keeps at most replayEvents events, and none larger than the session log allows', () => {
    const replay = new ReplayLog({ maxBytes: 200, maxAgeMs: 60_000 });
    const events = stream({ replayEvents: 2, replay });
    for (let n = 1; n <= 4; n++) events.send(note(n));
    events.send({ ...note(5), params: { n: 5, big: 'x'.repeat(500) } });
    events.send(note(6));
    const res = new FakeResponse();
    events.attach(res.res, 0);
    assert.deepEqual(
      ids(res.text),
      ['s-4', 's-6'],
      'events 1–3 fell to the count bound, event 5 was never kept',
    );
    assert.ok(replay.bytes <= 200);
  });

  it('says the request ran when its final response was not kept for a resume', () => {
    const events = stream({ replay: new ReplayLog({ maxBytes: 50, maxAgeMs: 60_000 }) });
    const res = new FakeResponse();
    events.attach(res.res);
    res.destroy();
    events.finish({ jsonrpc: '2.0', id: 9, result: { text: 'y'.repeat(200) } });
    const resumed = new FakeResponse();
    events.attach(resumed.res, 0);
    const data = JSON.parse(resumed.text.split('data: ')[1] ?? '');
    assert.equal(data.id, 9);
    assert.match(data.error.message, /no longer kept for resumption/);
    assert.ok(resumed.writableEnded);
  });

  it('writes a keep-alive comment every keepAliveMs while attached', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const res = new FakeResponse();
    const events = stream({ keepAliveMs: 1_000 });
    events.attach(res.res);
    mock.timers.tick(2_500);
    assert.equal(res.text, ': keep-alive\n\n: keep-alive\n\n');
    events.close();
    mock.timers.tick(5_000);
    assert.equal(res.text.match(/keep-alive/g)?.length, 2, 'no keep-alive after close');
  });

  it('writes no keep-alive with keepAliveMs 0 (sse.keepAlive: 0), and still closes a stalled connection', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const res = new FakeResponse();
    const events = stream({ keepAliveMs: 0, bufferBytes: 100 });
    events.attach(res.res);
    mock.timers.tick(60_000);
    assert.equal(res.text, '');
    res.stalled = true;
    events.send({ ...note(1), params: { n: 1, text: 'z'.repeat(200) } });
    mock.timers.tick(14_999);
    assert.equal(res.destroyed, false);
    mock.timers.tick(1);
    assert.ok(res.destroyed, 'no progress for 15 s');
    events.close();
  });

  it('cuts a connection whose client leaves more than bufferBytes unread, and stays resumable', () => {
    const overflows: number[] = [];
    const events = stream({ bufferBytes: 100, onoverflow: (held) => overflows.push(held) });
    let detached = 0;
    events.ondetach = () => detached++;
    const res = new FakeResponse();
    events.attach(res.res);
    events.send(note(1));
    assert.equal(res.destroyed, false);
    res.unread = 101;
    events.send(note(2));
    assert.ok(res.destroyed);
    assert.deepEqual(overflows, [101]);
    assert.equal(detached, 1);
    assert.equal(events.ended, false);
    const again = new FakeResponse();
    events.attach(again.res, 1);
    assert.deepEqual(ids(again.text), ['s-2']);
  });

  it('closes a stalled connection after a keep-alive interval without progress, even with nothing more to write', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const events = stream({ bufferBytes: 100, keepAliveMs: 1_000 });
    const res = new FakeResponse();
    events.attach(res.res);
    res.stalled = true;
    events.send({ ...note(1), params: { n: 1, text: 'z'.repeat(200) } });
    assert.equal(res.destroyed, false, 'over the bound only after this write: not yet');
    mock.timers.tick(999);
    assert.equal(res.destroyed, false);
    mock.timers.tick(1);
    assert.ok(res.destroyed, 'no progress for an interval');
  });

  it('keeps a slow reader that catches up below the bound before the next interval', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const events = stream({ bufferBytes: 100, keepAliveMs: 1_000 });
    const res = new FakeResponse();
    events.attach(res.res);
    res.stalled = true;
    events.send({ ...note(1), params: { n: 1, text: 'z'.repeat(200) } });
    res.stalled = false;
    res.unread = 50;
    mock.timers.tick(3_000);
    assert.equal(res.destroyed, false);
    assert.equal(res.text.match(/keep-alive/g)?.length, 3);
  });
});

describe('PostReply', () => {
  function reply() {
    const res = new FakeResponse();
    const opened: EventStream[] = [];
    const post = new PostReply(res.res, { 'mcp-session-id': 'abc' }, () => {
      const created = stream({ id: 'p' });
      opened.push(created);
      return created;
    });
    return { res, post, opened };
  }

  it('answers a quick lone response as JSON with its headers', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const { res, post, opened } = reply();
    post.finish(answer);
    assert.equal(res.status, 200);
    assert.equal(res.head['content-type'], 'application/json');
    assert.equal(res.head['mcp-session-id'], 'abc');
    assert.deepEqual(JSON.parse(res.text), answer);
    assert.equal(opened.length, 0);
    post.send(note(1));
    assert.deepEqual(JSON.parse(res.text), answer, 'nothing after the end');
  });

  it('becomes an SSE stream when anything must go before the response', () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    const { res, post, opened } = reply();
    post.send(note(1));
    post.finish(answer);
    assert.equal(opened.length, 1);
    assert.equal(res.head['content-type'], 'text/event-stream');
    assert.deepEqual(ids(res.text), ['p-1', 'p-2']);
    assert.ok(res.writableEnded);
  });

  it('becomes an SSE stream after the JSON window, so a slow call gets keep-alives', () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    const { res, opened } = reply();
    mock.timers.tick(JSON_REPLY_WINDOW_MS - 1);
    assert.equal(opened.length, 0);
    mock.timers.tick(1);
    assert.equal(opened.length, 1);
    assert.equal(res.head['content-type'], 'text/event-stream');
  });

  it('refuses with the status and Retry-After while it still can, else as a plain final response', () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    const refusal = { status: 429, code: -32003, message: 'slow down', retryAfterSeconds: 12 };
    const error: JsonRpcResponse = { jsonrpc: '2.0', id: 7, error: { code: -32003, message: 'slow down' } };
    const early = reply();
    early.post.refuse(refusal, error);
    assert.equal(early.res.status, 429);
    assert.equal(early.res.head['retry-after'], '12');
    const late = reply();
    late.post.send(note(1));
    late.post.refuse(refusal, error);
    assert.equal(late.res.status, 200, 'a stream already sent its status');
    assert.match(late.res.text, /slow down/);
  });
});
