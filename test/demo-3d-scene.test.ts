// The bundled 3d-scene demo end to end: its MCP tools and resource over real stdio, its viewer over
// HTTP and WebSocket, its lifecycle, and the page in a real Chromium.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  type CallToolResult,
  CallToolResultSchema,
  McpError,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { Browser } from 'playwright-core';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { launchChromium, type PrefixProxy, startPrefixProxy } from './helpers/browser.ts';
import { freePort } from './helpers/ports.ts';

const SERVER = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));
const TIMEOUT = { timeout: 20_000 };

const SceneObject = z.object({
  id: z.string(),
  name: z.string(),
  shape: z.enum(['box', 'sphere', 'cylinder', 'cone', 'torus', 'plane']),
  position: z.array(z.number()).length(3),
  rotation: z.array(z.number()).length(3),
  scale: z.array(z.number()).length(3),
  color: z.string().regex(/^#[0-9a-f]{6}$/),
});
const SceneState = z.object({
  title: z.string(),
  version: z.number(),
  count: z.number(),
  objects: z.array(SceneObject),
});
const ObjectResult = z.object({ object: SceneObject });
const SceneMessage = z.object({ type: z.literal('scene'), scene: SceneState });

interface SceneServer {
  client: Client;
  stderr(): string;
  close(): Promise<void>;
}

/** Spawns the demo with the official SDK client, as Claude Desktop would. */
async function startScene(env: Record<string, string> = {}): Promise<SceneServer> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [SERVER],
    env: { ...getDefaultEnvironment(), APP_PORT: '0', ...env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name: 'demo-3d-scene-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, stderr: () => stderr, close: () => client.close() };
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  return CallToolResultSchema.parse(await client.callTool({ name, arguments: args }));
}

function textOf(result: CallToolResult): string {
  return result.content.map((part) => (part.type === 'text' ? part.text : '')).join('\n');
}

/** Calls a tool that must succeed, and returns the object it reports. */
async function objectCall(client: Client, name: string, args: Record<string, unknown>) {
  const result = await call(client, name, args);
  assert.notEqual(result.isError, true, textOf(result));
  return ObjectResult.parse(result.structuredContent).object;
}

async function viewerUrl(client: Client): Promise<string> {
  const result = await call(client, 'get_viewer_url');
  assert.notEqual(result.isError, true, textOf(result));
  return z.object({ url: z.string() }).parse(result.structuredContent).url;
}

/** Hands out a WebSocket's scene messages in order, waiting for the next one when none is queued. */
function sceneMessages(ws: WebSocket): () => Promise<z.infer<typeof SceneState>> {
  const queued: z.infer<typeof SceneState>[] = [];
  const waiting: ((state: z.infer<typeof SceneState>) => void)[] = [];
  ws.on('message', (data) => {
    const { scene } = SceneMessage.parse(JSON.parse(String(data)));
    const waiter = waiting.shift();
    if (waiter) waiter(scene);
    else queued.push(scene);
  });
  return () => {
    const next = queued.shift();
    return next ? Promise.resolve(next) : new Promise((resolve) => waiting.push(resolve));
  };
}

describe('3d-scene: its scene across restarts (MCP_RELAY_STATE_DIR)', () => {
  it('saves the scene at each change and the next process starts with it; without the folder, empty', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-scene-'));
    try {
      const first = await startScene({ MCP_RELAY_STATE_DIR: dir });
      await objectCall(first.client, 'add_object', { name: 'kept', shape: 'sphere', color: '#F80' });
      await objectCall(first.client, 'add_object', { name: 'gone' });
      await objectCall(first.client, 'remove_object', { name: 'gone' });
      await first.close();
      const second = await startScene({ MCP_RELAY_STATE_DIR: dir });
      try {
        const listed = await call(second.client, 'list_objects');
        assert.match(textOf(listed), /kept/);
        assert.doesNotMatch(textOf(listed), /gone/);
        assert.match(second.stderr(), /restored 1 objects/);
        // Ids go on after the restored ones, never reused.
        assert.equal((await objectCall(second.client, 'add_object', {})).id, 'obj-3');
      } finally {
        await second.close();
      }
      const fresh = await startScene();
      try {
        assert.doesNotMatch(textOf(await call(fresh.client, 'list_objects')), /kept/);
      } finally {
        await fresh.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('3d-scene: MCP tools and the scene resource', () => {
  let server: SceneServer;
  before(async () => {
    server = await startScene();
  });
  after(() => server.close());

  it('offers the six tools and resource subscriptions', TIMEOUT, async () => {
    const { tools } = await server.client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), [
      'add_object',
      'clear_scene',
      'get_viewer_url',
      'list_objects',
      'remove_object',
      'update_object',
    ]);
    assert.equal(server.client.getServerCapabilities()?.resources?.subscribe, true);
    assert.match(server.stderr(), /3d-scene viewer listening on http:\/\/127\.0\.0\.1:\d+\//);
  });

  it('adds objects with defaults or with every field, and returns their ids', TIMEOUT, async () => {
    await call(server.client, 'clear_scene');
    const plain = await objectCall(server.client, 'add_object', {});
    assert.equal(plain.shape, 'box');
    assert.deepEqual(
      [plain.position, plain.rotation, plain.scale],
      [
        [0, 0, 0],
        [0, 0, 0],
        [1, 1, 1],
      ],
    );
    assert.ok(plain.id && plain.name);

    const full = {
      shape: 'torus',
      name: 'ring',
      position: [1, 2, 3],
      rotation: [90, 0, 45],
      scale: [2, 2, 0.5],
    };
    const ring = await objectCall(server.client, 'add_object', { ...full, color: '#F80' });
    assert.deepEqual({ ...ring, id: undefined }, { ...full, color: '#ff8800', id: undefined });
    assert.notEqual(ring.id, plain.id);
  });

  it('updates by id or name, renames, removes, lists and clears', TIMEOUT, async () => {
    await call(server.client, 'clear_scene');
    const cone = await objectCall(server.client, 'add_object', { shape: 'cone', name: 'tree' });
    await objectCall(server.client, 'add_object', { shape: 'sphere', name: 'ball' });

    const moved = await objectCall(server.client, 'update_object', { id: cone.id, position: [4, 0, -1] });
    assert.deepEqual(moved, { ...cone, position: [4, 0, -1] });
    const renamed = await objectCall(server.client, 'update_object', {
      name: 'tree',
      newName: 'pine',
      color: '#00aa00',
    });
    assert.deepEqual(renamed, { ...moved, name: 'pine', color: '#00aa00' });

    const removed = await objectCall(server.client, 'remove_object', { name: 'ball' });
    assert.equal(removed.shape, 'sphere');
    const listed = z
      .object({ count: z.number(), objects: z.array(SceneObject) })
      .parse((await call(server.client, 'list_objects')).structuredContent);
    assert.deepEqual(listed, { count: 1, objects: [renamed] });

    const cleared = await call(server.client, 'clear_scene');
    assert.deepEqual(cleared.structuredContent, { removed: 1 });
    assert.deepEqual((await call(server.client, 'list_objects')).structuredContent, {
      count: 0,
      objects: [],
    });
  });

  it('serves the whole scene as JSON at scene://current', TIMEOUT, async () => {
    await call(server.client, 'clear_scene');
    const box = await objectCall(server.client, 'add_object', { name: 'crate', color: '#123456' });
    const { resources } = await server.client.listResources();
    assert.deepEqual(
      resources.map((resource) => [resource.uri, resource.mimeType]),
      [['scene://current', 'application/json']],
    );
    const { contents } = await server.client.readResource({ uri: 'scene://current' });
    const [content] = contents;
    assert.ok(content && 'text' in content, 'the resource has text content');
    assert.equal(content.mimeType, 'application/json');
    const state = SceneState.parse(JSON.parse(content.text));
    assert.deepEqual([state.title, state.count, state.objects], ['3D Scene', 1, [box]]);
  });

  it(
    'sends resources/updated to a subscriber after each change, and stops after unsubscribe',
    TIMEOUT,
    async () => {
      const updates: string[] = [];
      server.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
        updates.push(notification.params.uri);
      });
      await server.client.subscribeResource({ uri: 'scene://current' });
      // The server writes the notification before the tool's response, on the same stream: no waiting needed.
      await objectCall(server.client, 'add_object', { shape: 'cylinder' });
      assert.deepEqual(updates, ['scene://current']);
      await call(server.client, 'clear_scene');
      assert.deepEqual(updates, ['scene://current', 'scene://current']);

      await server.client.unsubscribeResource({ uri: 'scene://current' });
      await objectCall(server.client, 'add_object', { shape: 'cylinder' });
      assert.equal(updates.length, 2);

      await assert.rejects(server.client.subscribeResource({ uri: 'scene://other' }), (error: unknown) => {
        assert.ok(error instanceof McpError);
        assert.equal(error.code, -32002);
        return true;
      });
    },
  );

  it('answers bad input with a tool error that says what is wrong', TIMEOUT, async () => {
    await call(server.client, 'clear_scene');
    await objectCall(server.client, 'add_object', { name: 'taken' });
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['add_object', { color: 'orange' }, /CSS hex color like "#ff8800"/],
      ['add_object', { shape: 'teapot' }, /shape/],
      ['add_object', { scale: [1, 0, 1] }, /scale/],
      ['add_object', { position: [1, 2] }, /position/],
      ['add_object', { colour: '#ff0000' }, /colour/],
      ['add_object', { name: 'taken' }, /already exists/],
      ['update_object', { id: 'obj-999', color: '#ffffff' }, /No object with id "obj-999"/],
      ['update_object', { name: 'taken' }, /Nothing to update/],
      ['remove_object', {}, /id or its name/],
      ['remove_object', { name: 'ghost' }, /No object named "ghost"/],
    ];
    for (const [tool, args, message] of cases) {
      const result = await call(server.client, tool, args);
      assert.equal(result.isError, true, `${tool} ${JSON.stringify(args)} should fail`);
      assert.match(textOf(result), message);
    }
    // Nothing above changed the scene.
    assert.equal((await call(server.client, 'list_objects')).structuredContent?.count, 1);
  });
});

describe('3d-scene: the viewer over HTTP and WebSocket', () => {
  let server: SceneServer;
  let base: string;
  before(async () => {
    server = await startScene();
    base = await viewerUrl(server.client);
  });
  after(() => server.close());

  it('serves a page with only relative URLs, and three.js from node_modules', TIMEOUT, async () => {
    const page = await fetch(base);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();
    assert.match(html, /<title>3D Scene<\/title>/);
    assert.match(html, /"three": "\.\/vendor\/three\/three\.module\.js"/);
    assert.match(html, /<script type="module" src="\.\/viewer\.js">/);
    assert.doesNotMatch(html, /(src|href)="\/|https?:\/\//, 'no absolute URL in the page');

    for (const path of ['viewer.js', 'vendor/three/three.module.js', 'vendor/three/three.core.js']) {
      const response = await fetch(new URL(path, base));
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get('content-type') ?? '', /^text\/javascript/, path);
      await response.arrayBuffer();
    }
    const viewerJs = await (await fetch(new URL('viewer.js', base))).text();
    assert.match(viewerJs, /new URL\('ws', window\.location\.href\)/);
    assert.equal((await fetch(new URL('vendor/three/package.json', base))).status, 404);
    assert.equal((await fetch(base, { method: 'POST' })).status, 405);
  });

  it('pushes the scene on connect and after every change', TIMEOUT, async () => {
    await call(server.client, 'clear_scene');
    await objectCall(server.client, 'add_object', { name: 'first' });
    const ws = new WebSocket(new URL('ws', base.replace(/^http/, 'ws')));
    try {
      const next = sceneMessages(ws);
      assert.deepEqual(
        (await next()).objects.map((object) => object.name),
        ['first'],
      );
      const added = await objectCall(server.client, 'add_object', { name: 'second', shape: 'cone' });
      assert.deepEqual((await next()).objects.at(-1), added);
      await objectCall(server.client, 'update_object', { id: added.id, color: '#abcdef' });
      assert.equal((await next()).objects.at(-1)?.color, '#abcdef');
      await call(server.client, 'clear_scene');
      assert.equal((await next()).count, 0);
    } finally {
      ws.close();
    }
  });
});

describe('3d-scene: who may reach the viewer', () => {
  let server: SceneServer;
  let base: URL;
  let wsUrl: URL;
  before(async () => {
    server = await startScene();
    base = new URL(await viewerUrl(server.client));
    wsUrl = new URL('ws', base);
    wsUrl.protocol = 'ws:';
  });
  after(() => server.close());

  it(
    'puts the page and its WebSocket under a per-run key, and keeps the key out of the log',
    TIMEOUT,
    async () => {
      const key = base.pathname.split('/')[1] ?? '';
      assert.match(key, /^[\w-]{24}$/, 'an unguessable key: 18 random bytes');
      assert.equal(base.href, `http://127.0.0.1:${base.port}/${key}/`);
      assert.ok(!server.stderr().includes(key), 'the log shows the address without the key');
      const root = new URL('/', base);
      for (const path of ['/', '/index.html', '/viewer.js', '/ws', `/${key.slice(1)}/`, `/${key}x/`]) {
        assert.equal((await fetch(new URL(path, root))).status, 404, path);
      }
      const bare = await fetch(new URL(`/${key}`, root), { redirect: 'manual' });
      assert.equal(bare.status, 301);
      assert.equal(bare.headers.get('location'), `${key}/`);
      const page = await fetch(base);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
      await page.arrayBuffer();

      const root404 = await upgradeStatus(new URL('/ws', wsUrl));
      assert.equal(root404, 404, 'no scene without the key');
      const wrongKey = await upgradeStatus(new URL(`/${'A'.repeat(24)}/ws`, wsUrl));
      assert.equal(wrongKey, 404);
    },
  );

  it(
    'refuses a WebSocket from a foreign Origin, and any request naming a foreign Host',
    TIMEOUT,
    async () => {
      const port = base.port;
      // A page on another site, a sandboxed or file page, another port of this machine.
      for (const origin of ['https://evil.example', 'null', `http://127.0.0.1:${Number(port) + 1}`]) {
        assert.equal(await upgradeStatus(wsUrl, { origin }), 403, origin);
      }
      // DNS rebinding: a foreign name pointing at 127.0.0.1, with or without its own Origin.
      for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, '127.0.0.1']) {
        assert.equal(await upgradeStatus(wsUrl, { host }), 421, host);
        assert.equal(await upgradeStatus(wsUrl, { host, origin: `http://${host}` }), 421, host);
        assert.equal((await rawGet(base, host)).status, 421, `GET with Host ${host}`);
      }
      // The viewer's own page, under either loopback name, and clients that are no browser.
      assert.equal(await upgradeStatus(wsUrl, { origin: `http://127.0.0.1:${port}` }), 101);
      assert.equal(
        await upgradeStatus(wsUrl, { host: `localhost:${port}`, origin: `http://localhost:${port}` }),
        101,
      );
      assert.equal(await upgradeStatus(wsUrl), 101);
      assert.equal((await rawGet(base, `localhost:${port}`)).status, 200);
    },
  );

  it('accepts the host and origin of APP_PUBLIC_URL, and puts the key under it', TIMEOUT, async () => {
    const behind = await startScene({ APP_PUBLIC_URL: 'https://relay.example.com/apps/3d' });
    try {
      const url = new URL(await viewerUrl(behind.client));
      assert.match(url.href, /^https:\/\/relay\.example\.com\/apps\/3d\/[\w-]{24}\/$/);
      const port = /viewer listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(behind.stderr())?.[1];
      assert.ok(port, behind.stderr());
      // What the gateway's proxy will send: the public path mapped to the viewer's, Host kept or not.
      const local = new URL(url.pathname.replace('/apps/3d', ''), `ws://127.0.0.1:${port}/`);
      const ws = new URL('ws', local);
      const origin = 'https://relay.example.com';
      assert.equal(await upgradeStatus(ws, { host: 'relay.example.com', origin }), 101);
      assert.equal(await upgradeStatus(ws, { host: 'relay.example.com:443', origin }), 101);
      assert.equal(await upgradeStatus(ws, { origin }), 101, 'a proxy that sends its upstream Host');
      assert.equal(
        await upgradeStatus(ws, { host: 'relay.example.com', origin: 'https://evil.example' }),
        403,
      );
      assert.equal(await upgradeStatus(ws, { host: 'other.example.com', origin }), 421);
    } finally {
      await behind.close();
    }
  });

  it(
    'keeps the key MCP_RELAY_APP_KEY gives (a restarted instance keeps its link), and refuses a short one',
    TIMEOUT,
    async () => {
      const key = 'k'.repeat(24);
      for (let run = 0; run < 2; run++) {
        const server = await startScene({ MCP_RELAY_APP_KEY: key });
        try {
          assert.match(await viewerUrl(server.client), new RegExp(`^http://127\\.0\\.0\\.1:\\d+/${key}/$`));
        } finally {
          await server.close();
        }
      }
      const short = await startScene({ MCP_RELAY_APP_KEY: 'short' });
      try {
        const result = await call(short.client, 'get_viewer_url');
        assert.equal(result.isError, true);
        assert.match(textOf(result), /MCP_RELAY_APP_KEY must be/);
      } finally {
        await short.close();
      }
    },
  );

  it('refuses to start the viewer on an APP_PUBLIC_URL that is no http(s) URL', TIMEOUT, async () => {
    const broken = await startScene({ APP_PUBLIC_URL: 'relay.example.com/apps/3d' });
    try {
      const result = await call(broken.client, 'get_viewer_url');
      assert.equal(result.isError, true);
      assert.match(textOf(result), /APP_PUBLIC_URL must be an http\(s\) URL/);
    } finally {
      await broken.close();
    }
  });
});

