// `mcp-relay connect` in front of MCP servers that are not mcp-relay, as users meet them: the legacy
// HTTP+SSE transport (supergateway's default, mcp-proxy --server sse, server-everything sse), Streamable
// HTTP (mcp-proxy, server-everything), a WebSocket (supergateway --outputTransport ws); --transport auto
// falling back to SSE; and what happens to a session when the front dies under it. The SDK client
// drives the bridge over stdio, as Claude Desktop does.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { type Bridged, connectThroughBridge } from './helpers/cli.ts';
import { type Front, startEverything, startMcpProxy, startSupergateway } from './helpers/foreign-fronts.ts';
import { eventually } from './helpers/wait.ts';

function textOf(result: Awaited<ReturnType<Client['callTool']>>): string {
  const content = result.content as { type: string; text: string }[];
  return content[0]?.text ?? '';
}

/** initialize (done by connecting), tools/list, tools/call through the bridge. */
async function roundTrip(
  front: Front,
  options: { args?: string[]; tool?: string; argument?: Record<string, unknown>; expect?: string } = {},
): Promise<Bridged> {
  const bridged = await connectThroughBridge(front.url, { args: options.args ?? [] });
  try {
    const { tools } = await bridged.client.listTools();
    const tool = options.tool ?? 'echo';
    assert.ok(
      tools.some((listed) => listed.name === tool),
      `tools/list lacks ${tool}: ${tools.map((listed) => listed.name).join(', ')}`,
    );
    const result = await bridged.client.callTool({
      name: tool,
      arguments: options.argument ?? { text: 'across the bridge' },
    });
    assert.equal(textOf(result), options.expect ?? 'across the bridge');
  } catch (error) {
    await bridged.close();
    throw Object.assign(error as Error, {
      message: `${(error as Error).message}\nbridge: ${bridged.stderr()}\nfront: ${front.output()}`,
    });
  }
  return bridged;
}

/** Server messages beside the answers: a log message during a call, list_changed between calls. */
async function itPassesServerMessages(bridged: Bridged): Promise<void> {
  const logged: unknown[] = [];
  let changed = 0;
  bridged.client.setNotificationHandler(LoggingMessageNotificationSchema, ({ params }) => {
    logged.push(params.data);
  });
  bridged.client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    changed++;
  });
  const result = await bridged.client.callTool({ name: 'log', arguments: { text: 'noted' } });
  assert.equal(textOf(result), 'logged');
  assert.deepEqual(logged, ['noted'], 'the log message arrives before the answer');
  await bridged.client.callTool({ name: 'announce', arguments: {} });
  await eventually(() => changed > 0, 'tools/list_changed to reach the client');
}

function using(start: () => Promise<Front>): () => Front {
  let front: Front | undefined;
  before(async () => {
    front = await start();
  });
  after(async () => {
    await front?.stop();
  });
  return () => {
    assert.ok(front);
    return front;
  };
}

