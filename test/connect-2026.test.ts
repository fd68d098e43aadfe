// `mcp-relay connect` toward a 2026-07-28 stdio client: the SDK v2 client (2.4.0, pinned and auto)
// through the bridge to the SDK v2 reference server (fixtures/modern-mcp-server.ts), raw stdio lines
// for what a client like Claude Code sends (a probe, then initialize on the same process) against the
// mcp-relay gateway, cancellation, listen streams, and never a request on stdout.

import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { headerValue } from '../src/connect/modern/envelope.ts';
import { MAX_CONCURRENT_POSTS } from '../src/connect/modern/link.ts';
import { headerBindings, paramHeaders } from '../src/connect/modern/tool-headers.ts';
import { type ModernFixture, startModernFixture } from './fixtures/modern-mcp-server.ts';
import { BRIDGE_BASE_ENV } from './helpers/cli.ts';
import { fixtureServer, startGateway, type TestGateway } from './helpers/gateway.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));
const MODERN = '2026-07-28';
const TOKEN = 'modern-test-token';
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'raw-client', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

type Mode = 'auto' | { pin: string };

interface SdkBridged {
  client: Client;
  /** Every message the client received after connect: none may be a request. */
  received: unknown[];
  stderr(): string;
  close(): Promise<void>;
}

async function connectSdk(url: string, mode: Mode, env: Record<string, string> = {}): Promise<SdkBridged> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [RUN_CLI, 'connect', url],
    env: { ...BRIDGE_BASE_ENV, MCP_RELAY_TOKEN: TOKEN, ...env },
    cwd: ROOT,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const client = new Client(
    { name: 'sdk-v2-client', version: '2.4.0' },
    { versionNegotiation: { mode, probe: { timeoutMs: 10_000 } } },
  );
  try {
    await client.connect(transport);
  } catch (error) {
    await transport.close();
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  const received: unknown[] = [];
  const deliver = transport.onmessage;
  transport.onmessage = (message) => {
    received.push(message);
    deliver?.(message);
  };
  return { client, received, stderr: () => stderr, close: () => client.close() };
}

/** The bridge as a child with raw stdio lines: what a client sends, and every line it wrote. */
class RawBridge {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly #waiters: (() => void)[] = [];

