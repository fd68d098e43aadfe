// `mcp-relay connect`: the bridge as a real child process between the official SDK client (stdio)
// and a real Streamable HTTP MCP server (connect-unit.test.ts: its SSE parser and flag parsing).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createBridge } from '../src/connect/bridge.ts';
import { type FixtureOptions, type FixtureServer, startFixtureServer } from './fixtures/http-mcp-server.ts';
import { BRIDGE_BASE_ENV, type Bridged, connectThroughBridge } from './helpers/cli.ts';
import { deliveredDuring } from './helpers/gateway.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUN_CLI = join(ROOT, 'test/fixtures/run-cli.ts');
/** `${NAME}` as a user types it in a flag value (a literal, not a template). */
const envRef = (name: string) => `\${${name}}`;

async function echo(client: Client, text: string): Promise<string> {
  const result = await client.callTool({ name: 'echo', arguments: { text } });
  const content = result.content as { type: string; text: string }[];
  return content[0]?.text ?? '';
}

function withFixture(options: FixtureOptions = {}): () => FixtureServer {
  let fixture: FixtureServer | undefined;
  before(async () => {
    fixture = await startFixtureServer(options);
  });
  after(async () => {
    await fixture?.close();
  });
  return () => {
    assert.ok(fixture);
    return fixture;
  };
}

async function timed<T>(work: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const started = Date.now();
  const [result] = await Promise.allSettled([work]);
  return { ms: Date.now() - started, result: result as PromiseSettledResult<T> };
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function rejectionMessage(result: PromiseSettledResult<unknown>): string {
  assert.equal(result.status, 'rejected', 'the call should have failed');
  return result.status === 'rejected' ? String((result.reason as Error).message) : '';
}

describe('connect: round trips', () => {
  const fixture = withFixture();
  let bridged: Bridged;
  before(async () => {
    bridged = await connectThroughBridge(fixture().url);
  });
  after(async () => {
    await bridged.close();
  });

  it('lists and calls tools through the bridge', async () => {
    const { tools } = await bridged.client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ['echo', 'poll', 'progress', 'slow']);
    assert.equal(await echo(bridged.client, 'hello'), 'hello');
    assert.equal(bridged.client.getServerVersion()?.name, 'fixture');
  });

  it('delivers progress notifications before the result', async () => {
    const seen: number[] = [];
    const { result, delivered } = await deliveredDuring(bridged.client, () =>
      bridged.client.callTool({ name: 'progress', arguments: { steps: 3, delayMs: 20 } }, undefined, {
        onprogress: (progress) => seen.push(progress.progress),
      }),
    );
    assert.deepEqual(delivered, [1, 2, 3, 'answer']);
    assert.equal(seen[0], 1, 'the SDK matched the progress token');
    assert.equal((result.content as { text: string }[])[0]?.text, 'done after 3 steps');
  });

  it('resumes a response stream the server closes mid-call (GET + Last-Event-ID)', async () => {
    const result = await bridged.client.callTool({ name: 'poll', arguments: {} });
    assert.equal((result.content as { text: string }[])[0]?.text, 'answered after the stream was closed');
    assert.ok(
      fixture().requests.some(
        (request) => request.method === 'GET' && request.headers['last-event-id'] !== undefined,
      ),
      'the bridge resumed with Last-Event-ID',
    );
  });

  it('sends MCP-Protocol-Version after initialize', () => {
    const call = fixture().requests.find((request) => request.rpcMethod === 'tools/call');
    assert.equal(call?.headers['mcp-protocol-version'], '2025-11-25');
  });
});

describe('connect: a server that answers with plain JSON', () => {
  const fixture = withFixture({ jsonResponse: true });

  it('round-trips tool calls', async () => {
    const bridged = await connectThroughBridge(fixture().url);
    try {
      assert.equal(await echo(bridged.client, 'json'), 'json');
    } finally {
      await bridged.close();
    }
  });
});

