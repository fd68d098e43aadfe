// The admin page in a real Chromium against a real gateway with real backends: an admin's single-use
// link signs the browser in (HttpOnly, SameSite=Strict cookie on /admin/), the page lists alice's
// session with its client and address, her calls, the backend with its pid and memory, a refusal, and
// follows new calls live; client-chosen names stay text under a strict CSP. Everyone else gets 401 or
// 403, a link works once, and `mcp-relay status` prints the same status in the terminal.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser } from 'playwright-core';
import type { StatusReport } from '../src/admin/status.ts';
import { listKeys, revokeUserKeys } from '../src/auth/key-admin.ts';
import { launchChromium } from './helpers/browser.ts';
import { runCliInProcess } from './helpers/cli.ts';
import { connectClient, fixtureServer, startGateway, type TestGateway } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const TIMEOUT = { timeout: 90_000 };
const XSS_NAME = '<img src=x id=injected onerror="window.__xss=1">';

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function adminGateway(): Promise<TestGateway> {
  return startGateway(
    {
      servers: { a: fixtureServer('well', { tools: { deny: ['crash'] } }) },
      admin: { groups: ['admins'] },
    },
    { users: ['alice', 'root'], groups: { root: ['admins'] } },
  );
}

async function signInLink(gw: TestGateway, key: string | undefined): Promise<Response> {
  return fetch(`${gw.url}/admin/link`, {
    method: 'POST',
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
  });
}

/** An SDK client that names itself `name` in its initialize. */
async function namedClient(url: string, key: string, name: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name, version: '6.6.6' });
  await client.connect(transport);
  return client;
}