  constructor(url: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, [RUN_CLI, 'connect', url, '--verbose'], {
      cwd: ROOT,
      env: { ...BRIDGE_BASE_ENV, ...env },
      shell: false,
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Resolves once the bridge reads stdin (its first log line): latencies measured after it are its own. */
  async ready(): Promise<void> {
    await until(() => this.stderr.includes('bridging stdio'));
  }

  send(message: Record<string, unknown>): void {
    this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
  }

  /** The answer to `id`, waiting for it. */
  async answer(id: string | number, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((line) => line.id === id && !('method' in line));
      if (found) return found;
      if (Date.now() > deadline) assert.fail(`no answer to ${id}; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await exited;
  }
}

function isRequestMessage(message: unknown): boolean {
  return typeof message === 'object' && message !== null && 'method' in message && 'id' in message;
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function texts(result: { content?: unknown }): string[] {
  return ((result.content ?? []) as { text?: string }[]).map((item) => item.text ?? '');
}

describe('connect: a 2026-07-28 client against a 2026-07-28 server', () => {
  let fixture: ModernFixture;
  before(async () => {
    fixture = await startModernFixture();
  });
  after(async () => {
    await fixture.close();
  });

  it('a pinned client discovers, lists and calls tools, one POST each with the routing headers', async () => {
    const bridged = await connectSdk(fixture.url, { pin: MODERN });
    try {
      assert.equal(bridged.client.getServerVersion()?.name, 'modern-fixture');
      const { tools } = await bridged.client.listTools();
      // `broken` carries x-mcp-header on a number: the bridge leaves it out (the HTTP client's MUST).
      assert.deepEqual(tools.map((tool) => tool.name).sort(), ['echo', 'regional', 'slow']);
      const result = await bridged.client.callTool({ name: 'echo', arguments: { text: 'héllo' } });
      assert.deepEqual(texts(result), ['héllo']);
      // The server checks Mcp-Param-Region against the body (-32020 when it is missing or differs).
      const regional = await bridged.client.callTool({
        name: 'regional',
        arguments: { region: 'zürich', text: 'hi' },
      });
      assert.deepEqual(texts(regional), ['zürich: hi']);
      assert.ok(bridged.received.every((message) => !isRequestMessage(message)));
    } finally {
      await bridged.close();
    }
    const modern = fixture.posts.filter((post) => post.protocolVersion === MODERN);
    assert.deepEqual(
      modern.map((post) => post.rpcMethod),
      ['server/discover', 'tools/list', 'tools/call', 'tools/call'],
    );
    for (const post of modern) {
      assert.equal(post.mcpMethod, post.rpcMethod);
      assert.equal(post.sessionId, undefined);
      assert.equal(post.authorization, `Bearer ${TOKEN}`);
      assert.equal(post.status, 200);
    }
    assert.deepEqual(modern.at(-2)?.params, {});
    assert.equal(modern.at(-2)?.mcpName, 'echo');
    assert.equal(modern.at(-1)?.mcpName, 'regional');
    assert.deepEqual(modern.at(-1)?.params, {
      'mcp-param-region': `=?base64?${Buffer.from('zürich').toString('base64')}?=`,
    });
  });

  it('an auto client ends up modern through the bridge as well', async () => {
    const before = fixture.posts.length;
    const bridged = await connectSdk(fixture.url, 'auto');
    try {
      const result = await bridged.client.callTool({ name: 'echo', arguments: { text: 'auto' } });
      assert.deepEqual(texts(result), ['auto']);
    } finally {
      await bridged.close();
    }
    const seen = fixture.posts.slice(before);
    assert.ok(
      seen.length > 0 &&
        seen.every((post) => post.protocolVersion === MODERN && post.sessionId === undefined),
    );
    assert.ok(seen.some((post) => post.rpcMethod === 'tools/call'));
  });

  it('a cancelled call aborts its POST: the server sees the abort', async () => {
    const bridged = await connectSdk(fixture.url, { pin: MODERN });
    try {
      const abort = new AbortController();
      const call = bridged.client.callTool(
        { name: 'slow', arguments: { text: 'cancel-me' } },
        { signal: abort.signal },
      );
      await until(() => fixture.started.includes('cancel-me'));
      abort.abort();
      await assert.rejects(call);
      await until(() => fixture.aborted.includes('cancel-me'));
      assert.ok(bridged.received.every((message) => !isRequestMessage(message)));
    } finally {
      await bridged.close();
    }
  });

  it('relays a listen stream, and after a dropped stream tells the client to fetch again', async () => {
    const bridged = await connectSdk(fixture.url, { pin: MODERN });
    let changes = 0;
    bridged.client.setNotificationHandler('notifications/tools/list_changed', () => {
      changes++;
    });
    try {
      const subscription = await bridged.client.listen({ toolsListChanged: true });
      assert.equal(subscription.honoredFilter.toolsListChanged, true);
      fixture.toolsChanged();
      await until(() => changes === 1);
      // The server's side of the stream goes away: the bridge reopens it and covers the gap.
      fixture.dropConnections();
      await until(() => changes === 2);
      fixture.toolsChanged();
      await until(() => changes === 3);
      await subscription.close();
      assert.ok(bridged.received.every((message) => !isRequestMessage(message)));
    } finally {
      await bridged.close();
    }
  });

  it('raw lines: the probe is answered with the server DiscoverResult, and nothing on stdout is a request', async () => {
    const raw = new RawBridge(fixture.url, { MCP_RELAY_TOKEN: TOKEN });
    try {
      await raw.ready();
      const started = Date.now();
      raw.send({ id: 'discover-1', method: 'server/discover', params: { _meta: ENVELOPE } });
      const discovered = await raw.answer('discover-1');
      console.log(`# probe answered (modern, via the server) in ${Date.now() - started} ms`);
      const result = discovered.result as { supportedVersions?: string[] };
      assert.deepEqual(result.supportedVersions, [MODERN]);
      raw.send({
        id: 2,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: ' spaced ' }, _meta: ENVELOPE },
      });
      const called = (await raw.answer(2)).result as { content: { text: string }[] };
      assert.equal(called.content[0]?.text, ' spaced ');
      assert.equal(fixture.posts.at(-1)?.mcpName, 'echo');
      // The bridge itself leaves out the tool with an invalid x-mcp-header, and says why on stderr.
      raw.send({ id: 'list', method: 'tools/list', params: { _meta: ENVELOPE } });
      const listed = (await raw.answer('list')).result as { tools: { name: string }[] };
      assert.deepEqual(listed.tools.map((tool) => tool.name).sort(), ['echo', 'regional', 'slow']);
      assert.match(raw.stderr, /left out tool "broken" from tools\/list/);
      raw.send({ id: 3, method: 'tools/call', params: { name: 'nope', arguments: {}, _meta: ENVELOPE } });
      const unknown = await raw.answer(3);
      assert.ok('error' in unknown || (unknown.result as { isError?: boolean }).isError);
      assert.ok(raw.lines.every((line) => !isRequestMessage(line)));
    } finally {
      await raw.close();
    }
  });
  it('raw lines: a refusal with a JSON-RPC body comes back as that error; a broken stream is an error, never a re-send', async () => {
    const raw = new RawBridge(fixture.url, { MCP_RELAY_TOKEN: TOKEN });
    try {
      await raw.ready();
      raw.send({ id: 1, method: 'tools/list', params: { _meta: ENVELOPE } });
      await raw.answer(1);
      const future = { ...ENVELOPE, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' };
      raw.send({ id: 2, method: 'tools/list', params: { _meta: future } });
      const refused = (await raw.answer(2)).error as { code: number; data?: { supported?: string[] } };
      assert.equal(refused.code, -32022);
      assert.deepEqual(refused.data?.supported, [MODERN]);
      raw.send({
        id: 3,
        method: 'tools/call',
        params: { name: 'slow', arguments: { text: 'dropped' }, _meta: ENVELOPE },
      });
      await until(() => fixture.started.includes('dropped'));
      fixture.dropConnections();
      const lost = (await raw.answer(3)).error as { code: number; message: string };
      assert.equal(lost.code, -32000);
      assert.match(lost.message, /may have run; not sent again/);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(fixture.started.filter((text) => text === 'dropped').length, 1);
      assert.ok(raw.lines.every((line) => !isRequestMessage(line)));
    } finally {
      await raw.close();
    }
  });
});

