// A retried request (the same JSON-RPC id again in one session, as a client sends it after a lost
// answer or a cut stream) never reaches the backend twice: it joins the call in flight or gets the
// answer again; what the gateway remembers for this is bounded by count, bytes and age.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { fixtureServer, rawSession, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

type Session = Awaited<ReturnType<typeof rawSession>>;
interface Answer {
  id?: unknown;
  result?: unknown;
  error?: { code: number; message: string };
}

/** The response in a POST's answer, whether it came as JSON or as the last event of an SSE stream. */
function responseOf(text: string): Answer {
  try {
    return JSON.parse(text) as Answer;
  } catch {
    const events = text
      .split('\n')
      .filter((line) => line.startsWith('data: ') && line.length > 'data: '.length)
      .map((line) => JSON.parse(line.slice('data: '.length)) as Answer);
    const response = events.filter((event) => 'result' in event || 'error' in event).at(-1);
    assert.ok(response, `no response in ${text.slice(0, 300)}`);
    return response;
  }
}

async function executions(session: Session, key: string): Promise<number> {
  const reply = await session.request(`x-${Math.random()}`, 'tools/call', {
    name: 'executions',
    arguments: { key },
  });
  return Number(textOf((responseOf(reply.text) as { result: unknown }).result));
}

function countCall(id: number, key: string, args: Record<string, unknown> = {}): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'count', arguments: { key, ...args } },
  });
}

/** POSTs `body` on its own connection and returns a function that destroys it (a cut stream). */
function postAndCut(url: string, headers: Record<string, string>, body: string): () => void {
  const req = request(url, {
    method: 'POST',
    agent: false,
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      ...headers,
    },
  });
  req.on('error', () => {});
  req.on('response', (res) => res.resume().on('error', () => {}));
  req.end(body);
  return () => req.destroy();
}

describe('same-id retries, default bounds', () => {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway({ servers: { s: fixtureServer('well') } }, { users: ['alice'] });
    url = `${gw.url}/mcp/s`;
  });
  after(async () => {
    await gw.close();
  });

  it('a retry of a call whose POST was cut joins the call: one execution, the answer arrives', async () => {
    const session = await rawSession(url, gw.keys.alice as string);
    const cut = postAndCut(url, session.headers, countCall(7, 'cut', { ms: 1500 }));
    await eventually(async () => (await executions(session, 'cut')) === 1, 'the call to start');
    cut();
    const retry = await session.post(JSON.parse(countCall(7, 'cut', { ms: 1500 })));
    assert.equal(retry.status, 200);
    const answer = responseOf(retry.text);
    assert.equal(answer.id, 7);
    assert.equal(textOf(answer.result), 'counted cut');
    assert.equal(await executions(session, 'cut'), 1, 'the backend ran the call once');
  });

  it('a retry after the answer gets the same answer without running again', async () => {
    const session = await rawSession(url, gw.keys.alice as string);
    const first = responseOf((await session.post(JSON.parse(countCall(8, 'done')))).text);
    const again = await session.post(JSON.parse(countCall(8, 'done')));
    assert.equal(again.status, 200);
    assert.deepEqual(responseOf(again.text), first);
    assert.equal(await executions(session, 'done'), 1);
    // Another session's id 8 is its own request.
    const other = await rawSession(url, gw.keys.alice as string);
    await other.post(JSON.parse(countCall(8, 'done')));
    assert.equal(await executions(session, 'done'), 2);
  });

  it('a different request under a finished id is not answered from memory', async () => {
    const session = await rawSession(url, gw.keys.alice as string);
    await session.post(JSON.parse(countCall(9, 'first')));
    const other = responseOf((await session.post(JSON.parse(countCall(9, 'second')))).text);
    assert.equal(textOf(other.result), 'counted second');
    // …while a different request under an id in flight is refused, as before.
    const cut = postAndCut(url, session.headers, countCall(10, 'busy', { ms: 1500 }));
    await eventually(async () => (await executions(session, 'busy')) === 1, 'the call to start');
    const clash = responseOf((await session.post(JSON.parse(countCall(10, 'other')))).text);
    assert.match(clash.error?.message ?? '', /already in flight/);
    cut();
  });

  it('cancelling a call finishes every POST waiting for it; a later retry gets the cancellation', async () => {
    const session = await rawSession(url, gw.keys.alice as string);
    const body = JSON.parse(countCall(11, 'cancel', { ms: 20_000 }));
    const first = session.post(body);
    await eventually(async () => (await executions(session, 'cancel')) === 1, 'the call to start');
    const second = session.post(body);
    // The retry has joined once its POST is in; a cancel sent before that would race it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await session.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 11 } });
    for (const reply of await Promise.all([first, second]))
      assert.equal(responseOf(reply.text).error?.code, -32800);
    assert.equal(responseOf((await session.post(body)).text).error?.code, -32800);
    assert.equal(await executions(session, 'cancel'), 1);
  });
});

describe('same-id retries, over the bounds', () => {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway(
      {
        servers: { s: fixtureServer('well') },
        limits: { retryAnswers: 3, retryAnswerBytes: 2048, retryAnswerAge: '1s' },
      },
      { users: ['alice'] },
    );
    url = `${gw.url}/mcp/s`;
  });
  after(async () => {
    await gw.close();
  });

  it('keeps at most retryAnswers answers, nothing bigger than retryAnswerBytes, none older than retryAnswerAge', async () => {
    const session = await rawSession(url, gw.keys.alice as string);
    const notRunAgain = /already ran once in this session; its answer \(\d+ bytes\) is not kept/;
    for (let id = 1; id <= 4; id++) await session.post(JSON.parse(countCall(id, `k${id}`)));
    // Count: k1's answer was pushed out by k4's; a retry is told so and does not run again.
    const pushedOut = await session.post(JSON.parse(countCall(1, 'k1')));
    assert.match(pushedOut.text, notRunAgain);
    assert.equal(await executions(session, 'k1'), 1);
    // Bytes: an answer bigger than the budget is not kept, and its retry is not run again either.
    await session.post(JSON.parse(countCall(5, 'big', { pad: 4096 })));
    const tooBig = await session.post(JSON.parse(countCall(5, 'big', { pad: 4096 })));
    assert.match(tooBig.text, notRunAgain);
    assert.equal(await executions(session, 'big'), 1);
    // Age: after retryAnswerAge the answer is gone.
    await session.post(JSON.parse(countCall(6, 'old')));
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    await session.post(JSON.parse(countCall(6, 'old')));
    assert.equal(await executions(session, 'old'), 2);
  });
});
