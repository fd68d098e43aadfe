// Bounded streams: a client that never reads an SSE stream cannot grow the gateway (limits.streamBufferBytes;
// measured from outside, as the RSS of a real `serve` child), and a Last-Event-ID resumption counts
// against requestsPerMinute and replaces the live GET stream.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURE_SERVER, fixtureServer, INITIALIZE, rawPost, startGateway } from './helpers/gateway.ts';
import { httpRequest } from './helpers/raw-http.ts';
import { type ServeProcess, startServe } from './helpers/serve.ts';
import { eventually } from './helpers/wait.ts';

const MiB = 1_048_576;

/** The gateway child's resident set in bytes (/proc/<pid>/status VmRSS). */
function rss(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

/** A session on `endpoint` made with plain HTTP (no auth: the loopback user "local"). */
async function openSession(endpoint: string, auth: Record<string, string> = {}) {
  const init = await rawPost(endpoint, INITIALIZE, auth);
  assert.equal(init.status, 200, init.text);
  const headers = { ...auth, 'mcp-session-id': init.headers.get('mcp-session-id') as string };
  await rawPost(endpoint, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers);
  return headers;
}

function call(
  id: number,
  name: string,
  args: Record<string, unknown>,
  meta?: Record<string, unknown>,
): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
  });
}

/** Sends a request on a raw socket and does not read the answer (until `drain` is called). */
function neverReading(port: number, bytes: Buffer): { socket: Socket; drain(ms: number): Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(bytes);
  return {
    socket,
    /** Reads everything that arrives until the server closes (or `ms` pass): the text received. */
    drain(ms: number) {
      return new Promise((resolve) => {
        const chunks: Buffer[] = [];
        const done = () => {
          clearTimeout(timer);
          socket.destroy();
          resolve(Buffer.concat(chunks).toString('latin1'));
        };
        const timer = setTimeout(done, ms);
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.once('close', done);
        socket.once('end', done);
        socket.resume();
      });
    },
  };
}

/** Samples the child's RSS every 50 ms until `work` settles; resolves with the highest value seen. */
async function peakRss(pid: number, work: Promise<unknown>): Promise<number> {
  let peak = rss(pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss(pid));
  }, 50);
  try {
    await work;
  } finally {
    clearInterval(sampler);
  }
  return Math.max(peak, rss(pid));
}