describe('3d-scene: configuration and lifecycle', () => {
  it('shows SCENE_TITLE and MCP_RELAY_USER on the page, HTML-escaped', TIMEOUT, async () => {
    const server = await startScene({ SCENE_TITLE: 'Office <lab>', MCP_RELAY_USER: 'alice' });
    try {
      const html = await (await fetch(await viewerUrl(server.client))).text();
      assert.match(html, /<title>Office &lt;lab&gt;<\/title>/);
      assert.match(html, /<p id="user">user: alice<\/p>/);
    } finally {
      await server.close();
    }
  });

  it('keeps serving MCP when the viewer port is taken', TIMEOUT, async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    assert.ok(address && typeof address === 'object');
    const server = await startScene({ APP_PORT: String(address.port) });
    try {
      const result = await call(server.client, 'get_viewer_url');
      assert.equal(result.isError, true);
      assert.match(textOf(result), /viewer is unavailable: .*EADDRINUSE/);
      await objectCall(server.client, 'add_object', { shape: 'sphere' });
      assert.match(server.stderr(), /viewer unavailable/);
    } finally {
      await server.close();
      blocker.close();
    }
  });

  for (const stop of ['stdin closes', 'SIGTERM'] as const) {
    it(`exits with code 0 and frees its port when ${stop}`, TIMEOUT, async () => {
      const child = spawn(process.execPath, [SERVER], {
        env: { ...getDefaultEnvironment(), APP_PORT: '0' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      try {
        const url = await viewerUrlOverStdio(child);
        const ws = new WebSocket(new URL('ws', url.replace(/^http/, 'ws')));
        await once(ws, 'open');
        const exited = once(child, 'exit');
        const wsClosed = once(ws, 'close');
        if (stop === 'stdin closes') child.stdin?.end();
        else child.kill('SIGTERM');
        assert.deepEqual(await exited, [0, null]);
        await wsClosed;
        await assert.rejects(fetch(url), 'the viewer port is closed');
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  }
});

describe('3d-scene: the viewer in a real browser', () => {
  let browser: Browser;
  let server: SceneServer;
  let proxy: PrefixProxy;
  let appPort: number;
  before(async () => {
    browser = await launchChromium();
    // Served under /apps/3d/ as the gateway will, with APP_PUBLIC_URL naming that place: the proxy
    // passes the browser's Host and Origin on, so the viewer must take the public URL's as its own.
    appPort = await freePort();
    proxy = await startPrefixProxy('/apps/3d/', new URL(`http://127.0.0.1:${appPort}/`));
    server = await startScene({
      SCENE_TITLE: 'Browser test',
      MCP_RELAY_USER: 'bob',
      APP_PORT: String(appPort),
      APP_PUBLIC_URL: proxy.url,
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await proxy?.close();
  });

  it('renders objects added over MCP, live, under a gateway-style path prefix', {
    timeout: 60_000,
  }, async () => {
    const url = await viewerUrl(server.client);
    assert.ok(url.startsWith(proxy.url), `${url} is under the public URL`);
    const page = await browser.newPage({ viewport: { width: 1024, height: 640 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    try {
      // This only works if every URL in the page is relative (the key in its path included).
      await page.goto(url);
      await page.locator('#status[data-state="live"]').waitFor();
      assert.equal(await page.locator('#user').textContent(), 'user: bob');

      await objectCall(server.client, 'add_object', {
        name: 'crate',
        position: [0, 1.5, 0],
        scale: [3, 3, 3],
        color: '#ff8800',
      });
      await objectCall(server.client, 'add_object', {
        name: 'ball',
        shape: 'sphere',
        position: [-3, 1, 2],
        scale: [2, 2, 2],
        color: '#2f7bff',
      });
      await page.locator('#object-count', { hasText: /^2$/ }).waitFor();
      assert.deepEqual(await page.locator('#objects li').allTextContents(), ['crate (box)', 'ball (sphere)']);
      assert.equal(await page.locator('canvas').count(), 1);

      // Let a few frames render, then check the picture shows lit orange, not a black or empty canvas.
      await page.waitForTimeout(300);
      const png = await page.screenshot({ path: '/tmp/3d-scene.png' });
      const orange = await countPixels(browser, png, 'r > 140 && g > 40 && g < 200 && b < 90');
      const blue = await countPixels(browser, png, 'b > 140 && r < 120');
      assert.ok(orange.share > 0.02, `the orange box covers ${orange.share} of the picture`);
      assert.ok(orange.shades > 5, `the box is shaded (${orange.shades} shades), so the lights work`);
      assert.ok(blue.share > 0.01, `the blue sphere covers ${blue.share} of the picture`);

      await call(server.client, 'remove_object', { name: 'ball' });
      await page.locator('#object-count', { hasText: /^1$/ }).waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  /** The viewer's own address of a URL under the proxy's public one (what the proxy forwards to). */
  const local = (publicUrl: string) => `http://127.0.0.1:${appPort}/${publicUrl.slice(proxy.url.length)}`;

  it('also goes live at its loopback address', TIMEOUT, async () => {
    const page = await browser.newPage();
    try {
      await page.goto(local(await viewerUrl(server.client)));
      await page.locator('#status[data-state="live"]').waitFor();
    } finally {
      await page.close();
    }
  });

  it("keeps the scene from another site's page, even one that knows the key", TIMEOUT, async () => {
    // The WebSocket next to the page, as the page finds it (so the attacker even knows the key), at
    // the public address and at the viewer's own.
    const pageUrl = await viewerUrl(server.client);
    const targets = [pageUrl, local(pageUrl)].map((url) => new URL('ws', url).href.replace(/^http/, 'ws'));
    await objectCall(server.client, 'add_object', { name: 'secret-plans' });
    // Another site the user has open: a page on another port of this machine.
    const site = createHttpServer((_req, res) => res.end('<!doctype html><title>elsewhere</title>'));
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
      for (const target of targets) {
        // A string, not a function, because this test's tsconfig has no DOM types.
        const outcome = await page.evaluate(`new Promise((resolve) => {
          const ws = new WebSocket(${JSON.stringify(target)});
          ws.onmessage = (event) => resolve('read: ' + String(event.data).slice(0, 200));
          ws.onclose = (event) => resolve('closed ' + event.code);
        })`);
        assert.equal(outcome, 'closed 1006', `${target}: the handshake is refused`);
      }
    } finally {
      await page.close();
      site.close();
    }
  });
});

/**
 * Asks a demo spawned without the SDK for get_viewer_url, speaking MCP on its stdio by hand (the test
 * must own the process to see its exit code), and keeps draining its stdout and stderr afterwards.
 */
async function viewerUrlOverStdio(child: ChildProcess): Promise<string> {
  const send = (message: Record<string, unknown>) =>
    child.stdin?.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n')) {
        const message = JSON.parse(buffered.slice(0, end)) as { id?: number; result?: CallToolResult };
        buffered = buffered.slice(end + 1);
        if (message.id === 2)
          resolve(z.object({ url: z.string() }).parse(message.result?.structuredContent).url);
      }
    });
    child.once('exit', () => reject(new Error(`the demo exited before answering: ${stderr}`)));
  });
  send({
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
  send({ method: 'notifications/initialized' });
  send({ id: 2, method: 'tools/call', params: { name: 'get_viewer_url', arguments: {} } });
  return url;
}

/** The status a WebSocket upgrade gets (101 when it opens), with the headers given. */
async function upgradeStatus(url: URL, headers: { host?: string; origin?: string } = {}): Promise<number> {
  const { origin, ...rest } = headers;
  const ws = new WebSocket(url, { headers: rest, ...(origin === undefined ? {} : { origin }) });
  try {
    return await new Promise<number>((resolve, reject) => {
      ws.once('open', () => resolve(101));
      ws.once('unexpected-response', (_request, response) => {
        response.resume();
        response.once('end', () => resolve(response.statusCode ?? 0));
      });
      ws.once('error', reject);
    });
  } finally {
    ws.terminate();
  }
}

/** A GET of `url` with a Host header of the test's choosing (fetch would not send it). */
function rawGet(url: URL, host: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { host } }, (response) => {
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0 }));
    });
    req.once('error', reject);
  });
}

/**
 * Share of a PNG's pixels matching a condition on r, g, b, and how many distinct colors those pixels have.
 * The PNG is decoded in a blank browser page, which saves a PNG decoder dependency.
 */
async function countPixels(browser: Browser, png: Buffer, condition: string) {
  const page = await browser.newPage();
  try {
    // A string, not a function, because this test's tsconfig has no DOM types.
    const measure = `(async (base64) => {
      const image = new Image();
      image.src = 'data:image/png;base64,' + base64;
      await image.decode();
      const canvas = new OffscreenCanvas(image.width, image.height);
      const context = canvas.getContext('2d');
      context.drawImage(image, 0, 0);
      const data = context.getImageData(0, 0, image.width, image.height).data;
      let matching = 0;
      const shades = new Set();
      for (let i = 0; i < data.length; i += 4) {
        const r = data[i], g = data[i + 1], b = data[i + 2];
        if (${condition}) {
          matching++;
          shades.add((r << 16) | (g << 8) | b);
        }
      }
      return { share: matching / (image.width * image.height), shades: shades.size };
    })(${JSON.stringify(png.toString('base64'))})`;
    return z.object({ share: z.number(), shades: z.number() }).parse(await page.evaluate(measure));
  } finally {
    await page.close();
  }
}
