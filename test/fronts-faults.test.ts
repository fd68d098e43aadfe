// Faults over every front (Streamable HTTP at /mcp, WebSocket at /ws, legacy HTTP+SSE at
// /mcp/<server>/sse), each run once per front with the official SDK client: a backend that dies with
// calls in flight (each gets a clear error, the next call runs on a new process), and a real
// `mcp-relay serve` SIGTERMed and started again on the same port (a call in flight is answered or gets
// a clear error, never a hang; a new client and the `connect` bridge work against the new process).
// Bad input per front: bad-input.test.ts (HTTP) and fronts-bad-input.test.ts (WebSocket, SSE).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type Bridged, connectThroughBridge } from './helpers/cli.ts';
import { FIXTURE_SERVER, fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { type ServeProcess, startServe } from './helpers/serve.ts';
import { eventually } from './helpers/wait.ts';
import { BearerWebSocketTransport, connectOver, type Front, wsUrlOf } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 45_000 };
const FRONTS: readonly Front[] = ['http', 'ws', 'sse'];
const BACKEND_UNAVAILABLE = -32000;
const SESSION_NOT_FOUND = -32002;

/** How a settled call ended: its text, or its error's code and message. */
type Outcome = { text: string } | { code: number | undefined; message: string };

function outcomeOf(call: Promise<unknown>): Promise<Outcome> {
  return call.then(
    (result) => ({ text: textOf(result) }),
    (error: { code?: number; message: string }) => ({ code: error.code, message: error.message }),
  );
}

/** The `count` tool: appends `key` to `file` as it starts (so a test knows it reached the backend), then waits `ms`. */
const count = (file: string, key: string, ms: number) => ({
  name: 'count',
  arguments: { key, ms, file },
});
const started = (file: string) =>
  readFileSync(file, { encoding: 'utf8', flag: 'a+' }).split('\n').filter(Boolean);

/** An SDK client over `front`; over WebSocket also the close code and reason the gateway sent. */
async function open(front: Front, base: string, server: string, key?: string) {
  if (front !== 'ws') return { ...(await connectOver(front, base, server, key)), closed: undefined };
  const transport = new BearerWebSocketTransport(wsUrlOf(base, server), key);
  const client = new Client({ name: 'faults', version: '1' });
  await client.connect(transport);
  return { client, close: () => client.close(), closed: transport.closed };
}

/** What `mcp-relay connect --transport <front>` is given for `server`. */
function bridgeUrl(front: Front, base: string, server: string): string {
  if (front === 'ws') return wsUrlOf(base, server);
  return front === 'sse' ? `${base}/mcp/${server}/sse` : `${base}/mcp/${server}`;
}

