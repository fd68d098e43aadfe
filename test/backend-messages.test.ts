// What a backend writes is checked like what a client sends: a message nested too deep or over
// limits.maxBackendMessageBytes becomes an error for its own request (or is dropped, for a
// notification), and the gateway, the backend and every other user's session carry on.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { OverlongLine } from '../src/backends/overlong-line.ts';
import { encodeMessage } from '../src/protocol/raw-json.ts';
import { plainResponseId, rawResponse } from '../src/protocol/raw-response.ts';
import { connectClient, fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('backend messages over the limits', () => {
  let gw: TestGateway;
  let alice: Client;
  let bob: Client;
  before(async () => {
    gw = await startGateway(
      {
        servers: { demo: fixtureServer('well', { isolation: 'shared' }) },
        limits: { maxBackendMessageBytes: '1MiB' },
      },
      { users: ['alice', 'bob'] },
    );
    alice = (await connectClient(`${gw.url}/mcp/demo`, gw.keys.alice)).client;
    bob = (await connectClient(`${gw.url}/mcp/demo`, gw.keys.bob)).client;
  });
  after(async () => {
    await Promise.all([alice.close(), bob.close()]);
    await gw.close();
  });

  const pid = async (client: Client) => textOf(await client.callTool({ name: 'pid', arguments: {} }));
  const echo = async (client: Client, text: string) =>
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text } })), text);

  it('answers a response nested thousands of levels deep with an error for that call only', async () => {
    const backend = await pid(bob);
    // The client's body is one flat string; the backend turns it into 5,000 levels of nesting.
    await assert.rejects(
      alice.callTool({ name: 'raw', arguments: { json: nested(5_000) } }),
      (error: Error) => {
        assert.match(error.message, /nested deeper than 128 levels; not delivered/);
        return true;
      },
    );
    await echo(bob, 'bob still here');
    await echo(alice, 'alice still here');
    assert.equal(await pid(alice), backend, 'the same backend process serves on');
    // Within the limit the same tool works.
    const shallow = await alice.callTool({ name: 'raw', arguments: { json: nested(50) } });
    assert.equal(JSON.stringify(shallow.structuredContent), `{"value":${nested(50)}}`);
  });

  it('drops a deep notification and answers the call that caused it', async () => {
    assert.equal(
      textOf(await alice.callTool({ name: 'raw-log', arguments: { json: nested(5_000) } })),
      'logged',
    );
    await echo(bob, 'after the deep log');
  });

  it('answers a response over maxBackendMessageBytes with an error naming the limit', async () => {
    const backend = await pid(bob);
    await assert.rejects(
      alice.callTool({ name: 'big', arguments: { bytes: 3 * 1_048_576 } }),
      (error: Error) => {
        assert.match(error.message, /exceeds the gateway's limit of 1048576 bytes; not delivered/);
        return true;
      },
    );
    await echo(bob, 'bob after the big one');
    const fits = await alice.callTool({ name: 'big', arguments: { bytes: 500_000 } });
    assert.equal(textOf(fits).length, 500_000);
    assert.equal(await pid(alice), backend);
    const health = (await (await fetch(`${gw.url}/healthz`)).json()) as { status: string; sessions: number };
    assert.deepEqual([health.status, health.sessions], ['ok', 2]);
  });
});

describe('the id of an over-long line', () => {
  const idOf = (line: string) => {
    const overlong = new OverlongLine();
    // Arrives in pieces, as from a pipe.
    for (let at = 0; at < line.length; at += 100) overlong.add(Buffer.from(line.slice(at, at + 100)));
    return overlong.responseId();
  };
  const filler = `"${'x'.repeat(2_000)}"`;

  it('is read from the start or the end of a response, at the top level only', () => {
    assert.equal(idOf(`{"jsonrpc":"2.0","id":7,"result":{"t":${filler}}}`), 7);
    assert.equal(idOf(`{"result":{"t":${filler}},"jsonrpc":"2.0","id":12}`), 12);
    assert.equal(idOf(`{"error":{"code":1,"message":${filler}},"id":3,"jsonrpc":"2.0"}`), 3);
  });

  it('is not guessed for requests, notifications or an id nested inside the result', () => {
    assert.equal(idOf(`{"jsonrpc":"2.0","id":7,"method":"x","params":{"t":${filler}}}`), undefined);
    assert.equal(idOf(`{"method":"notifications/message","params":{"data":${filler},"id":4}}`), undefined);
    assert.equal(idOf(`{"result":{"t":${filler},"id":5}}`), undefined);
  });
});

