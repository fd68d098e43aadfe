// The 3D demo behind the gateway in a real Chromium: each user's Claude (the SDK's stdio client through
// `mcp-relay connect`, as Claude Desktop launches it) asks get_viewer_url, their browser opens the ticketed link, and the page follows the scene
// live; per-user pages stay apart and reconnect to a restarted backend on the same URL, a shared
// scene is one for everyone, and a browser without the cookie or with another user's sees 401 / 403.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { processWithEnv } from './helpers/app-browser.ts';
import { launchChromium } from './helpers/browser.ts';
import { connectThroughBridge } from './helpers/cli.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const DEMO = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));
const WAIT = 30_000;

/** Claude for `user`: the SDK's stdio client through `mcp-relay connect` to the gateway. */
async function claude(gw: TestGateway, user: string): Promise<Client> {
  const bridged = await connectThroughBridge(`${gw.url}/mcp/3d`, {
    env: { MCP_RELAY_TOKEN: gw.keys[user] ?? '' },
  });
  return bridged.client;
}

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function demoGateway(isolation: string): Promise<TestGateway> {
  return startGateway(
    {
      servers: { '3d': { command: process.execPath, args: [DEMO], isolation, app: { portEnv: 'APP_PORT' } } },
    },
    { users: ['alice', 'bob'] },
  );
}

async function viewerLink(client: Client): Promise<string> {
  const result = await client.callTool({ name: 'get_viewer_url', arguments: {} });
  return (result.structuredContent as { url: string }).url;
}

/** Opens the ticketed link in a fresh context; resolves when the page is on the clean URL and live. */
async function openViewer(link: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
  const page = await context.newPage();
  const response = await page.goto(link, { timeout: WAIT });
  assert.equal(response?.status(), 200);
  assert.doesNotMatch(page.url(), /ticket=/);
  await waitState(page, 'live');
  return { context, page };
}

async function waitState(page: Page, state: string): Promise<void> {
  await page.waitForSelector(`#status[data-state="${state}"]`, { timeout: WAIT });
}

/** The object names the page lists (its overlay follows the scene it gets over the WebSocket). */
function objectNames(page: Page): Promise<string[]> {
  return page.$$eval('#objects li', (items) =>
    items.map((item) => (item.textContent ?? '').replace(/ \(.*\)$/, '')),
  );
}

async function waitForObject(page: Page, name: string): Promise<void> {
  await eventually(async () => (await objectNames(page)).includes(name), `"${name}" on the page`, WAIT);
}

async function addObject(client: Client, name: string): Promise<void> {
  const result = await client.callTool({ name: 'add_object', arguments: { shape: 'box', name } });
  assert.notEqual(result.isError, true, JSON.stringify(result.content));
}

describe('apps in a browser: per-user', () => {
  let gw: TestGateway;
  const clients: Client[] = [];
  const contexts: BrowserContext[] = [];
  let alice: Client;
  let bob: Client;
  let alicePage: Page;
  let bobPage: Page;
  let aliceUrl: string;

  before(async () => {
    gw = await demoGateway('per-user');
    alice = await claude(gw, 'alice');
    bob = await claude(gw, 'bob');
    clients.push(alice, bob);
  });
  after(async () => {
    for (const context of contexts) await context.close();
    for (const client of clients) await client.close();
    await gw?.close();
  });

  it("each user's link opens their own scene; alice's new object shows live on her page only", async () => {
    const aliceLink = await viewerLink(alice);
    const bobLink = await viewerLink(bob);
    assert.match(aliceLink, new RegExp(`^${gw.url}/apps/3d/alice/[\\w-]+/\\?ticket=`));
    assert.match(bobLink, new RegExp(`^${gw.url}/apps/3d/bob/[\\w-]+/\\?ticket=`));
    const a = await openViewer(aliceLink);
    const b = await openViewer(bobLink);
    contexts.push(a.context, b.context);
    alicePage = a.page;
    bobPage = b.page;
    aliceUrl = alicePage.url();
    assert.equal(aliceUrl, aliceLink.replace(/\?ticket=.*$/, ''));
    assert.equal(bobPage.url(), bobLink.replace(/\?ticket=.*$/, ''));
    assert.match((await alicePage.textContent('#user')) ?? '', /alice/);
    assert.match((await bobPage.textContent('#user')) ?? '', /bob/);

    await addObject(alice, 'alice-box');
    await waitForObject(alicePage, 'alice-box');
    await addObject(bob, 'bob-box');
    await waitForObject(bobPage, 'bob-box');
    assert.ok(!(await objectNames(bobPage)).includes('alice-box'), "bob's page never shows alice's object");
    assert.ok(!(await objectNames(alicePage)).includes('bob-box'), "alice's page never shows bob's object");
  });

  it("after alice's backend is killed, her open page reconnects on the same URL and follows the new one", {
    skip: process.platform !== 'linux' && 'finds the process through /proc',
  }, async () => {
    assert.ok(alicePage, 'the page from the first test is open');
    const key = new URL(aliceUrl).pathname.split('/').at(-2) ?? '';
    const entry = `MCP_RELAY_APP_KEY=${key}`;
    const pid = processWithEnv(entry);
    assert.ok(pid !== undefined, "alice's demo process carries its instance key");
    process.kill(pid, 'SIGKILL');
    await waitState(alicePage, 'offline');
    await eventually(
      () => {
        const now = processWithEnv(entry);
        return now !== undefined && now !== pid;
      },
      'a new demo process for alice',
      WAIT,
    );
    await waitState(alicePage, 'live');
    assert.equal(alicePage.url(), aliceUrl);
    // Alice's MCP session outlives the restart; her next object reaches the same open page.
    await addObject(alice, 'after-restart');
    await waitForObject(alicePage, 'after-restart');
    assert.ok(!(await objectNames(bobPage)).includes('after-restart'));
  });

  it('refusals a browser sees: no cookie is the 401 page, bob on alice’s URL is 403', async () => {
    assert.ok(aliceUrl);
    const fresh = await browser.newContext();
    contexts.push(fresh);
    const page = await fresh.newPage();
    const refused = await page.goto(aliceUrl, { timeout: WAIT });
    assert.equal(refused?.status(), 401);
    assert.match((await page.textContent('body')) ?? '', /Ask Claude for the viewer URL again/);

    const onAlice = await bobPage.context().newPage();
    const forbidden = await onAlice.goto(aliceUrl, { timeout: WAIT });
    assert.equal(forbidden?.status(), 403);
    await onAlice.close();
  });
});

describe('apps in a browser: shared', () => {
  let gw: TestGateway;
  const clients: Client[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    gw = await demoGateway('shared');
  });
  after(async () => {
    for (const context of contexts) await context.close();
    for (const client of clients) await client.close();
    await gw?.close();
  });

  it('alice and bob see one scene: an object alice adds shows on bob’s page', async () => {
    const alice = await claude(gw, 'alice');
    clients.push(alice);
    const bob = await claude(gw, 'bob');
    clients.push(bob);
    const aliceLink = await viewerLink(alice);
    const bobLink = await viewerLink(bob);
    assert.match(aliceLink, new RegExp(`^${gw.url}/apps/3d/[\\w-]+/\\?ticket=`));
    const a = await openViewer(aliceLink);
    contexts.push(a.context);
    const b = await openViewer(bobLink);
    contexts.push(b.context);
    assert.equal(a.page.url(), b.page.url());

    await addObject(alice, 'shared-box');
    await waitForObject(a.page, 'shared-box');
    await waitForObject(b.page, 'shared-box');
  });
});