describe('connect: a 2026-07-28 server that misbehaves', () => {
  it('relays an SSE answer message by message and drops a request the server puts on the stream', async () => {
    // A hand-written server: every POST gets an event stream with a request (which 2026 servers
    // must not send), a progress notification, then the result.
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        const { id } = JSON.parse(body) as { id: unknown };
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const event = (message: unknown) => res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
        event({
          jsonrpc: '2.0',
          id: 'server-asks',
          method: 'elicitation/create',
          params: { message: 'name?' },
        });
        event({
          jsonrpc: '2.0',
          method: 'notifications/progress',
          params: { progressToken: 'p', progress: 1 },
        });
        event({
          jsonrpc: '2.0',
          id,
          result: { resultType: 'complete', content: [{ type: 'text', text: 'done' }] },
        });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const raw = new RawBridge(`http://127.0.0.1:${port}/mcp`, {});
    try {
      await raw.ready();
      const meta = { ...ENVELOPE, progressToken: 'p' };
      raw.send({ id: 7, method: 'tools/call', params: { name: 'x', arguments: {}, _meta: meta } });
      const answer = (await raw.answer(7)).result as { content: { text: string }[] };
      assert.equal(answer.content[0]?.text, 'done');
      assert.deepEqual(
        raw.lines.map((line) => line.method ?? line.id),
        ['notifications/progress', 7],
      );
      assert.match(raw.stderr, /dropped a request from the server \(elicitation\/create\)/);
    } finally {
      await raw.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('connect: the bound on 2026-07-28 POSTs in flight', () => {
  it(`sends at most ${MAX_CONCURRENT_POSTS} at once; the rest wait for a slot and are all answered`, async () => {
    // A hand-written server that answers each call after 300 ms and counts the POSTs it holds.
    let holding = 0;
    let most = 0;
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        holding++;
        most = Math.max(most, holding);
        const { id } = JSON.parse(body) as { id: unknown };
        setTimeout(() => {
          holding--;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id,
              result: { resultType: 'complete', content: [{ type: 'text', text: `done ${String(id)}` }] },
            }),
          );
        }, 300);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const raw = new RawBridge(`http://127.0.0.1:${port}/mcp`, {});
    const calls = MAX_CONCURRENT_POSTS + 8;
    try {
      await raw.ready();
      for (let id = 1; id <= calls; id++)
        raw.send({ id, method: 'tools/call', params: { name: 'x', arguments: {}, _meta: ENVELOPE } });
      for (let id = 1; id <= calls; id++) {
        const answer = (await raw.answer(id)).result as { content: { text: string }[] };
        assert.equal(answer.content[0]?.text, `done ${id}`);
      }
      assert.equal(most, MAX_CONCURRENT_POSTS);
    } finally {
      await raw.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('connect: a probe, then initialize on the same process (the mcp-relay gateway)', () => {
  let gateway: TestGateway;
  before(async () => {
    gateway = await startGateway({ servers: { echo: fixtureServer() } }, { users: ['alice'] });
  });
  after(async () => {
    await gateway.close();
  });

  for (const wait of [false, true]) {
    const how = wait ? 'after the probe answer' : 'before the probe answer';
    it(`answers the probe fast and serves initialize sent ${how}`, async () => {
      const raw = new RawBridge(`${gateway.url}/mcp/echo`, { MCP_RELAY_TOKEN: gateway.keys.alice ?? '' });
      try {
        await raw.ready();
        const started = Date.now();
        raw.send({ id: 'probe', method: 'server/discover', params: { _meta: ENVELOPE } });
        if (wait) await raw.answer('probe');
        raw.send({
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'raw', version: '1' },
          },
        });
        const probe = await raw.answer('probe');
        const ms = Date.now() - started;
        console.log(
          `# probe answered ${how} in ${ms} ms: ${JSON.stringify(probe.error ?? 'a DiscoverResult')}`,
        );
        assert.ok(ms < 1_700, `the probe took ${ms} ms`);
        // Sent after the answer, the probe gets the dual-era gateway's DiscoverResult; sent before it,
        // the initialize decides the era and the open probe is answered "Method not found" at once.
        if (wait)
          assert.deepEqual((probe.result as { supportedVersions: string[] }).supportedVersions, [
            '2026-07-28',
          ]);
        else assert.equal((probe.error as { code: number }).code, -32601);
        const init = (await raw.answer(1)).result as {
          protocolVersion: string;
          serverInfo: { name: string };
        };
        assert.equal(init.protocolVersion, '2025-11-25');
        raw.send({ method: 'notifications/initialized' });
        raw.send({ id: 2, method: 'tools/list' });
        const listed = (await raw.answer(2)).result as { tools: { name: string }[] };
        assert.ok(listed.tools.some((tool) => tool.name === 'echo'));
        assert.ok(raw.lines.every((line) => !isRequestMessage(line)));
      } finally {
        await raw.close();
      }
    });
  }

  it('an auto SDK v2 client goes 2026-07-28 through the bridge to the gateway and calls tools', async () => {
    const started = Date.now();
    const bridged = await connectSdk(`${gateway.url}/mcp/echo`, 'auto', {
      MCP_RELAY_TOKEN: gateway.keys.alice ?? '',
    });
    try {
      console.log(`# auto client connected in ${Date.now() - started} ms (sibling probe included)`);
      assert.equal(bridged.client.getNegotiatedProtocolVersion(), '2026-07-28');
      const result = await bridged.client.callTool({ name: 'echo', arguments: { text: 'legacy' } });
      assert.deepEqual(texts(result), ['legacy']);
      assert.ok(bridged.received.every((message) => !isRequestMessage(message)));
    } finally {
      await bridged.close();
    }
  });

  it('answers a probe without credentials at once, and never signs in for it', async () => {
    const raw = new RawBridge(`${gateway.url}/mcp/echo`, { MCP_RELAY_BROWSER: 'false' });
    try {
      await raw.ready();
      const started = Date.now();
      raw.send({ id: 'probe', method: 'server/discover', params: { _meta: ENVELOPE } });
      const probe = await raw.answer('probe');
      const ms = Date.now() - started;
      console.log(`# probe without credentials answered in ${ms} ms`);
      assert.equal((probe.error as { code: number }).code, -32601);
      assert.doesNotMatch(raw.stderr, /sign in|browser/i);
    } finally {
      await raw.close();
    }
  });
});

describe('connect: 2026-07-28 header values (pure)', () => {
  const sentinel = (text: string) => `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;

  it('sends plain printable ASCII as it is and everything else in the base64 sentinel', () => {
    assert.equal(headerValue('us-west1'), 'us-west1');
    assert.equal(headerValue('two words'), 'two words');
    assert.equal(headerValue('Hello, 世界'), sentinel('Hello, 世界'));
    assert.equal(headerValue(' padded '), sentinel(' padded '));
    assert.equal(headerValue('line1\nline2'), sentinel('line1\nline2'));
    assert.equal(headerValue('=?base64?x?='), sentinel('=?base64?x?='));
    assert.equal(headerValue(''), sentinel(''));
    assert.equal(headerValue('x'.repeat(9_000)), undefined);
  });

  it('mirrors annotated arguments, nested ones through properties too, and rejects bad annotations', () => {
    const schema = {
      type: 'object',
      properties: {
        tenant: { type: 'string', 'x-mcp-header': 'Tenant' },
        page: { type: 'integer', 'x-mcp-header': 'Page' },
        flag: { type: 'boolean', 'x-mcp-header': 'Flag' },
        where: { type: 'object', properties: { zone: { type: 'string', 'x-mcp-header': 'Zone' } } },
        list: {
          type: 'array',
          items: { type: 'object', properties: { x: { type: 'string', 'x-mcp-header': 'X' } } },
        },
      },
    };
    const found = headerBindings(schema);
    assert.ok('bindings' in found);
    assert.deepEqual(found.bindings.map((binding) => binding.header).sort(), [
      'Flag',
      'Page',
      'Tenant',
      'Zone',
    ]);
    assert.deepEqual(
      paramHeaders(found.bindings, {
        tenant: 'acme',
        page: 2,
        flag: false,
        where: { zone: 'é' },
        list: [{ x: 'no' }],
      }),
      {
        'mcp-param-tenant': 'acme',
        'mcp-param-page': '2',
        'mcp-param-flag': 'false',
        'mcp-param-zone': sentinel('é'),
      },
    );
    assert.deepEqual(paramHeaders(found.bindings, { tenant: null, page: 2 ** 60 }), {});
    const invalid = (property: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      'invalid' in headerBindings({ type: 'object', properties: { p: property, ...extra } });
    assert.ok(invalid({ type: 'number', 'x-mcp-header': 'P' }));
    assert.ok(invalid({ type: 'string', 'x-mcp-header': 'bad header' }));
    assert.ok(invalid({ type: 'string', 'x-mcp-header': '' }));
    assert.ok(
      invalid({ type: 'string', 'x-mcp-header': 'Dup' }, { q: { type: 'string', 'x-mcp-header': 'dup' } }),
    );
    assert.ok(!invalid({ type: 'string', 'x-mcp-header': 'Fine' }));
  });
});