describe('a client that never reads an SSE stream (real serve child, RSS)', () => {
  const FLOOD = 96 * MiB;
  let dir: string;
  let serve: ServeProcess;
  let endpoint: string;
  let port: number;
  let marker: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-bounds-'));
    const file = join(dir, 'relay.yaml');
    marker = join(dir, 'floods');
    writeFileSync(
      file,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        'limits: { streamBufferBytes: 1MiB }',
        'sse: { keepAlive: 1s, replayBytes: 1MiB }',
        'servers:',
        '  well:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(FIXTURE_SERVER)}]`,
        '',
      ].join('\n'),
    );
    serve = await startServe(file);
    endpoint = `${serve.url}/mcp/well`;
    port = Number(new URL(serve.url as string).port);
  });

  after(async () => {
    if (process.env.SHOW_SERVE_LOG) console.log(serve?.stderr());
    await serve?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Waits until the backend wrote `line` to the marker file (`<key>` as a flood begins, `<key> done` after it). */
  async function marked(line: string): Promise<void> {
    await eventually(
      () => existsSync(marker) && readFileSync(marker, 'utf8').split('\n').includes(line),
      `the backend to mark "${line}"`,
      60_000,
    );
  }

  it(`POST stream: ${FLOOD / MiB} MiB of progress to a reader that never reads`, async () => {
    const headers = await openSession(endpoint);
    assert.equal((await rawPost(endpoint, call(1, 'echo', { text: 'warm' }), headers)).status, 200);
    const baseline = rss(serve.pid);
    const body = call(
      7,
      'flood',
      { bytes: FLOOD, chunk: 64 * 1024, file: marker, key: 7 },
      { progressToken: 'p7' },
    );
    const client = neverReading(
      port,
      httpRequest(
        'POST',
        '/mcp/well',
        [
          ['Host', `127.0.0.1:${port}`],
          ['Accept', 'application/json, text/event-stream'],
          ['Content-Type', 'application/json'],
          ['Mcp-Session-Id', headers['mcp-session-id'] as string],
        ],
        body,
      ),
    );
    await marked('7');
    const peak = await peakRss(serve.pid, marked('7 done'));
    const growth = peak - baseline;
    console.log(`POST stream: RSS growth ${(growth / MiB).toFixed(1)} MiB for ${FLOOD / MiB} MiB sent`);
    // Closed for not reading: what arrives is a small part of the flood, and the stream ends.
    const received = await client.drain(5_000);
    assert.ok(received.length < FLOOD / 4, `the client received ${received.length} bytes`);
    assert.ok(!received.includes('"flooded"'), 'the connection was closed before the response');
    assert.ok(growth < 64 * MiB, `the gateway grew by ${(growth / MiB).toFixed(1)} MiB`);
    // The cut stream stays resumable: from the last event it saw, the client gets the answer.
    const lastSeen = [...received.matchAll(/^id: (\S+)$/gm)].at(-1)?.[1];
    assert.ok(lastSeen, 'the client saw at least one event id before the cut');
    const resumed = await fetch(endpoint, {
      headers: { ...headers, accept: 'text/event-stream', 'last-event-id': lastSeen },
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(resumed.status, 200);
    const reader = (resumed.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let tail = '';
    while (!tail.includes('"flooded"')) {
      const { value, done } = await reader.read();
      if (done) break;
      tail = (tail + decoder.decode(value, { stream: true })).slice(-4096);
    }
    await reader.cancel();
    const answer = /^data: (.*"flooded".*)$/m.exec(tail)?.[1];
    assert.ok(answer, `the resumed stream carried the answer: …${tail.slice(-300)}`);
    assert.equal(JSON.parse(answer).id, 7);
  });

  it(`GET stream: ${FLOOD / MiB} MiB of log messages to a reader that never reads`, async () => {
    const headers = await openSession(endpoint);
    assert.equal((await rawPost(endpoint, call(1, 'echo', { text: 'warm' }), headers)).status, 200);
    const client = neverReading(
      port,
      httpRequest('GET', '/mcp/well', [
        ['Host', `127.0.0.1:${port}`],
        ['Accept', 'text/event-stream'],
        ['Mcp-Session-Id', headers['mcp-session-id'] as string],
      ]),
    );
    // The GET stream is open once the gateway routes the session's background messages to it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const baseline = rss(serve.pid);
    const started = await rawPost(
      endpoint,
      call(2, 'flood', { bytes: FLOOD, chunk: 64 * 1024, later: true, file: marker, key: 'get' }),
      headers,
    );
    assert.equal(started.status, 200, started.text);
    await marked('get');
    const peak = await peakRss(serve.pid, marked('get done'));
    const growth = peak - baseline;
    console.log(`GET stream: RSS growth ${(growth / MiB).toFixed(1)} MiB for ${FLOOD / MiB} MiB sent`);
    const received = await client.drain(5_000);
    assert.match(received, /^HTTP\/1\.1 200/, 'the GET stream was opened');
    assert.ok(received.length < FLOOD / 4, `the client received ${received.length} bytes`);
    assert.ok(growth < 64 * MiB, `the gateway grew by ${(growth / MiB).toFixed(1)} MiB`);
    // The session outlives the cut stream: the client may resume or open a new GET.
    assert.equal((await rawPost(endpoint, call(3, 'echo', { text: 'still here' }), headers)).status, 200);
  });
});

describe('resumptions: counted, one live GET per session', () => {
  let gw: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    gw = await startGateway(
      {
        servers: { well: fixtureServer(), limited: fixtureServer('well', { requestsPerMinute: 8 }) },
        sse: { replayBytes: '4MiB' },
      },
      { users: ['ann', 'bob'] },
    );
  });

  after(async () => {
    await gw?.close();
  });

  it('counts Last-Event-ID resumptions against requestsPerMinute and keeps one live GET per session', async () => {
    const bob = { authorization: `Bearer ${gw.keys.bob}` };
    const headers = await openSession(`${gw.url}/mcp/limited`, bob);
    const controller = new AbortController();
    const first = await fetch(`${gw.url}/mcp/limited`, {
      headers: { ...headers, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(first.status, 200);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    const priming = new TextDecoder().decode((await reader.read()).value);
    const eventId = /id: (\S+)/.exec(priming)?.[1];
    assert.ok(eventId, priming);
    // The resume replaces the first connection, which ends instead of staying open forever.
    const second = await fetch(`${gw.url}/mcp/limited`, {
      headers: { ...headers, accept: 'text/event-stream', 'last-event-id': eventId },
      signal: controller.signal,
    });
    assert.equal(second.status, 200);
    const ended = await Promise.race([
      (async () => {
        while (!(await reader.read()).done) {}
        return true;
      })(),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000).unref()),
    ]);
    assert.ok(ended, 'the replaced GET connection ended');
    // Each resumption is one request: the server's 8 per minute run out (initialize counted one).
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const resumed = await fetch(`${gw.url}/mcp/limited`, {
        headers: { ...headers, accept: 'text/event-stream', 'last-event-id': eventId },
        signal: controller.signal,
      });
      statuses.push(resumed.status);
      if (resumed.status !== 200) await resumed.text();
    }
    controller.abort();
    assert.ok(statuses.includes(429), `statuses: ${statuses.join(' ')}`);
    assert.equal(statuses.indexOf(429), 6, `statuses: ${statuses.join(' ')}`);
  });
});

describe('delivered results are not kept for the life of the session (real serve child, RSS)', () => {
  const RESULT = 10 * MiB;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-replay-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** RSS growth of a gateway whose one session gets 8 results of 10 MiB as SSE streams, read in full. */
  async function growthWith(sse: string): Promise<number> {
    const file = join(dir, `relay-${Math.random()}.yaml`);
    writeFileSync(
      file,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        `sse: ${sse}`,
        'servers:',
        `  well: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE_SERVER)}], isolation: shared }`,
        '',
      ].join('\n'),
    );
    const serve = await startServe(file);
    try {
      const endpoint = `${serve.url}/mcp/well`;
      const headers = await openSession(endpoint);
      // One result first, so both gateways have grown their buffers once before the baseline.
      const warm = await rawPost(endpoint, call(1, 'big', { bytes: RESULT, ms: 1_200 }), headers);
      assert.ok(warm.text.length > RESULT, 'the whole result arrived');
      const baseline = rss(serve.pid);
      for (let id = 2; id <= 9; id++) {
        // After the one-second JSON window the result comes as an SSE stream, whose events are kept for resumption.
        const reply = await rawPost(endpoint, call(id, 'big', { bytes: RESULT, ms: 1_200 }), headers);
        assert.ok(reply.text.startsWith('id: ') || reply.text.includes('\ndata: '), 'an SSE reply');
      }
      return rss(serve.pid) - baseline;
    } finally {
      await serve.stop();
    }
  }

  it('keeps results within sse.replayBytes; a replay log without that bound holds all of them', async () => {
    const bounded = await growthWith('{ replayBytes: 2MiB }');
    const unbounded = await growthWith('{ replayBytes: 1GiB, replayAge: 1h }');
    console.log(
      `8 × 10 MiB results: RSS growth ${(bounded / MiB).toFixed(1)} MiB with the default bound, ${(unbounded / MiB).toFixed(1)} MiB without`,
    );
    // The control shows the measurement sees retention at all: without the bound the results stay.
    assert.ok(
      unbounded > 60 * MiB,
      `without a bound the gateway grew by only ${(unbounded / MiB).toFixed(1)} MiB`,
    );
    assert.ok(bounded < 40 * MiB, `with the bound the gateway grew by ${(bounded / MiB).toFixed(1)} MiB`);
  });
});

describe('a body over maxBodyBytes sent by a client that does not wait for 100-continue', () => {
  it('gets its 413 (the gateway reads and discards the rest for a bounded time and size)', async () => {
    const gw = await startGateway({ servers: { well: fixtureServer() } }, { users: ['ann'] });
    try {
      const headers = await openSession(`${gw.url}/mcp/well`, { authorization: `Bearer ${gw.keys.ann}` });
      // fetch streams the whole body before it reads the answer: closing on it would be EPIPE/ECONNRESET.
      const response = await fetch(`${gw.url}/mcp/well`, {
        method: 'POST',
        headers: {
          ...headers,
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
        },
        // Sent in pieces as a slow uplink would, still going long after the gateway has answered.
        body: trickle(16 * MiB, 256 * 1024, 5),
        duplex: 'half',
      } as RequestInit);
      assert.equal(response.status, 413);
      assert.match(await response.text(), /body exceeds/);
    } finally {
      await gw.close();
    }
  });
});

/** A request body of `bytes` spaces, `piece` bytes every `ms`. */
function trickle(bytes: number, piece: number, ms: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      if (sent >= bytes) {
        controller.close();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, ms));
      controller.enqueue(new Uint8Array(piece).fill(0x20));
      sent += piece;
    },
  });
}
