// mcp-remote 0.15.1 with `--protocol auto`, the stdio⇄HTTP bridge many desktop hosts run, in front of
// the gateway: an SDK v1 stdio client lists and calls tools through it, and an elicitation the 2025
// backend asks for comes back to that client as an ordinary elicitation/create, the way round being
// MRTR between mcp-remote and the gateway. A recording relay between the two shows the 2026-07-28
// path was taken: server/discover, then requests carrying the 2026 headers, never an initialize and
// never an Mcp-Session-Id.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const TIMEOUT = { timeout: 60_000 };
const MCP_REMOTE = fileURLToPath(new URL('../node_modules/mcp-remote/dist/proxy.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/conformance-server.mjs', import.meta.url));

function auditLines(file: string): Array<Record<string, unknown>> {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  } catch {
    return [];
  }
}

interface Seen {
  method: string;
  mcpMethod: string | undefined;
  version: string | undefined;
  /** Whether the gateway's answer named a session (an initialize-made one). */
  sessionId: boolean;
}

/** A pass-through HTTP relay to `target` that records each request's MCP headers and the answer's session id. */
async function recordingRelay(target: string): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const upstream = new URL(target);
  const server = createServer((req: IncomingMessage, res) => {
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        seen.push({
          method: req.method ?? '',
          mcpMethod: req.headers['mcp-method'] as string | undefined,
          version: req.headers['mcp-protocol-version'] as string | undefined,
          sessionId: answer.headers['mcp-session-id'] !== undefined,
        });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe('mcp-remote --protocol auto in front of the gateway', () => {
  let gw: TestGateway;
  let client: Client;
  let transport: StdioClientTransport;
  let stderr = '';
  let relay: Awaited<ReturnType<typeof recordingRelay>>;

  before(async () => {
    gw = await startGateway(
      {
        servers: { everything: { command: process.execPath, args: [FIXTURE], isolation: 'per-user' } },
        audit: { file: 'audit.jsonl' },
      },
      { users: ['alice'] },
    );
    relay = await recordingRelay(gw.url);
    transport = new StdioClientTransport({
      command: process.execPath,
      args: [
        MCP_REMOTE,
        `${relay.url}/mcp/everything`,
        '--protocol',
        'auto',
        '--transport',
        'http-only',
        '--header',
        `Authorization:Bearer ${gw.keys.alice}`,
      ],
      // mcp-remote keeps OAuth state under its config dir; the test's own, so nothing outside is touched.
      env: { ...(process.env as Record<string, string>), MCP_REMOTE_CONFIG_DIR: join(gw.dir, 'mcp-remote') },
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    client = new Client({ name: 'stdio-host', version: '1.0.0' }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => ({
      action: 'accept',
      content: { name: `Ada (asked: ${request.params.message})` },
    }));
    await client.connect(transport);
  });
  after(async () => {
    await client?.close();
    relay?.server.closeAllConnections();
    relay?.server.close();
    await gw?.close();
  });

  it('lists and calls tools over the 2026-07-28 path, no session made by initialize', TIMEOUT, async () => {
    const { tools } = await client.listTools();
    assert.ok(
      tools.some((tool) => tool.name === 'test_simple_text'),
      stderr.slice(-2000),
    );
    const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
    assert.equal(textOf(result), 'This is a simple text response for testing.');

    const posts = relay.seen.filter((seen) => seen.method === 'POST');
    assert.equal(posts[0]?.mcpMethod, 'server/discover', JSON.stringify(relay.seen));
    for (const method of ['tools/list', 'tools/call'])
      assert.ok(
        posts.some((seen) => seen.mcpMethod === method && seen.version === '2026-07-28'),
        `${method} on the 2026 path: ${JSON.stringify(relay.seen)}`,
      );
    assert.ok(!posts.some((seen) => seen.mcpMethod === 'initialize' || seen.mcpMethod === undefined));
    assert.ok(!relay.seen.some((seen) => seen.sessionId), 'no Mcp-Session-Id minted');

    const file = join(gw.dir, 'audit.jsonl');
    await eventually(
      () => auditLines(file).some((line) => line.event === 'tools.call'),
      'the call is audited',
    );
  });

  it('a backend’s elicitation reaches the stdio client through MRTR', TIMEOUT, async () => {
    const result = await client.callTool({ name: 'test_input_required_result_elicitation', arguments: {} });
    assert.equal(textOf(result), 'Hello, Ada (asked: What is your name?)!');
  });
});
