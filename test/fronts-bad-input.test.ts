// Bad input over the WebSocket (/ws/<server>) and legacy HTTP+SSE (/mcp/<server>/sse + /messages)
// fronts, as test/bad-input.test.ts does for Streamable HTTP: the corpus's message-level cases
// (messageCases) in a frame or a POST, then what only that front has (binary and oversized frames,
// the upgrade's credentials; session ids on /messages, bodies and their types). Each gets the answer
// docs/bad-input.md gives it, the same session answers a ping after it where the protocol leaves it
// open, and another user's SDK client on the same front calls a tool throughout without one failure.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { type MessageCase, messageCases } from './fixtures/bad-input-corpus.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { connectClient, fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { connectOver, refusedUpgrade, wsUrlOf } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 20_000 };
const MAX_BODY = 2 * 1_048_576;
const PARSE = -32700;
const INVALID = -32600;
const SESSION_NOT_FOUND = -32002;
const REFUSED = -32003;

interface Rpc {
  id?: unknown;
  method?: string;
  result?: unknown;
  error?: { code: number; message: string };
}

/** What a front answered one bad message with: an HTTP status and body (SSE), an error frame or a close (WS). */
interface Answer {
  status?: number;
  message?: Rpc;
  closed?: { code: number; reason: string };
}

/** alice's session on one front, driven by hand. */
interface RawSession {
  /** Sends `body` as one message and resolves with the front's answer to it alone. */
  send(body: string | Buffer): Promise<Answer>;
  /** A ping in the same session, answered. */
  ping(): Promise<Rpc>;
  readonly open: boolean;
  close(): Promise<void>;
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};
const INITIALIZED = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });

/** Frames and events as they arrive, and a wait for the first that matches. */
class Inbox {
  readonly items: Rpc[] = [];
  #waiters: Array<() => void> = [];

