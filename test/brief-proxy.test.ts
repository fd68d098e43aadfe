// The original brief's `proxy.js` (test/fixtures/brief-proxy.js, its lines as the brief gives them)
// against the gateway's WebSocket front, run as Claude Desktop runs it: a stdio process driven by the
// official SDK StdioClientTransport, with MCP_API_KEY in its environment. The one line a user edits,
// the brief's placeholder WS_URL, is set to the gateway's /ws/<server>.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, type StdioServerParameters } from '@modelcontextprotocol/sdk/client/stdio.js';
import { runProcess } from './helpers/cli.ts';
import { fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';
import { refusedUpgrade, wsUrlOf } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 30_000 };
const BRIEF_PROXY = fileURLToPath(new URL('./fixtures/brief-proxy.js', import.meta.url));
const NODE_MODULES = fileURLToPath(new URL('../node_modules', import.meta.url));
const PLACEHOLDER = "const WS_URL = 'wss://office-server.company.com:8080';";

/**
 * The brief's proxy.js as a user deploys it: copied to its own folder (CommonJS there, as the brief
 * wrote it) with WS_URL set to `url`; `ws` resolves from the repository's node_modules (NODE_PATH).
 */
function deployProxy(dir: string, url: string): string {
  const source = readFileSync(BRIEF_PROXY, 'utf8');
  assert.ok(source.includes(PLACEHOLDER), 'the fixture keeps the brief URL line');
  const file = join(dir, 'proxy.js');
  writeFileSync(file, source.replace(PLACEHOLDER, `const WS_URL = ${JSON.stringify(url)};`));
  return file;
}

function launch(file: string, key: string): StdioServerParameters {
  return {
    command: process.execPath,
    args: [file],
    env: { MCP_API_KEY: key, NODE_PATH: NODE_MODULES },
    stderr: 'pipe',
  };
}

async function webSocketSessions(gw: TestGateway): Promise<number> {
  const health = (await (await fetch(`${gw.url}/healthz`)).json()) as { webSocketSessions: number };
  return health.webSocketSessions;
}

/**
 * The stdio transport, started once the proxy's socket is open: proxy.js calls ws.send() on every
 * stdin line, and `ws` throws while the socket is still connecting, so a message written before that
 * kills the proxy (the next test). The wait stands for a client that lets the proxy connect first.
 */
class AfterProxyConnected extends StdioClientTransport {
  readonly #opened: () => Promise<unknown>;

  constructor(params: StdioServerParameters, opened: () => Promise<unknown>) {
    super(params);
    this.#opened = opened;
  }

  override async start(): Promise<void> {
    await super.start();
    await this.#opened();
  }
}

describe("the brief's proxy.js against /ws/<server>", () => {
  let gw: TestGateway;
  let dir: string;

  before(async () => {
    gw = await startGateway(
      { servers: { model: fixtureServer('well'), other: fixtureServer('well') } },
      {
        users: ['alice'],
      },
    );
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-brief-proxy-'));
  });
  after(async () => {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('initializes, lists and calls tools through the gateway with a Bearer key', TIMEOUT, async () => {
    const proxy = deployProxy(dir, wsUrlOf(gw.url, 'model'));
    const before = await webSocketSessions(gw);
    const stdio = new AfterProxyConnected(launch(proxy, gw.keys.alice as string), () =>
      eventually(async () => (await webSocketSessions(gw)) > before, "the proxy's WebSocket to open"),
    );
    let stderr = '';
    stdio.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const client = new Client({ name: 'claude-desktop-like', version: '1.0.0' });
    await client.connect(stdio);
    assert.equal(client.getServerVersion()?.name, 'fixture', stderr);
    const tools = (await client.listTools()).tools.map((tool) => tool.name);
    assert.ok(tools.includes('echo') && tools.includes('whoami'));
    assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    assert.equal(
      textOf(await client.callTool({ name: 'echo', arguments: { text: 'via proxy.js' } })),
      'via proxy.js',
    );
    await client.close();
    await eventually(async () => (await webSocketSessions(gw)) === 0, 'the session to end with the proxy');
  });

  it(
    'dies when its first line comes before its socket is open, as Claude Desktop sends it',
    TIMEOUT,
    async () => {
      // Why README points Claude Desktop at `mcp-relay connect`: proxy.js sends on a connecting socket.
      const proxy = deployProxy(dir, wsUrlOf(gw.url, 'model'));
      const stdio = new StdioClientTransport(launch(proxy, gw.keys.alice as string));
      let stderr = '';
      stdio.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      const client = new Client({ name: 'at-once', version: '1.0.0' });
      await assert.rejects(client.connect(stdio), /Connection closed/);
      assert.match(stderr, /WebSocket is not open: readyState 0 \(CONNECTING\)/);
    },
  );

  it(
    'pointed at /mcp/<server>, gets 404 naming /ws/<server> (it used to get 406 there)',
    TIMEOUT,
    async () => {
      // Before the WebSocket front, node handed this upgrade to the Streamable HTTP GET, whose Accept rule
      // (text/event-stream) answered 406; now the upgrade listener answers it, and says where to go.
      const refused = await refusedUpgrade(
        `${wsUrlOf(gw.url).replace('/ws', '/mcp')}/model`,
        {
          authorization: `Bearer ${gw.keys.alice}`,
        },
        [],
      );
      assert.equal(refused.status, 404);
      assert.match(refused.body, /\/ws\/<server>/);
      const proxy = deployProxy(dir, `${gw.url.replace('http', 'ws')}/mcp/model`);
      const exited = await runProcess(process.execPath, [proxy], {
        env: { MCP_API_KEY: gw.keys.alice as string, NODE_PATH: NODE_MODULES, PATH: process.env.PATH ?? '' },
      });
      assert.equal(exited.code, 1);
      assert.match(exited.stderr, /Unexpected server response: 404/);
    },
  );
});
