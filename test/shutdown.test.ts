// SIGTERM of a real `mcp-relay serve` with a busy SDK client, a busy `connect` bridge and a busy raw
// connection: calls in flight finish within shutdownTimeout and get their results, a call that cannot
// gets an error saying it may have run, a new initialize is refused with 503, no backend starts after
// shutdown began, and the process exits within shutdownTimeout + 2 s.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connectThroughBridge } from './helpers/cli.ts';
import { connectClient, FIXTURE_SERVER, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { startServe } from './helpers/serve.ts';
import { eventually } from './helpers/wait.ts';

const SHUTDOWN_TIMEOUT_MS = 4_000;

describe('serve: SIGTERM while busy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-shutdown-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('drains calls in flight, refuses new sessions, starts no backend, exits in time', async () => {
    const countFile = join(dir, 'count.txt');
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        shutdownTimeout: `${SHUTDOWN_TIMEOUT_MS}ms`,
        servers: { s: { command: process.execPath, args: [FIXTURE_SERVER], isolation: 'per-session' } },
      }),
    );
    const serve = await startServe(file);
    const exited = once(serve.child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    const url = `${serve.url}/mcp/s`;
    const count = (key: string, ms: number) => ({ name: 'count', arguments: { key, ms, file: countFile } });
    const counted = () =>
      readFileSync(countFile, { encoding: 'utf8', flag: 'a+' }).split('\n').filter(Boolean);
    const sdk = await connectClient(url, undefined);
    const bridged = await connectThroughBridge(url);
    try {
      // A raw connection with a call in flight, on which the next request (pipelined) comes during shutdown.
      const init = await rawPost(url, INITIALIZE);
      const sessionId = init.headers.get('mcp-session-id') as string;
      await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
        'mcp-session-id': sessionId,
      });
      const socket = connect(Number(new URL(url).port), '127.0.0.1');
      let raw = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => {
        raw += chunk;
      });
      const socketClosed = once(socket, 'close');
      const post = (body: string, headers: string) =>
        `POST /mcp/s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      socket.write(
        post(
          JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: count('raw', 2_000) }),
          `Mcp-Session-Id: ${sessionId}\r\n`,
        ),
      );
      const sdkCall = sdk.client.callTool(count('sdk', 2_000));
      const bridgeCall = bridged.client.callTool(count('bridge', 2_000));
      const longCall = sdk.client.callTool(count('long', 60_000), undefined, { timeout: 120_000 }).then(
        () => 'answered',
        (error: Error) => error.message,
      );
      await eventually(() => counted().length === 4, 'all four calls to reach the backend');
      const backendsBefore = (serve.stderr().match(/"backend started"/g) ?? []).length;
      // The raw session's GET stream, open through the shutdown: it must end with when to reconnect.
      const getStream = await fetch(url, {
        headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId },
      });
      assert.equal(getStream.status, 200);
      const getStreamText = getStream.text().catch((error: Error) => `failed: ${error.message}`);

      const signalled = Date.now();
      serve.child.kill('SIGTERM');
      await eventually(
        () => serve.stderr().includes('waiting for calls in flight'),
        'the gateway to begin stopping',
      );
      // The same connection, busy with the call above, so it stays open: a new session is refused.
      socket.write(post(INITIALIZE, 'Connection: close\r\n'));
      // A new connection is not accepted at all.
      await assert.rejects(connectClient(url, undefined));

      assert.equal(textOf(await sdkCall), 'counted sdk');
      assert.equal(textOf(await bridgeCall), 'counted bridge');
      await socketClosed;
      assert.match(raw, /counted raw/);
      assert.match(raw, /HTTP\/1\.1 503 [\s\S]*shutting down/);
      assert.match(await longCall, /shut down before the answer came; the request may have run/);
      assert.match(await getStreamText, /retry: 5000\n\n$/, 'the GET stream ends with a retry delay');

      const [code] = await exited;
      const tookMs = Date.now() - signalled;
      assert.equal(code, 0, serve.stderr());
      assert.ok(tookMs < SHUTDOWN_TIMEOUT_MS + 2_000, `exited after ${tookMs} ms`);
      const backendsAfter = (serve.stderr().match(/"backend started"/g) ?? []).length;
      assert.equal(backendsAfter, backendsBefore, 'no backend started after shutdown began');
      assert.deepEqual(counted().sort(), ['bridge', 'long', 'raw', 'sdk'], 'each call ran once');
      process.stderr.write(`# SIGTERM → exit: ${tookMs} ms (shutdownTimeout ${SHUTDOWN_TIMEOUT_MS} ms)\n`);
    } finally {
      await bridged.close().catch(() => undefined);
      await sdk.client.close().catch(() => undefined);
      if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
    }
  });
});