  push(item: Rpc): void {
    this.items.push(item);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async next(match: (item: Rpc) => boolean, from = 0, ms = 10_000): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = this.items.findIndex((item, at) => at >= from && match(item));
      if (index !== -1) return index;
      if (Date.now() > deadline)
        throw new Error(`no such message; had ${JSON.stringify(this.items.slice(from))}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  }
}

let seq = 0;
const pingOf = () => ({ jsonrpc: '2.0', id: `ping-${++seq}`, method: 'ping' });

/** A WebSocket session: a bad frame's answer is what arrives before the answer to a ping sent after it. */
async function wsSession(url: string, key: string): Promise<RawSession> {
  const socket = new WebSocket(url, 'mcp', { headers: { authorization: `Bearer ${key}` } });
  const inbox = new Inbox();
  let closed: { code: number; reason: string } | undefined;
  const closing = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      resolve(closed);
      inbox.push({});
    }),
  );
  socket.on('error', () => {});
  socket.on('message', (data) => inbox.push(JSON.parse(String(data)) as Rpc));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  socket.send(JSON.stringify(INITIALIZE));
  assert.ok(inbox.items[await inbox.next((item) => item.id === 'init')]?.result);
  socket.send(INITIALIZED);
  const ping = async (): Promise<Rpc> => {
    const request = pingOf();
    socket.send(JSON.stringify(request));
    return inbox.items[await inbox.next((item) => item.id === request.id)] as Rpc;
  };
  return {
    get open() {
      return closed === undefined;
    },
    async send(body) {
      const from = inbox.items.length;
      socket.send(body, { binary: false });
      const request = pingOf();
      socket.send(JSON.stringify(request));
      const answered = await inbox.next((item) => item.id === request.id || closed !== undefined, from);
      if (closed) return { closed: await closing };
      const between = inbox.items.slice(from, answered);
      assert.equal(between.length, 1, `one answer to the bad frame: ${JSON.stringify(between)}`);
      return { message: between[0] };
    },
    ping,
    async close() {
      socket.close();
      await closing;
    },
  };
}

/** A legacy SSE session: its stream read event by event, each message POSTed to the `endpoint` it names. */
async function sseSession(base: string, server: string, key: string): Promise<RawSession & { id: string }> {
  const abort = new AbortController();
  const auth = { authorization: `Bearer ${key}` };
  const stream = await fetch(`${base}/mcp/${server}/sse`, {
    headers: { accept: 'text/event-stream', ...auth },
    signal: abort.signal,
  });
  assert.equal(stream.status, 200);
  const inbox = new Inbox();
  let endpoint: string | undefined;
  let ended = false;
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of stream.body as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const name = /^event: (.*)$/m.exec(event)?.[1];
        const data = /^data: (.*)$/m.exec(event)?.[1];
        if (data === undefined) continue;
        if (name === 'endpoint') endpoint = new URL(data, base).toString();
        else inbox.push(JSON.parse(data) as Rpc);
      }
      if (endpoint && inbox.items.length === 0) inbox.push({ method: 'endpoint' });
    }
  })()
    .catch(() => undefined)
    .finally(() => {
      ended = true;
    });
  await inbox.next((item) => item.method === 'endpoint');
  const post = async (body: string | Buffer): Promise<Answer> => {
    const response = await fetch(endpoint as string, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body,
    });
    const text = await response.text();
    return { status: response.status, ...(text ? { message: JSON.parse(text) as Rpc } : {}) };
  };
  assert.equal((await post(JSON.stringify(INITIALIZE))).status, 202);
  assert.ok(inbox.items[await inbox.next((item) => item.id === 'init')]?.result);
  assert.equal((await post(INITIALIZED)).status, 202);
  return {
    id: new URL(endpoint as string).searchParams.get('sessionId') as string,
    get open() {
      return !ended;
    },
    send: post,
    async ping() {
      const request = pingOf();
      assert.equal((await post(JSON.stringify(request))).status, 202);
      return inbox.items[await inbox.next((item) => item.id === request.id)] as Rpc;
    },
    async close() {
      abort.abort();
      await reading;
    },
  };
}

/** Bytes a WebSocket text frame cannot carry: `ws` closes with 1007 before the gateway sees them. */
function invalidUtf8(body: string | Buffer): boolean {
  if (typeof body === 'string') return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(body);
    return false;
  } catch {
    return true;
  }
}

const FRONTS = ['ws', 'sse'] as const;

for (const front of FRONTS) {
  describe(`${front} front: bad input`, () => {
    let gw: TestGateway;
    const logged = capturingLogger();
    let alice: RawSession;
    const bob = { calls: 0, failures: [] as string[], running: true, done: Promise.resolve() };
    let bobClose: () => Promise<void> = async () => {};

    const openAlice = () =>
      front === 'ws'
        ? wsSession(wsUrlOf(gw.url, 'echo'), gw.keys.alice as string)
        : sseSession(gw.url, 'echo', gw.keys.alice as string);
    /** alice's session, opened again when a case closed it. */
    const aliceSession = async () => {
      if (!alice.open) alice = await openAlice();
      return alice;
    };

    before(async () => {
      gw = await startGateway(
        {
          servers: { echo: fixtureServer('well'), other: fixtureServer('well') },
          limits: { maxBodyBytes: MAX_BODY, sessionsPerUser: 200 },
        },
        { users: ['alice', 'bob'], log: logged.log },
      );
      alice = await openAlice();
      const client = await connectOver(front, gw.url, 'echo', gw.keys.bob);
      bobClose = client.close;
      bob.done = (async () => {
        while (bob.running) {
          const text = `bob-${++bob.calls}`;
          try {
            const result = await client.client.callTool({ name: 'echo', arguments: { text } });
            if (textOf(result) !== text) bob.failures.push(`${text}: got ${JSON.stringify(result)}`);
          } catch (error) {
            bob.failures.push(`${text}: ${(error as Error).message}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      })();
    });

    after(async () => {
      bob.running = false;
      await bob.done;
      await bobClose();
      await alice?.close();
      await gw?.close();
    });

    for (const c of messageCases()) {
      it(`${c.group}: ${c.name}`, TIMEOUT, async () => {
        const session = await aliceSession();
        const answer = await session.send(c.body);
        const where = `${c.group}: ${c.name} → ${JSON.stringify(answer).slice(0, 300)}`;
        if (front === 'ws' && invalidUtf8(c.body)) {
          // RFC 6455 §8.1: a text frame is UTF-8; `ws` fails the connection (1007) before the gateway reads it.
          assert.equal(answer.closed?.code, 1007, where);
          return;
        }
        assertRefusal(answer, front === 'sse' ? 400 : undefined, c, where);
        assert.deepEqual((await session.ping()).result, {}, `${where}: the session answers after it`);
      });
    }

    if (front === 'ws') {
      it('binary frame: closed with 1003 and why; a new socket works', TIMEOUT, async () => {
        const socket = new WebSocket(wsUrlOf(gw.url, 'echo'), 'mcp', {
          headers: { authorization: `Bearer ${gw.keys.alice}` },
        });
        await new Promise((resolve) => socket.once('open', resolve));
        const close = new Promise<[number, string]>((resolve) =>
          socket.once('close', (code, reason) => resolve([code, reason.toString()])),
        );
        socket.send(Buffer.from(JSON.stringify(INITIALIZE)), { binary: true });
        const [code, reason] = await close;
        assert.equal(code, 1003);
        assert.match(reason, /binary frames are not supported/);
        assert.deepEqual((await (await aliceSession()).ping()).result, {});
      });

      it('frame over limits.maxBodyBytes: closed with 1009; a new socket works', TIMEOUT, async () => {
        const session = await aliceSession();
        const big = JSON.stringify({
          jsonrpc: '2.0',
          id: 'big',
          method: 'tools/call',
          params: { name: 'echo', arguments: { text: 'b'.repeat(MAX_BODY + 1024) } },
        });
        const { closed } = await session.send(big);
        assert.equal(closed?.code, 1009);
        assert.deepEqual((await (await aliceSession()).ping()).result, {});
      });

      it(
        'upgrade without a credential, with a wrong one, for an unknown server, without subprotocol mcp',
        TIMEOUT,
        async () => {
          const none = await refusedUpgrade(wsUrlOf(gw.url, 'echo'));
          assert.equal(none.status, 401);
          assert.ok(none.headers['www-authenticate']);
          assert.equal((JSON.parse(none.body) as Rpc).error?.code, REFUSED);
          const wrong = await refusedUpgrade(wsUrlOf(gw.url, 'echo'), {
            authorization: `Bearer mcpr_${'A'.repeat(43)}`,
          });
          assert.equal(wrong.status, 401);
          assert.equal((JSON.parse(wrong.body) as Rpc).error?.code, REFUSED);
          const unknown = await refusedUpgrade(wsUrlOf(gw.url, 'nonexistent'), {
            authorization: `Bearer ${gw.keys.alice}`,
          });
          assert.equal(unknown.status, 404);
          assert.equal((JSON.parse(unknown.body) as Rpc).error?.code, INVALID);
          const protocol = await refusedUpgrade(
            wsUrlOf(gw.url, 'echo'),
            { authorization: `Bearer ${gw.keys.alice}` },
            'graphql-ws',
          );
          assert.equal(protocol.status, 400);
          assert.deepEqual((await (await aliceSession()).ping()).result, {});
        },
      );
    }

    if (front === 'sse') {
      const messages = (sessionId: string | undefined) =>
        `${gw.url}/mcp/echo/messages${sessionId === undefined ? '' : `?sessionId=${encodeURIComponent(sessionId)}`}`;
      const postAs = async (
        url: string,
        key: string | undefined,
        body: string,
        type = 'application/json',
      ) => {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': type, ...(key ? { authorization: `Bearer ${key}` } : {}) },
          body,
        });
        return { status: response.status, headers: response.headers, text: await response.text() };
      };
      const call = JSON.stringify({
        jsonrpc: '2.0',
        id: 'stolen',
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'x' } },
      });

      it(
        'POST naming an unknown session, no session, or one of Streamable HTTP: 404, -32002',
        TIMEOUT,
        async () => {
          const http = await connectClient(`${gw.url}/mcp/echo`, gw.keys.alice);
          const httpSession = http.transport.sessionId;
          assert.ok(httpSession);
          for (const sessionId of ['00000000-0000-4000-8000-000000000000', undefined, '', httpSession]) {
            const answer = await postAs(messages(sessionId), gw.keys.alice, call);
            assert.equal(answer.status, 404, String(sessionId));
            assert.equal((JSON.parse(answer.text) as Rpc).error?.code, SESSION_NOT_FOUND);
          }
          await http.client.close();
          assert.deepEqual((await (await aliceSession()).ping()).result, {});
        },
      );

      it(
        'POST naming another user’s session: the same 404 as an unknown one, and nothing reaches it',
        TIMEOUT,
        async () => {
          const bobs = (await sseSession(gw.url, 'echo', gw.keys.bob as string)) as RawSession & {
            id: string;
          };
          const unknown = await postAs(messages('00000000-0000-4000-8000-000000000000'), gw.keys.alice, call);
          const stolen = await postAs(messages(bobs.id), gw.keys.alice, call);
          assert.equal(stolen.status, 404);
          assert.equal(stolen.text, unknown.text, 'the answer tells nothing an unknown id would not');
          assert.equal(stolen.headers.get('content-type'), unknown.headers.get('content-type'));
          // And alice's own session named with bob's key.
          const aliceId = (alice as RawSession & { id: string }).id;
          const swapped = await postAs(messages(aliceId), gw.keys.bob, call);
          assert.equal(swapped.status, 404);
          assert.equal(swapped.text, unknown.text);
          // Neither session ran the call: the next message on each stream is its own ping's answer.
          assert.deepEqual((await bobs.ping()).result, {});
          assert.deepEqual((await (await aliceSession()).ping()).result, {});
          await bobs.close();
        },
      );

      it('POST over limits.maxBodyBytes: 413, -32600; the session carries on', TIMEOUT, async () => {
        const session = await aliceSession();
        const answer = await session.send(
          JSON.stringify({ jsonrpc: '2.0', id: 'big', method: 'ping', params: { x: 'b'.repeat(MAX_BODY) } }),
        );
        assert.equal(answer.status, 413);
        assert.equal(answer.message?.error?.code, INVALID);
        assert.deepEqual((await session.ping()).result, {});
      });

      it('POST that is not application/json: 415, -32600', TIMEOUT, async () => {
        const answer = await postAs(
          messages((alice as RawSession & { id: string }).id),
          gw.keys.alice,
          JSON.stringify(pingOf()),
          'text/plain',
        );
        assert.equal(answer.status, 415);
        assert.equal((JSON.parse(answer.text) as Rpc).error?.code, INVALID);
        assert.deepEqual((await (await aliceSession()).ping()).result, {});
      });

      it(
        'GET without a credential, with a wrong one, for an unknown server: 401, 401, 404',
        TIMEOUT,
        async () => {
          const get = (path: string, key?: string) =>
            fetch(`${gw.url}${path}`, {
              headers: { accept: 'text/event-stream', ...(key ? { authorization: `Bearer ${key}` } : {}) },
            });
          const none = await get('/mcp/echo/sse');
          assert.equal(none.status, 401);
          assert.ok(none.headers.get('www-authenticate'));
          assert.equal(((await none.json()) as Rpc).error?.code, REFUSED);
          const wrong = await get('/mcp/echo/sse', `mcpr_${'A'.repeat(43)}`);
          assert.equal(wrong.status, 401);
          assert.equal(((await wrong.json()) as Rpc).error?.code, REFUSED);
          const unknown = await get('/mcp/nonexistent/sse', gw.keys.alice);
          assert.equal(unknown.status, 404);
          assert.equal(((await unknown.json()) as Rpc).error?.code, INVALID);
        },
      );
    }

    it('kept serving the other user throughout, and logged no failure of its own', TIMEOUT, async (t) => {
      bob.running = false;
      await bob.done;
      t.diagnostic(`bob's echo calls during the cases: ${bob.calls}`);
      assert.deepEqual(bob.failures, []);
      assert.ok(bob.calls >= 5, `bob made only ${bob.calls} calls`);
      const health = await fetch(`${gw.url}/healthz`);
      assert.equal(((await health.json()) as { status: string }).status, 'ok');
      assert.doesNotMatch(logged.lines(), /request failed|upgrade failed|"level":50/);
    });
  });
}

function assertRefusal(answer: Answer, status: number | undefined, c: MessageCase, where: string): void {
  if (status !== undefined) assert.equal(answer.status, status, where);
  assert.equal(answer.closed, undefined, where);
  assert.equal(answer.message?.error?.code, c.rpcCode, where);
  assert.deepEqual(answer.message?.id, c.id ?? null, where);
  if (c.rpcCode === PARSE)
    assert.match(answer.message?.error?.message ?? '', /not valid (JSON|UTF-8)/, where);
}