describe('admin page', () => {
  it(
    'signs an admin in with a one-time link and shows sessions, calls, backends and refusals live',
    TIMEOUT,
    async () => {
      const gw = await adminGateway();
      const clients: Client[] = [];
      try {
        const root = gw.keys.root as string;
        const alice = gw.keys.alice as string;
        const { client } = await connectClient(`${gw.url}/mcp/a`, alice);
        clients.push(client);
        for (let i = 0; i < 3; i++) await client.callTool({ name: 'echo', arguments: { text: String(i) } });
        await client.callTool({ name: 'crash', arguments: {} }).catch(() => undefined);
        clients.push(await namedClient(`${gw.url}/mcp/a`, alice, XSS_NAME));

        // Nobody else: no credential, a non-admin, the page without a cookie.
        assert.equal((await signInLink(gw, undefined)).status, 401);
        assert.equal((await signInLink(gw, alice)).status, 403);
        assert.equal((await fetch(`${gw.url}/admin/api/status`)).status, 401);
        const asAlice = await fetch(`${gw.url}/admin/api/status`, {
          headers: { authorization: `Bearer ${alice}` },
        });
        assert.equal(asAlice.status, 403);
        const bare = await fetch(`${gw.url}/admin/`);
        assert.equal(bare.status, 401);
        assert.match(await bare.text(), /mcp-relay status --open/);

        const link = await signInLink(gw, root);
        assert.equal(link.status, 200);
        const { url } = (await link.json()) as { url: string };
        assert.ok(url.startsWith(`${gw.url}/admin/?ticket=`), url);

        const context = await browser.newContext();
        const page = await context.newPage();
        const blocked: string[] = [];
        page.on('console', (message) => {
          if (/Content Security Policy/i.test(message.text())) blocked.push(message.text());
        });
        const response = await page.goto(url);
        assert.equal(response?.status(), 200);
        assert.equal(page.url(), `${gw.url}/admin/`, 'the ticket is gone from the address');
        const csp = response?.headers()['content-security-policy'] ?? '';
        assert.match(csp, /script-src 'self'/);
        assert.doesNotMatch(csp, /unsafe-inline/);
        const [cookie] = await context.cookies();
        assert.equal(cookie?.name, 'mcp_relay_admin');
        assert.equal(cookie?.httpOnly, true);
        assert.equal(cookie?.sameSite, 'Strict');
        assert.equal(cookie?.path, '/admin/');

        // Sessions: alice twice (the SDK client, and the one with a hostile name), with client and address.
        // A locator, not waitForFunction: that evaluates its predicate with eval in the page, which the
        // page's CSP (script-src 'self', no 'unsafe-eval') can refuse: CI saw an EvalError there.
        await page.locator('#sessions tbody tr:not(.empty)').nth(1).waitFor();
        assert.equal(await page.locator('#sessions tbody tr:not(.empty)').count(), 2);
        const sessions = await page.$$eval('#sessions tbody tr', (rows) =>
          rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent ?? '')),
        );
        const sdk = sessions.find((cells) => cells[2] === 'test-client 1.0.0');
        assert.ok(sdk, JSON.stringify(sessions));
        assert.equal(sdk[0], 'alice');
        assert.equal(sdk[1], 'a');
        assert.equal(sdk[3], '127.0.0.1');
        assert.ok(
          sessions.some((cells) => cells[2] === `${XSS_NAME} 6.6.6`),
          'the hostile client name is shown as text',
        );
        assert.equal(await page.$('#injected'), null, 'no element was made from a client name');
        assert.equal(await page.evaluate(() => (globalThis as Record<string, unknown>).__xss), undefined);

        // The backend: alice's per-user process, its real pid and memory.
        const status = (await (
          await fetch(`${gw.url}/admin/api/status`, { headers: { authorization: `Bearer ${root}` } })
        ).json()) as StatusReport;
        const pid = status.backends[0]?.pid;
        assert.ok(pid !== undefined && pid > 0);
        const backends = await page.$$eval('#backends tbody tr', (rows) =>
          rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent ?? '')),
        );
        assert.equal(backends.length, 1);
        const [backend] = backends as [string[]];
        assert.deepEqual(backend.slice(0, 5), ['a', 'alice', String(pid), 'running', 'healthy']);
        assert.match(backend[6] ?? '', /^\d+\.\d MiB$/);
        assert.ok(Number.parseFloat(backend[6] ?? '0') > 5, `RSS ${backend[6]}`);

        // Calls by user and the refusal of the denied tool.
        const users = await page.$$eval('#users tbody tr', (rows) =>
          rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent ?? '')),
        );
        assert.deepEqual(users[0]?.slice(0, 3), ['alice', '3', '0']);
        const refusals = await page.$$eval('#refusals tbody tr', (rows) =>
          rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent ?? '')),
        );
        assert.equal(refusals[0]?.[1], 'alice');
        assert.equal(refusals[0]?.[3], 'tools/call crash');
        // The chart: a line of calls per second over the last 5 minutes.
        const points = await page.$eval('#chart polyline.calls', (line) => line.getAttribute('points') ?? '');
        assert.equal(points.split(' ').length, 300);

        // Live: another call shows up without a reload.
        await client.callTool({ name: 'echo', arguments: { text: 'live' } });
        const calls = page.locator('#users tbody tr td:nth-child(2)').first();
        await eventually(async () => (await calls.textContent()) === '4', 'the page showing the new call');
        assert.deepEqual(blocked, [], 'the page needs nothing its CSP forbids');

        const shot = join(gw.dir, 'admin.png');
        await page.screenshot({ path: shot, fullPage: true });
        const png = readFileSync(shot);
        assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        assert.ok(png.length > 20_000, `a screenshot of ${png.length} bytes is too small to show the page`);

        // The link worked once.
        const again = await browser.newContext();
        const reused = await (await again.newPage()).goto(url);
        assert.equal(reused?.status(), 403);
        await again.close();
        await context.close();

        // The terminal: the same status with an admin key; refused without one or with alice's.
        const env = { ...process.env, MCP_RELAY_TOKEN: root };
        const text = await runCliInProcess(['status', '--url', gw.url], { env });
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /Connected now/);
        assert.match(text.stdout, /alice\s+a\s+test-client 1\.0\.0\s+127\.0\.0\.1/);
        assert.match(text.stdout, new RegExp(`\\ba\\s+alice\\s+${pid}\\s+running\\s+healthy`));
        const json = await runCliInProcess(['status', '--url', gw.url, '--json'], { env });
        const parsed = JSON.parse(json.stdout) as StatusReport;
        assert.equal(parsed.sessions.length, 2);
        assert.equal(parsed.users[0]?.calls, 4);
        const noKey = await runCliInProcess(['status', '--url', gw.url], {
          env: { ...process.env, MCP_RELAY_TOKEN: '' },
        });
        assert.notEqual(noKey.code, 0);
        assert.match(noKey.stderr, /MCP_RELAY_TOKEN/);
        const notAdmin = await runCliInProcess(['status', '--url', gw.url], {
          env: { ...process.env, MCP_RELAY_TOKEN: alice },
        });
        assert.notEqual(notAdmin.code, 0);
        assert.match(notAdmin.stderr, /403/);
        const opened = await runCliInProcess(['status', '--url', gw.url, '--open', '--browser', 'none'], {
          env,
        });
        assert.equal(opened.code, 0, opened.stderr);
        assert.match(opened.stderr, /\/admin\/\?ticket=/);
      } finally {
        for (const client of clients) await client.close().catch(() => undefined);
        await gw.close();
      }
    },
  );

  it('keeps a revoked admin key out, cookie and all', TIMEOUT, async () => {
    const gw = await adminGateway();
    try {
      const { url } = (await (await signInLink(gw, gw.keys.root)).json()) as { url: string };
      const context = await browser.newContext();
      const page = await context.newPage();
      assert.equal((await page.goto(url))?.status(), 200);
      const ids = (await listKeys(gw.keysFile)).filter((key) => key.user === 'root').map((key) => key.id);
      await revokeUserKeys(gw.keysFile, 'root', ids);
      await eventually(
        async () => (await page.reload())?.status() === 401,
        'the page refusing the revoked key',
      );
      await context.close();
    } finally {
      await gw.close();
    }
  });
});