describe('connect: legacy HTTP+SSE fronts', () => {
  describe('supergateway (SSE, its default)', () => {
    const front = using(() => startSupergateway('sse'));

    it('--transport auto tries Streamable HTTP, is refused, and falls back to SSE', async () => {
      const bridged = await roundTrip(front());
      assert.match(
        bridged.stderr(),
        /no Streamable HTTP at .*\/sse \(404\); trying the legacy HTTP\+SSE transport/,
      );
      assert.match(bridged.stderr(), /connected to .*\/sse over legacy HTTP\+SSE/);
      await bridged.close();
    });

    it('--transport sse goes straight to the SSE stream, server messages included', async () => {
      const bridged = await roundTrip(front(), { args: ['--transport', 'sse'] });
      assert.doesNotMatch(bridged.stderr(), /no Streamable HTTP/);
      await itPassesServerMessages(bridged);
      await bridged.close();
    });

    it('names both refusals when neither transport is at the URL', async () => {
      await assert.rejects(
        connectThroughBridge(front().url.replace(/\/sse$/, '/nothing')),
        /no MCP endpoint at .*\/nothing: the Streamable HTTP POST got 404, the legacy HTTP\+SSE GET 404; check the URL/,
      );
    });

    it('--transport http does not fall back: it says there is no MCP endpoint', async () => {
      await assert.rejects(
        connectThroughBridge(front().url, { args: ['--transport', 'http'] }),
        /no MCP endpoint at .*\(404\): check the URL/,
      );
    });
  });

  describe('mcp-proxy --server sse', () => {
    const front = using(() => startMcpProxy('sse'));

    it('round-trips through auto', async () => {
      const bridged = await roundTrip(front());
      assert.match(bridged.stderr(), /trying the legacy HTTP\+SSE transport/);
      await bridged.close();
    });
  });

  describe('mcp-proxy --server sse --apiKey', () => {
    const front = using(() => startMcpProxy('sse', ['--apiKey', 'sse-secret']));

    it('sends --header on the GET stream and on every POST', async () => {
      const bridged = await roundTrip(front(), {
        args: ['--transport', 'sse', '--header', 'X-API-Key: sse-secret'],
      });
      assert.doesNotMatch(bridged.stderr(), /sse-secret/);
      await bridged.close();
    });

    it('explains a refused stream (401)', async () => {
      await assert.rejects(
        connectThroughBridge(front().url, { args: ['--transport', 'sse', '--no-oauth'] }),
        /requires a token \(401/,
      );
    });
  });

  describe('server-everything sse', () => {
    const front = using(() => startEverything('sse'));

    it('round-trips through auto', async () => {
      const bridged = await roundTrip(front(), {
        argument: { message: 'hi' },
        expect: 'Echo: hi',
      });
      await bridged.close();
    });
  });
});

describe('connect: Streamable HTTP fronts other than mcp-relay', () => {
  describe('mcp-proxy (stream)', () => {
    const front = using(() => startMcpProxy('stream'));

    it('round-trips without falling back', async () => {
      const bridged = await roundTrip(front());
      assert.doesNotMatch(bridged.stderr(), /legacy/);
      await bridged.close();
    });
  });

  describe('server-everything streamableHttp', () => {
    const front = using(() => startEverything('streamableHttp'));

    it('round-trips without falling back', async () => {
      const bridged = await roundTrip(front(), {
        argument: { message: 'hi' },
        expect: 'Echo: hi',
      });
      assert.doesNotMatch(bridged.stderr(), /legacy/);
      await bridged.close();
    });
  });
});

/**
 * A front killed mid-call and started again on the same URL: the call in flight gets the honest
 * "outcome unknown" (it ran once and is not sent again), a call made while the front is down waits for
 * the new session the bridge opens by itself and is answered there. Any front that can be killed and restarted fits: supergateway's WebSocket and
 * SSE outputs today; the gateway's own /ws/<server> by passing a starter for `mcp-relay serve`.
 */
function itSurvivesARestart(start: () => Promise<Front>, args: string[] = []): void {
  const front = using(start);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-transports-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a call in flight when the front dies gets the honest error; one made while it is down is answered after the restart', async () => {
    const runs = join(dir, 'runs');
    const bridged = await roundTrip(front(), { args });
    try {
      const inFlight = bridged.client.callTool(
        { name: 'count', arguments: { key: 'k1', ms: 5_000, file: runs } },
        undefined,
        { timeout: 30_000 },
      );
      inFlight.catch(() => undefined);
      await eventually(() => readRuns(runs).includes('k1'), 'the call to reach the server');
      await front().kill();
      await assert.rejects(inFlight, (error: Error) => {
        assert.match(error.message, /outcome is unknown and the tool may have run; not sent again/);
        return true;
      });
      // Sent while the front is down: never written, so it waits for the new session and goes there.
      const again = bridged.client.callTool({ name: 'echo', arguments: { text: 'back' } }, undefined, {
        timeout: 30_000,
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await front().restart();
      assert.equal(textOf(await again), 'back');
      const executions = await bridged.client.callTool({
        name: 'executions',
        arguments: { key: 'k1', file: runs },
      });
      assert.equal(textOf(executions), '1', 'the call that may have run was sent again');
      assert.match(bridged.stderr(), /closed .*the session ended with it/);
      assert.match(bridged.stderr(), /new gateway session .* ready/);
    } catch (error) {
      throw Object.assign(error as Error, {
        message: `${(error as Error).message}\nbridge: ${bridged.stderr()}\nfront: ${front().output()}`,
      });
    } finally {
      await bridged.close();
    }
  });
}

function readRuns(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

describe('connect: a WebSocket front (supergateway --outputTransport ws)', () => {
  describe('round trips', () => {
    const front = using(() => startSupergateway('ws'));

    it('speaks WebSocket for a ws:// URL under --transport auto, server messages included', async () => {
      const bridged = await roundTrip(front());
      assert.doesNotMatch(bridged.stderr(), /legacy|Streamable/);
      assert.match(bridged.stderr(), /connected to .*\/message over WebSocket/);
      await itPassesServerMessages(bridged);
      await bridged.close();
    });

    it('refuses --transport http for a ws:// URL', async () => {
      await assert.rejects(
        connectThroughBridge(front().url, { args: ['--transport', 'http'] }),
        /--transport http needs an http:\/\/ or https:\/\/ URL/,
      );
    });
  });

  describe('the front killed and restarted', () => {
    itSurvivesARestart(() => startSupergateway('ws'));
  });
});

describe('connect: a legacy SSE front killed and restarted (supergateway)', () => {
  itSurvivesARestart(() => startSupergateway('sse'), ['--transport', 'sse']);
});