for (const front of FRONTS) {
  describe(`${front} front: a backend that dies mid-call`, () => {
    let gw: TestGateway;
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-fronts-crash-'));
    const file = join(dir, 'started.txt');

    before(async () => {
      gw = await startGateway(
        { servers: { s: fixtureServer('well', { isolation: 'shared' }) } },
        { users: ['alice', 'bob'] },
      );
    });
    after(async () => {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it(
      'fails every call in flight with a clear error, and the next call runs on a new process',
      TIMEOUT,
      async () => {
        const alice = await open(front, gw.url, 's', gw.keys.alice);
        const bob = await open(front, gw.url, 's', gw.keys.bob);
        const pid = async (session: typeof alice) =>
          textOf(await session.client.callTool({ name: 'pid', arguments: {} }));
        const before = await pid(alice);
        // bob's call is running in the backend when alice's call makes it exit.
        const waiting = outcomeOf(
          bob.client.callTool(count(file, 'bob', 20_000), undefined, { timeout: 30_000 }),
        );
        await eventually(() => started(file).includes('bob'), "bob's call to reach the backend");
        const crashed = await outcomeOf(alice.client.callTool({ name: 'crash', arguments: {} }));
        const expected = {
          code: BACKEND_UNAVAILABLE,
          message: 'MCP error -32000: backend exited (code 3); it is being restarted',
        };
        assert.deepEqual(crashed, expected);
        assert.deepEqual(await waiting, expected);
        // The same sessions carry on, on a new process.
        const after = await pid(alice);
        assert.notEqual(after, before);
        assert.equal(await pid(bob), after);
        assert.equal(
          textOf(await bob.client.callTool({ name: 'echo', arguments: { text: 'after the crash' } })),
          'after the crash',
        );
        await Promise.all([alice.close(), bob.close()]);
      },
    );
  });
}

// One gateway process, restarted once, with a client and a bridge of each front busy through it.
describe('the gateway restarted under clients of every front', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-fronts-restart-'));
  const file = join(dir, 'started.txt');
  const configFile = join(dir, 'relay.yaml');
  const writeConfig = (port: number) =>
    writeFileSync(
      configFile,
      JSON.stringify({
        listen: { host: '127.0.0.1', port },
        shutdownTimeout: '1500ms',
        servers: { s: { command: process.execPath, args: [FIXTURE_SERVER, 'well'], isolation: 'shared' } },
      }),
    );
  let first: ServeProcess;
  let second: ServeProcess | undefined;
  let base: string;
  let signalled: number;
  const busy = new Map<
    Front,
    {
      client: Awaited<ReturnType<typeof open>>;
      bridge: Bridged;
      /** A call that ends within shutdownTimeout, one that does not, and one through the bridge that does not. */
      short: Promise<Outcome>;
      long: Promise<Outcome>;
      bridged: Promise<Outcome>;
    }
  >();

  before(async () => {
    writeConfig(0);
    first = await startServe(configFile);
    const exited = once(first.child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    base = first.url as string;
    await Promise.all(
      FRONTS.map(async (front) => {
        const client = await open(front, base, 's');
        const bridge = await connectThroughBridge(bridgeUrl(front, base, 's'), {
          args: ['--transport', front],
        });
        assert.equal(
          textOf(await bridge.client.callTool({ name: 'echo', arguments: { text: 'before' } })),
          'before',
        );
        busy.set(front, {
          client,
          bridge,
          short: outcomeOf(client.client.callTool(count(file, `${front} short`, 300))),
          long: outcomeOf(
            client.client.callTool(count(file, `${front} long`, 30_000), undefined, { timeout: 60_000 }),
          ),
          bridged: outcomeOf(
            bridge.client.callTool(count(file, `${front} bridged`, 30_000), undefined, { timeout: 60_000 }),
          ),
        });
      }),
    );
    await eventually(() => started(file).length === 3 * FRONTS.length, 'every call to reach the backend');
    signalled = Date.now();
    first.child.kill('SIGTERM');
    // Not stop(): a second SIGTERM would cut the shutdown short.
    const [code] = await exited;
    assert.equal(code, 0, first.stderr());
    // The same port again.
    writeConfig(Number(new URL(base).port));
    second = await startServe(configFile);
    assert.equal(second.url, base);
  });

  after(async () => {
    for (const { client, bridge } of busy.values()) {
      await bridge.close().catch(() => undefined);
      await client.close().catch(() => undefined);
    }
    await first?.stop();
    await second?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const front of FRONTS) {
    describe(`${front} front`, () => {
      it(
        'answers the call that finished within shutdownTimeout and fails the one that did not, saying it may have run',
        TIMEOUT,
        async (t) => {
          const { short, long, bridged, client } = busy.get(front) as NonNullable<
            ReturnType<typeof busy.get>
          >;
          assert.deepEqual(await short, { text: `counted ${front} short` });
          const mayHaveRun = {
            code: SESSION_NOT_FOUND,
            message:
              'MCP error -32002: session ended (gateway shut down before the answer came; the request may have run)',
          };
          const [direct, throughBridge] = await Promise.all([long, bridged]);
          t.diagnostic(
            `in flight: ${JSON.stringify(direct)}; through the bridge: ${JSON.stringify(throughBridge)}`,
          );
          assert.deepEqual(direct, mayHaveRun);
          assert.deepEqual(throughBridge, mayHaveRun);
          assert.ok(Date.now() - signalled < 10_000, 'the calls in flight ended within 10 s of SIGTERM');
          if (client.closed) {
            const closed = await client.closed;
            // 1001 going away; the reason says the calls left may have run ("shutting down" when none were).
            assert.equal(closed.code, 1001);
            assert.equal(
              closed.reason,
              'session ended: gateway shut down before the answer came; the request may have run',
            );
          }
        },
      );

      it('serves a new client on the new process', TIMEOUT, async () => {
        const fresh = await open(front, base, 's');
        assert.equal(
          textOf(await fresh.client.callTool({ name: 'echo', arguments: { text: 'new process' } })),
          'new process',
        );
        await fresh.close();
      });

      it('serves the bridge’s next call: it re-initializes behind its client', TIMEOUT, async () => {
        const { bridge } = busy.get(front) as NonNullable<ReturnType<typeof busy.get>>;
        assert.equal(
          textOf(await bridge.client.callTool({ name: 'echo', arguments: { text: 'bridged again' } })),
          'bridged again',
        );
      });
    });
  }

  it('ran each call once: none again on the new process', () => {
    const expected = FRONTS.flatMap((front) => [`${front} bridged`, `${front} long`, `${front} short`]);
    assert.deepEqual(started(file).sort(), expected.sort());
  });
});
