// The bridge under a client that reads slowly, and a gateway that sends too much: what it holds in
// memory stays bounded (one message per stream past the output's buffer, 64 MiB for a JSON body),
// and everything arrives, in order, once the client reads again.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createBridge } from '../src/connect/bridge.ts';

const EVENT_CHARS = 64 * 1024;
const EVENTS = 600; // ~38 MiB: more than loopback socket buffers hold, so a bounded bridge blocks the server
const SESSION = 'session-1';

interface Progress {
  sent: number;
  /** Since when the server waits for the bridge to read (0 when it is not waiting). */
  blockedSince: number;
  done: boolean;
  jsonBytes: number;
  jsonClosed: boolean;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
    });
    req.on('end', () => resolve(text));
  });
}

/** Writes one chunk; when the socket is full, waits for drain (true) or close (false), leaving no listener behind. */
async function writeAll(res: ServerResponse, chunk: string, progress: Progress): Promise<boolean> {
  if (res.write(chunk)) return true;
  progress.blockedSince = Date.now();
  const drained = await new Promise<boolean>((resolve) => {
    const onDrain = () => {
      res.off('close', onClose);
      resolve(true);
    };
    const onClose = () => {
      res.off('drain', onDrain);
      resolve(false);
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
  progress.blockedSince = 0;
  return drained;
}

/** A minimal Streamable HTTP gateway: `flood` streams EVENTS log messages, `huge` an endless JSON body. */
function fakeGateway(progress: Progress): Server {
  return createServer(async (req, res) => {
    if (req.method === 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (req.method === 'DELETE') {
      res.writeHead(200).end();
      return;
    }
    const message = JSON.parse(await readBody(req)) as {
      id?: number;
      method: string;
      params?: { name?: string; arguments?: { layout?: string } };
    };
    if (message.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    const json = { 'content-type': 'application/json', 'mcp-session-id': SESSION };
    if (message.method === 'initialize') {
      res.writeHead(200, json).end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: message.id,
          result: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            serverInfo: { name: 'fake', version: '1' },
          },
        }),
      );
      return;
    }
    if (message.params?.name === 'large') {
      const layout = message.params.arguments?.layout;
      if (layout === 'sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': SESSION });
        res.end(`id: 1\ndata: ${largeAnswer(message.id)}\n\n`);
      } else res.writeHead(200, json).end(largeAnswer(message.id, layout));
      return;
    }
    if (message.params?.name === 'huge') {
      // Valid JSON that never ends: a bridge that reads it all before checking the size never stops.
      res.writeHead(200, json);
      const filler = 'x'.repeat(1024 * 1024);
      res.on('close', () => {
        progress.jsonClosed = true;
      });
      if (!(await writeAll(res, `{"jsonrpc":"2.0","id":${message.id},"result":{"text":"`, progress))) return;
      while (progress.jsonBytes < 256 * 1024 * 1024) {
        if (!(await writeAll(res, filler, progress))) return;
        progress.jsonBytes += filler.length;
      }
      res.end('"}}');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': SESSION });
    const filler = 'y'.repeat(EVENT_CHARS);
    for (let n = 0; n < EVENTS; n++) {
      const log = {
        jsonrpc: '2.0',
        method: 'notifications/message',
        params: { level: 'info', data: `${n}:${filler}` },
      };
      if (!(await writeAll(res, `data: ${JSON.stringify(log)}\n\n`, progress))) return;
      progress.sent = n + 1;
    }
    progress.done = true;
    res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [] } })}\n\n`);
  });
}

/**
 * A 1 MiB JSON answer, as the gateway writes it (compact, with an escape a parser would decode), or
 * spread over lines (valid JSON that must not reach stdio as it is).
 */
function largeAnswer(id: number, layout = 'compact'): string {
  const text = `caf\\u00e9 ${'z'.repeat(1024 * 1024)}`;
  if (layout === 'lines') {
    return `{\n  "jsonrpc": "2.0",\n  "id": ${id},\n  "result": {"content": [{"type": "text", "text": "${text}"}]}\n}`;
  }
  return `{"jsonrpc":"2.0","id":${id},"result":{"content":[{"type":"text","text":"${text}"}]}}`;
}

/** Claude Desktop reading slowly: while paused, nothing written is taken. */
class SlowReader extends Writable {
  readonly lines: string[] = [];
  #partial = '';
  #held: (() => void)[] = [];
  paused = false;
  #waiters: (() => void)[] = [];

  constructor() {
    super({ highWaterMark: 16 * 1024, decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    const parts = (this.#partial + chunk.toString()).split('\n');
    this.#partial = parts.pop() ?? '';
    this.lines.push(...parts);
    for (const waiter of this.#waiters.splice(0)) waiter();
    if (this.paused) this.#held.push(callback);
    else callback();
  }

  resume(): void {
    this.paused = false;
    for (const callback of this.#held.splice(0)) callback();
  }

  async lineMatching(test: (line: string) => boolean, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find(test);
      if (line !== undefined) return line;
      if (Date.now() > deadline) assert.fail('no such line in time');
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
}

describe('connect: a slow client and an oversized gateway answer', () => {
  const progress: Progress = { sent: 0, blockedSince: 0, done: false, jsonBytes: 0, jsonClosed: false };
  let server: Server;
  let url: string;
  before(async () => {
    server = fakeGateway(progress);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function bridged(): Promise<{ input: PassThrough; output: SlowReader; close: () => Promise<void> }> {
    const input = new PassThrough();
    const output = new SlowReader();
    const bridge = createBridge({ url, input, output, retryDelaysMs: [] });
    input.write(
      `${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } })}\n`,
    );
    await output.lineMatching((line) => line.includes('"id":1'));
    input.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    return {
      input,
      output,
      close: async () => {
        output.resume();
        await bridge.close();
      },
    };
  }

  it('holds the gateway stream back while the client does not read, then delivers all of it in order', async () => {
    const { input, output, close } = await bridged();
    try {
      output.paused = true;
      input.write(
        `${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood' } })}\n`,
      );
      // Either the server ends up waiting for the bridge (bounded), or it got everything out (unbounded).
      const deadline = Date.now() + 60_000;
      while (!progress.done && !(progress.blockedSince > 0 && Date.now() - progress.blockedSince > 1_000)) {
        assert.ok(Date.now() < deadline, 'the server neither finished nor blocked');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const buffered = output.writableLength;
      assert.ok(
        buffered <= 16 * 1024 + 2 * (EVENT_CHARS + 1024),
        `the bridge buffered ${buffered} bytes for a client that does not read (${progress.sent} of ${EVENTS} events sent)`,
      );
      assert.equal(progress.done, false, 'the server could send everything although nobody read it');
      output.resume();
      await output.lineMatching((line) => line.includes('"id":2'));
      const logs = output.lines.filter((line) => line.includes('notifications/message'));
      assert.equal(logs.length, EVENTS);
      logs.forEach((line, n) => {
        assert.ok(line.includes(`"data":"${n}:`), `event ${n} out of order`);
      });
    } finally {
      await close();
    }
  });

  it('stops reading a JSON answer at 64 MiB and answers the request with an error', async () => {
    const { input, output, close } = await bridged();
    try {
      input.write(
        `${JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'huge' } })}\n`,
      );
      const answer = JSON.parse(await output.lineMatching((line) => line.includes('"id":3'), 120_000)) as {
        error?: { message: string };
      };
      assert.match(answer.error?.message ?? '', /too large/);
      const deadline = Date.now() + 10_000;
      while (!progress.jsonClosed && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(progress.jsonClosed, 'the bridge should have dropped the connection');
      assert.ok(
        progress.jsonBytes < 128 * 1024 * 1024,
        `the bridge read ${progress.jsonBytes} bytes of an answer limited to 64 MiB`,
      );
    } finally {
      await close();
    }
  });

  it('writes a large answer (a JSON body or an SSE event) out as the gateway sent it, and one spread over lines as one line', async () => {
    const { input, output, close } = await bridged();
    try {
      const call = (id: number, layout: string) =>
        `${JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'large', arguments: { layout } } })}\n`;
      input.write(call(5, 'compact'));
      const compact = await output.lineMatching((line) => line.includes('"id":5'));
      assert.equal(compact, largeAnswer(5), 'passed through unchanged: the escape is still there');
      input.write(call(6, 'lines'));
      const spread = await output.lineMatching((line) => line.includes('"id":6'));
      assert.equal(spread, JSON.stringify(JSON.parse(largeAnswer(6, 'lines'))));
      assert.ok(spread.includes('café'), 'parsed and written again as one line');
      input.write(call(7, 'sse'));
      const event = await output.lineMatching((line) => line.includes('"id":7'));
      assert.equal(event, largeAnswer(7), "an SSE event's data, passed through unchanged as well");
    } finally {
      await close();
    }
  });
});