describe('connect: session recovery', () => {
  it('re-initializes transparently after a restart (no GET stream: recovery on the failed POST)', async () => {
    const fixture = await startFixtureServer({ noGetStream: true });
    const bridged = await connectThroughBridge(fixture.url);
    try {
      assert.equal(await echo(bridged.client, 'before'), 'before');
      await fixture.restart();
      assert.equal(await echo(bridged.client, 'after'), 'after');
      const methods = fixture.requests
        .filter((r) => r.method === 'POST')
        .map((r) => `${r.rpcMethod}:${r.status}`);
      assert.deepEqual(methods.slice(-4), [
        'tools/call:404',
        'initialize:200',
        'notifications/initialized:202',
        'tools/call:200',
      ]);
      // The replayed initialize is the client's original one.
      const inits = fixture.requests.filter((r) => r.rpcMethod === 'initialize');
      assert.equal(inits.length, 2);
      assert.match(bridged.stderr(), /starting a new one/);
    } finally {
      await bridged.close();
      await fixture.close();
    }
  });

  it("restores the client's log level and subscriptions in the new session", async () => {
    const fixture = await startFixtureServer({ noGetStream: true });
    const bridged = await connectThroughBridge(fixture.url);
    try {
      await bridged.client.setLoggingLevel('warning');
      await bridged.client.subscribeResource({ uri: 'file:///kept' });
      await bridged.client.subscribeResource({ uri: 'file:///dropped' });
      await bridged.client.unsubscribeResource({ uri: 'file:///dropped' });
      await fixture.restart();
      assert.equal(await echo(bridged.client, 'after'), 'after');
      // Everything the bridge sent in the new session, in order.
      const replayed = fixture.requests
        .filter((r) => r.rpcMethod !== undefined && r.sessionId === fixture.requests.at(-1)?.sessionId)
        .map((r) => `${r.rpcMethod} ${JSON.stringify(r.rpcParams)} ${r.status}`);
      assert.deepEqual(replayed, [
        'notifications/initialized undefined 202',
        'logging/setLevel {"level":"warning"} 200',
        'resources/subscribe {"uri":"file:///kept"} 200',
        `tools/call ${JSON.stringify({ name: 'echo', arguments: { text: 'after' } })} 200`,
      ]);
    } finally {
      await bridged.close();
      await fixture.close();
    }
  });

  it('re-initializes after a restart when the GET stream notices first', async () => {
    const fixture = await startFixtureServer();
    const bridged = await connectThroughBridge(fixture.url);
    try {
      assert.equal(await echo(bridged.client, 'one'), 'one');
      await fixture.restart();
      // Idle client: the reconnecting GET stream meets the 404 and re-initializes on its own.
      await until(() => fixture.requests.filter((r) => r.rpcMethod === 'initialize').length === 2);
      assert.ok(fixture.requests.some((r) => r.method === 'GET' && r.status === 404));
      assert.equal(await echo(bridged.client, 'two'), 'two');
      assert.equal(await echo(bridged.client, 'three'), 'three');
      assert.equal(fixture.requests.filter((r) => r.status === 404 && r.method === 'POST').length, 0);
    } finally {
      await bridged.close();
      await fixture.close();
    }
  });

  it('fails a call once --reconnect-wait has passed with the server down, then works again when it is back', async () => {
    const fixture = await startFixtureServer();
    const bridged = await connectThroughBridge(fixture.url, { args: ['--reconnect-wait', '3s'] });
    try {
      assert.equal(await echo(bridged.client, 'up'), 'up');
      await fixture.stop();
      const { ms, result } = await timed(echo(bridged.client, 'down'));
      assert.match(
        rejectionMessage(result),
        /mcp-relay: gateway at http:\/\/127\.0\.0\.1:\d+\/mcp unreachable: ECONN/,
      );
      // It waited for the gateway to come back (a restart) before giving up, but not without bound.
      assert.ok(ms >= 2_500 && ms < 30_000, `failed after ${ms} ms`);
      await fixture.start();
      assert.equal(await echo(bridged.client, 'back'), 'back');
    } finally {
      await bridged.close();
      await fixture.close();
    }
  });
});

describe('connect: timeouts', () => {
  const fixture = withFixture();
  let bridged: Bridged;
  before(async () => {
    bridged = await connectThroughBridge(fixture().url, { args: ['--timeout', '1s'] });
  });
  after(async () => {
    await bridged.close();
  });

  it('answers a silent request with an error after --timeout', async () => {
    const { ms, result } = await timed(bridged.client.callTool({ name: 'slow', arguments: { ms: 4_000 } }));
    assert.match(rejectionMessage(result), /no answer from .* within 1s/);
    assert.ok(ms >= 900 && ms < 3_000, `timed out after ${ms} ms`);
  });

  it('keeps a request alive while progress arrives', async () => {
    const result = await bridged.client.callTool(
      { name: 'progress', arguments: { steps: 5, delayMs: 400 } },
      undefined,
      {
        onprogress: () => {},
      },
    );
    assert.equal((result.content as { text: string }[])[0]?.text, 'done after 5 steps');
  });
});

