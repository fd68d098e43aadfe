// The bundled 3D demo behind the gateway: get_viewer_url gives a gateway link with a ticket, the page
// and its live WebSocket work through the proxy (the demo's own Host, Origin and key checks accept
// what the gateway forwards), and after the demo is killed the same address reaches the new process.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Browser, nextMessage, processWithEnv, session } from './helpers/app-browser.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

describe('apps: the 3D demo through the gateway', () => {
  let gw: TestGateway;
  let client: Awaited<ReturnType<typeof session>>;
  before(async () => {
    const demo = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));
    gw = await startGateway(
      { servers: { '3d': { command: process.execPath, args: [demo], app: { portEnv: 'APP_PORT' } } } },
      { users: ['alice'] },
    );
    client = await session(gw, '3d', 'alice');
  });
  after(async () => {
    await client.close();
    await gw.close();
  });

  it('get_viewer_url gives a gateway link that signs in; the page and its live WebSocket work', async () => {
    const result = await client.callTool({ name: 'get_viewer_url', arguments: {} });
    const link = (result.structuredContent as { url: string }).url;
    assert.match(link, new RegExp(`^${gw.url}/apps/3d/alice/[\\w-]+/\\?ticket=`));
    const browser = new Browser(gw.url);
    const signIn = await browser.get(link);
    assert.equal(signIn.status, 303);
    browser.cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const pagePath = signIn.headers.get('location') ?? '';
    const page = await browser.get(pagePath);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const ws = browser.socket(`${pagePath}ws`, gw.url);
    const first = JSON.parse(await nextMessage(ws)) as { type: string };
    assert.equal(first.type, 'scene');
    const update = nextMessage(ws);
    await client.callTool({ name: 'add_object', arguments: { shape: 'sphere', name: 'ball' } });
    assert.match(await update, /"ball"/);
    ws.close();
  });

  it('after the demo is killed, the same page address reaches the new process', {
    skip: process.platform !== 'linux' && 'finds the process through /proc',
  }, async () => {
    const result = await client.callTool({ name: 'get_viewer_url', arguments: {} });
    const link = (result.structuredContent as { url: string }).url;
    const browser = new Browser(gw.url);
    const signIn = await browser.get(link);
    browser.cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const pagePath = signIn.headers.get('location') ?? '';
    const key = pagePath.split('/').at(-2) ?? '';
    const pid = processWithEnv(`MCP_RELAY_APP_KEY=${key}`);
    assert.ok(pid !== undefined, 'the demo process carries its instance key');
    process.kill(pid, 'SIGKILL');
    await eventually(async () => processWithEnv(`MCP_RELAY_APP_KEY=${key}`) !== pid, 'a new demo process');
    await eventually(
      async () => (await browser.get(pagePath)).status === 200,
      'the page on the same address',
    );
    const ws = browser.socket(`${pagePath}ws`, gw.url);
    assert.equal((JSON.parse(await nextMessage(ws)) as { type: string }).type, 'scene');
    ws.close();
  });
});