describe('large responses passed through as bytes', () => {
  const pieces = (text: string, size: number) => {
    const bytes = Buffer.from(text);
    const parts: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += size) parts.push(bytes.subarray(at, at + size));
    return parts;
  };
  const big = 'é€😀x'.repeat(100_000);

  it('finds the id and the result in both key orders, across pieces cut inside characters', () => {
    const result = JSON.stringify({ content: [{ type: 'text', text: big }] });
    for (const line of [
      `{"jsonrpc":"2.0","id":41,"result":${result}}`,
      `{"result":${result},"jsonrpc":"2.0","id":42}`,
    ]) {
      for (const size of [1_000, 65_536, 7]) {
        if (size === 7 && line.includes('"id":42')) continue; // tiny pieces once is enough
        const parts = pieces(line, size);
        const raw = rawResponse(parts, Buffer.byteLength(line));
        assert.ok(raw, `passed through (${size}-byte pieces)`);
        assert.equal(raw.id, line.includes('"id":41') ? 41 : 42);
        assert.equal(Buffer.concat(raw.result.parts).toString(), result);
        assert.deepEqual(JSON.parse(encodeAsText(raw)), {
          jsonrpc: '2.0',
          id: raw.id,
          result: JSON.parse(result),
        });
      }
    }
  });

  it('leaves to the ordinary parse what it cannot be sure of', () => {
    const body = JSON.stringify({ content: [{ type: 'text', text: big }] });
    const refused = [
      `{"jsonrpc":"2.0","id":1,"method":"x","params":${body}}`, // a request
      `{"jsonrpc":"2.0","id":1,"result":${body.replace('é', '\r')}}`, // a CR would end the SSE line
      `{"jsonrpc":"2.0","id":1,"result":{"a":${'['.repeat(200)}${']'.repeat(200)},"t":${JSON.stringify(big)}}}`,
      `{"jsonrpc":"2.0","id":1,"result":${body}} trailing`,
    ];
    for (const line of refused)
      assert.equal(rawResponse(pieces(line, 65_536), Buffer.byteLength(line)), undefined);
    const invalid = Buffer.concat([
      Buffer.from(`{"jsonrpc":"2.0","id":1,"result":{"t":"`),
      Buffer.from([0xc3, 0x28]),
      Buffer.from(`${'x'.repeat(300_000)}"}}`),
    ]);
    assert.equal(rawResponse([invalid], invalid.length), undefined, 'invalid UTF-8');
  });

  it('recognizes the same on decoded text (an SSE event in connect), and refuses what it refuses', () => {
    const result = JSON.stringify({ content: [{ type: 'text', text: big }] });
    assert.equal(plainResponseId(`{"jsonrpc":"2.0","id":41,"result":${result}}`), 41);
    assert.equal(plainResponseId(`{"result":${result},"jsonrpc":"2.0","id":42}`), 42);
    const body = JSON.stringify({ content: [{ type: 'text', text: big }] });
    for (const text of [
      `{"jsonrpc":"2.0","id":1,"method":"x","params":${body}}`,
      `{"jsonrpc":"2.0","id":1,"result":${body.replace('é', '\n')}}`, // an LF would end the stdio line
      `{"jsonrpc":"2.0","id":1,"result":{"a":${'['.repeat(200)}${']'.repeat(200)},"t":${JSON.stringify(big)}}}`,
      `{"jsonrpc":"2.0","id":1,"result":${body}} trailing`,
      `{"jsonrpc":"2.0","id":1,"result":[${body}]}`, // a result that is not an object
    ])
      assert.equal(plainResponseId(text), undefined, text.slice(0, 60));
  });

  it('delivers a large result unchanged through the gateway, as JSON and as SSE', async () => {
    const gw = await startGateway(
      { servers: { demo: fixtureServer('well', { isolation: 'shared' }) }, audit: { file: 'audit.jsonl' } },
      { users: ['alice'] },
    );
    try {
      const { client } = await connectClient(`${gw.url}/mcp/demo`, gw.keys.alice);
      const text = 'ü'.repeat(400_000);
      const viaRaw = await client.callTool({ name: 'raw', arguments: { json: JSON.stringify(text) } });
      assert.equal((viaRaw.structuredContent as { value: string }).value, text);
      assert.equal(
        textOf(await client.callTool({ name: 'big', arguments: { bytes: 5_000_000 } })).length,
        5_000_000,
      );
      // After the one-second JSON window the reply is an SSE stream.
      const late = await client.callTool({ name: 'big', arguments: { bytes: 3_000_000, ms: 1_300 } });
      assert.equal(textOf(late), 'x'.repeat(3_000_000));
      await client.close();
      const audit = readFileSync(join(gw.dir, 'audit.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map(
          (line) =>
            JSON.parse(line) as { event: string; tool?: string; outcome: string; responseBytes: number },
        );
      const calls = audit.filter((record) => record.event === 'tools.call' && record.tool === 'big');
      assert.deepEqual(
        calls.map((record) => record.outcome),
        ['ok', 'ok'],
      );
      assert.ok((calls[0]?.responseBytes ?? 0) >= 5_000_000, `responseBytes ${calls[0]?.responseBytes}`);
    } finally {
      await gw.close();
    }
  });
});

function encodeAsText(message: unknown): string {
  const encoded = encodeMessage(message);
  return typeof encoded === 'string' ? encoded : Buffer.concat(encoded).toString();
}