describe('connect: credentials and headers', () => {
  const fixture = withFixture({ token: 's3cret-token' });

  it('explains a 401 and names MCP_RELAY_TOKEN', async () => {
    await assert.rejects(connectThroughBridge(fixture().url), (error: Error) => {
      assert.match(error.message, /mcp-relay: the gateway requires a token \(401, invalid_token\)/);
      assert.match(error.message, /set MCP_RELAY_TOKEN/);
      return true;
    });
  });

  it('explains a rejected token', async () => {
    await assert.rejects(
      connectThroughBridge(fixture().url, { env: { MCP_RELAY_TOKEN: 'wrong' } }),
      (error: Error) => {
        assert.match(error.message, /rejected the token in MCP_RELAY_TOKEN/);
        assert.doesNotMatch(error.message, /wrong/);
        return true;
      },
    );
  });

  it('sends the token and extra headers, and never prints the token', async () => {
    const bridged = await connectThroughBridge(fixture().url, {
      args: [
        '--token-env',
        'TEAM_KEY',
        '--header',
        `X-Team: ${envRef('TEAM')}`,
        '-H',
        'X-Extra: yes',
        '--verbose',
      ],
      env: { TEAM_KEY: 's3cret-token', TEAM: 'design' },
    });
    try {
      assert.equal(await echo(bridged.client, 'authorized'), 'authorized');
      const call = fixture().requests.find((r) => r.rpcMethod === 'tools/call');
      assert.equal(call?.headers.authorization, 'Bearer s3cret-token');
      assert.equal(call?.headers['x-team'], 'design');
      assert.equal(call?.headers['x-extra'], 'yes');
      assert.match(call?.headers['user-agent'] ?? '', /^mcp-relay\//);
      assert.match(bridged.stderr(), /connected to/);
      assert.doesNotMatch(bridged.stderr(), /s3cret/);
    } finally {
      await bridged.close();
    }
  });
});

/** The bridge with raw pipes: what exactly goes to stdout, and how the process ends. */
function spawnRaw(url: string, args: string[] = []) {
  const child = spawn(process.execPath, [RUN_CLI, 'connect', url, ...args], {
    cwd: ROOT,
    env: BRIDGE_BASE_ENV,
  });
  const lines: string[] = [];
  const waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters.filter((w) => w.test(line))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    send: (line: string) => child.stdin.write(`${line}\n`),
    waitFor: (test: (line: string) => boolean) =>
      new Promise<string>((resolve) => {
        const found = lines.find(test);
        if (found !== undefined) resolve(found);
        else waiters.push({ test, resolve });
      }),
  };
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

describe('connect: stdio hygiene and lifecycle', () => {
  const fixture = withFixture();

  it('answers a malformed line with a parse error, writes only JSON-RPC to stdout, exits 0 on stdin end after DELETE', async () => {
    const bridge = spawnRaw(fixture().url, ['--verbose']);
    bridge.send('{not json');
    const parseError = JSON.parse(await bridge.waitFor((line) => line.includes('-32700')));
    assert.deepEqual(parseError, {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32700, message: 'Parse error: the line is not valid JSON' },
    });
    bridge.send(INITIALIZE);
    await bridge.waitFor((line) => line.includes('"id":0'));
    bridge.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    bridge.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'x' } },
      }),
    );
    await bridge.waitFor((line) => line.includes('"id":1'));
    bridge.child.stdin.end();
    assert.equal(await bridge.exited, 0);
    for (const line of bridge.lines) {
      const message = JSON.parse(line) as { jsonrpc?: string };
      assert.equal(message.jsonrpc, '2.0', `stdout line is not JSON-RPC: ${line}`);
    }
    assert.ok(bridge.stderr().length > 0, 'diagnostics went to stderr');
    const session = fixture().requests.find((r) => r.rpcMethod === 'initialize' && r.status === 200);
    const deleted = fixture().requests.find((r) => r.method === 'DELETE');
    assert.ok(deleted, 'the bridge sent DELETE');
    assert.equal(deleted.status, 200);
    assert.notEqual(deleted.sessionId, undefined);
    assert.ok(session);
  });

  it('exits on SIGTERM', async () => {
    const bridge = spawnRaw(fixture().url);
    bridge.send(INITIALIZE);
    await bridge.waitFor((line) => line.includes('"id":0'));
    bridge.child.kill('SIGTERM');
    assert.equal(await bridge.exited, 0);
  });
});

describe('connect: the bridge in-process', () => {
  const fixture = withFixture();

  it('runs on any stream pair and close() ends the session', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const bridge = createBridge({ url: fixture().url, input, output });
    const lines = createInterface({ input: output });
    const answers: unknown[] = [];
    const answered = new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        answers.push(JSON.parse(line));
        if (answers.length === 2) resolve();
      });
    });
    input.write(`${INITIALIZE}\n`);
    input.write(`${JSON.stringify({ jsonrpc: '2.0', id: 'p', method: 'ping' })}\n`);
    await answered;
    assert.deepEqual(answers[1], { jsonrpc: '2.0', id: 'p', result: {} });
    await bridge.close();
    await bridge.closed;
    await bridge.close(); // idempotent
    assert.ok(fixture().requests.some((r) => r.method === 'DELETE' && r.status === 200));
  });
});

describe('connect: TLS with a private CA', () => {
  let dir: string;
  let fixture: FixtureServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-tls-'));
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=mcp-relay test CA',
    );
    openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
    openssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    fixture = await startFixtureServer({ tls: { key: read('server.key'), cert: read('server.pem') } });
  });
  after(async () => {
    await fixture?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an untrusted certificate and says how to fix it', async () => {
    await assert.rejects(connectThroughBridge(fixture.url), /TLS certificate not trusted .*pass --ca FILE/);
  });

  it('trusts the CA given with --ca', async () => {
    const bridged = await connectThroughBridge(fixture.url, { args: ['--ca', join(dir, 'ca.pem')] });
    try {
      assert.equal(await echo(bridged.client, 'over tls'), 'over tls');
    } finally {
      await bridged.close();
    }
  });
});
