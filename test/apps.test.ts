// Browser apps through the gateway, end to end: a real gateway, a fixture backend with an HTTP and
// WebSocket app on its APP_PORT, real sockets. Sign-in (link → ticket → cookie), refusals (no cookie,
// another user's app, replayed ticket, foreign Origin, path escapes), per-user and shared routing, a
// restarted backend reached at its new port on the same URL, WebSocket frames both ways, the audit log.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type AppAnswer,
  appServer,
  Browser,
  mintLink,
  nextMessage,
  rawGet,
  refusedStatus,
  session,
} from './helpers/app-browser.ts';
import { parseExposition, type Sample, sampleValue } from './helpers/exposition.ts';
import { connectClient, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

describe('apps: per-user', () => {
  let gw: TestGateway;
  const clients: Array<{ close(): Promise<void> }> = [];
  before(async () => {
    gw = await startGateway(
      { servers: { '3d': appServer('per-user') }, admin: { groups: ['admins'] } },
      { users: ['alice', 'bob', 'root'], groups: { root: ['admins'] } },
    );
    clients.push(await session(gw, '3d', 'alice'), await session(gw, '3d', 'bob'));
  });
  after(async () => {
    for (const client of clients) await client.close();
    await gw.close();
  });

  it('a tool result naming the app gets a fresh ticket for its user; the link Claude shows signs in', async () => {
    const client = clients[0] as Awaited<ReturnType<typeof session>>;
    const base = `${gw.url}/apps/3d/alice/`;
    const results = [];
    for (let i = 0; i < 2; i++)
      results.push(textOf(await client.callTool({ name: 'env', arguments: { name: 'APP_PUBLIC_URL' } })));
    const [first, second] = results as [string, string];
    assert.ok(first.startsWith(`${base}?ticket=`), first);
    assert.notEqual(first, second, 'each result has its own ticket');
    const echoed = textOf(
      await client.callTool({ name: 'echo', arguments: { text: `see ${gw.url}/other/` } }),
    );
    assert.equal(echoed, `see ${gw.url}/other/`, 'other text is left alone');
    const browser = new Browser(gw.url);
    const response = await browser.get(first);
    assert.equal(response.status, 303);
    browser.cookie = (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const page = await browser.app(response.headers.get('location') ?? '');
    assert.equal(page.user, 'alice');
    assert.equal(page.publicUrl, base, 'the backend itself never sees a ticket');
  });

  it('a link signs in once: cookie, 303 to the clean URL, the page; the same link again is 401', async () => {
    const browser = new Browser(gw.url);
    const link = await mintLink(gw, gw.keys.alice as string, '3d');
    const first = await browser.get(link);
    assert.equal(first.status, 303);
    assert.equal(first.headers.get('location'), '/apps/3d/alice/');
    const cookie = first.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^mcp-relay-app=[^;]+; Path=\/apps\/3d\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
    browser.cookie = cookie.split(';')[0] ?? '';
    const page = await browser.app('/apps/3d/alice/index.html?x=1');
    assert.equal(page.user, 'alice');
    assert.equal(page.path, '/index.html?x=1');
    assert.equal(page.headers['x-forwarded-prefix'], '/apps/3d/alice');
    assert.equal(page.headers['x-forwarded-proto'], 'http');
    assert.equal(page.headers['x-forwarded-host'], new URL(gw.url).host);
    assert.equal(page.headers.host, new URL(gw.url).host);
    assert.equal(page.headers.cookie, undefined, 'the gateway cookie is not forwarded');
    const replay = await new Browser(gw.url).get(link);
    assert.equal(replay.status, 401);
    assert.match(await replay.text(), /viewer URL again/);
  });

  it('without a cookie: 401 with a page that says how to get a new link', async () => {
    const response = await new Browser(gw.url).get('/apps/3d/alice/');
    assert.equal(response.status, 401);
    assert.match(response.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await response.text(), /Ask Claude for the viewer URL again/);
  });

  it("alice and bob reach their own instances; bob's cookie on alice's app is 403", async () => {
    const alice = new Browser(gw.url);
    const bob = new Browser(gw.url);
    await alice.signIn(gw, gw.keys.alice as string, '3d');
    await bob.signIn(gw, gw.keys.bob as string, '3d');
    const a = await alice.app('/apps/3d/alice/');
    const b = await bob.app('/apps/3d/bob/');
    assert.equal(a.user, 'alice');
    assert.equal(b.user, 'bob');
    assert.notEqual(a.pid, b.pid);
    assert.equal((await bob.get('/apps/3d/alice/')).status, 403);
    assert.equal((await bob.get('/apps/3d/')).headers.get('location'), '/apps/3d/bob/');
  });

  it('Authorization is not forwarded; bodies pass, up to maxBodyBytes', async () => {
    const alice = new Browser(gw.url);
    await alice.signIn(gw, gw.keys.alice as string, '3d');
    const posted = await alice.get('/apps/3d/alice/upload', {
      method: 'POST',
      body: 'x'.repeat(100_000),
      headers: { authorization: 'Bearer secret', 'content-type': 'text/plain' },
    });
    const answer = (await posted.json()) as AppAnswer;
    assert.equal(answer.bodyBytes, 100_000);
    assert.equal(answer.headers.authorization, undefined);
    const big = await alice.get('/apps/3d/alice/upload', { method: 'POST', body: 'x'.repeat(5 * 1_048_576) });
    assert.equal(big.status, 413);
  });

  it('path escapes are 400, before anything reaches the app', async () => {
    const alice = new Browser(gw.url);
    await alice.signIn(gw, gw.keys.alice as string, '3d');
    for (const path of ['/apps/3d/alice/%2e%2e/bob/', '/apps/3d/alice/a%2fb', '/apps/3d/alice/.%2E/x']) {
      assert.equal(await rawGet(gw.url, path, alice.cookie), 400, path);
    }
  });

  it('WebSocket frames flow both ways; a foreign Origin or no cookie is refused', async () => {
    const alice = new Browser(gw.url);
    await alice.signIn(gw, gw.keys.alice as string, '3d');
    const ws = alice.socket('/apps/3d/alice/ws', gw.url);
    const hello = await nextMessage(ws);
    assert.match(hello, /^hello alice \d+ \/ws$/);
    ws.send('ping 1');
    assert.equal(await nextMessage(ws), 'echo alice: ping 1');
    ws.close();
    assert.equal(await refusedStatus(alice.socket('/apps/3d/alice/ws', 'https://evil.example')), 403);
    assert.equal(await refusedStatus(new Browser(gw.url).socket('/apps/3d/alice/ws', gw.url)), 401);
    const bob = new Browser(gw.url);
    await bob.signIn(gw, gw.keys.bob as string, '3d');
    assert.equal(await refusedStatus(bob.socket('/apps/3d/alice/ws', gw.url)), 403);
  });

  it('counts open app WebSockets in /healthz and /metrics; a frame over maxBodyBytes closes the socket (1009)', async () => {
    const metrics = async () => {
      const response = await fetch(`${gw.url}/metrics`, {
        headers: { authorization: `Bearer ${gw.keys.root}` },
      });
      return parseExposition(await response.text());
    };
    const opened = (all: Sample[]) =>
      sampleValue(all, 'mcp_relay_app_events_total', { server: '3d', event: 'open' }) ?? 0;
    const openedBefore = opened(await metrics());
    const alice = new Browser(gw.url);
    await alice.signIn(gw, gw.keys.alice as string, '3d');
    const ws = alice.socket('/apps/3d/alice/ws', gw.url);
    await nextMessage(ws);
    const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {
      appWebSockets: Record<string, number>;
    };
    assert.equal(health.appWebSockets['3d'], 1);
    const during = await metrics();
    assert.equal(sampleValue(during, 'mcp_relay_app_websockets', { server: '3d' }), 1);
    assert.equal(opened(during), openedBefore + 1);
    assert.ok(
      (sampleValue(during, 'mcp_relay_app_events_total', { server: '3d', event: 'sign-in' }) ?? 0) >= 1,
    );
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(Buffer.alloc(4 * 1_048_576 + 1));
    assert.equal(await closed, 1009);
    await eventually(async () => {
      const after = (await (await fetch(`${gw.url}/healthz`)).json()) as {
        appWebSockets: Record<string, number>;
      };
      return after.appWebSockets['3d'] === undefined;
    }, 'the closed socket no longer counted');
    await eventually(
      async () => sampleValue(await metrics(), 'mcp_relay_app_websockets', { server: '3d' }) === 0,
      'the metrics counting no open socket',
    );
  });

  it("after alice's backend is killed, the same URL reaches the new process at its new port", async () => {
    const alice = new Browser(gw.url);
    await alice.signIn(gw, gw.keys.alice as string, '3d');
    const before = await alice.app('/apps/3d/alice/');
    const client = clients[0] as Awaited<ReturnType<typeof session>>;
    await client.callTool({ name: 'crash', arguments: {} }).catch(() => undefined);
    let after: AppAnswer | undefined;
    const took = await eventually(async () => {
      const response = await alice.get('/apps/3d/alice/');
      if (response.status !== 200) return false;
      after = (await response.json()) as AppAnswer;
      return after.pid !== before.pid;
    }, 'the restarted backend behind the same URL');
    assert.ok(took < 10_000, `${took} ms`);
    assert.equal(after?.user, 'alice');
  });
});

describe('apps: shared', () => {
  let gw: TestGateway;
  const clients: Array<{ close(): Promise<void> }> = [];
  before(async () => {
    gw = await startGateway({ servers: { board: appServer('shared') } }, { users: ['alice', 'bob'] });
    clients.push(await session(gw, 'board', 'alice'));
  });
  after(async () => {
    for (const client of clients) await client.close();
    await gw.close();
  });

  it('alice and bob reach the one instance at the one URL', async () => {
    const alice = new Browser(gw.url);
    const bob = new Browser(gw.url);
    assert.equal(await alice.signIn(gw, gw.keys.alice as string, 'board'), '/apps/board/');
    await bob.signIn(gw, gw.keys.bob as string, 'board');
    const a = await alice.app('/apps/board/');
    const b = await bob.app('/apps/board/');
    assert.equal(a.pid, b.pid);
    assert.equal(a.publicUrl, `${gw.url}/apps/board/`);
  });

  it('no running instance is a 503 page; an unknown app 404', async () => {
    await (clients.pop() as { close(): Promise<void> }).close();
    const gw2 = await startGateway({ servers: { board: appServer('shared') } }, { users: ['carol'] });
    try {
      const carol = new Browser(gw2.url);
      await carol.signIn(gw2, gw2.keys.carol as string, 'board');
      assert.equal((await carol.get('/apps/board/')).status, 503);
      assert.equal((await carol.get('/apps/other/')).status, 404);
    } finally {
      await gw2.close();
    }
  });
});

describe('apps: per-session', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ servers: { '3d': appServer('per-session') } }, { users: ['alice'] });
  });
  after(async () => {
    await gw.close();
  });

  /** A session of alice's and the ticketed link its tool result carries. */
  async function sessionWithLink() {
    const { client, transport } = await connectClient(`${gw.url}/mcp/3d`, gw.keys.alice);
    const link = textOf(await client.callTool({ name: 'env', arguments: { name: 'APP_PUBLIC_URL' } }));
    return { client, transport, link };
  }

  it("each of a user's sessions has its own app at its own address, and its cookie opens only that one", async () => {
    const one = await sessionWithLink();
    const two = await sessionWithLink();
    try {
      const pattern = new RegExp(`^${gw.url}/apps/3d/alice/[\\w-]{16}/\\?ticket=`);
      assert.match(one.link, pattern);
      assert.match(two.link, pattern);
      const oneBase = one.link.replace(/\?ticket=.*$/, '');
      const twoBase = two.link.replace(/\?ticket=.*$/, '');
      assert.notEqual(oneBase, twoBase);
      assert.ok(
        !oneBase.includes(one.transport.sessionId ?? '-'),
        'the address shows nothing of the session id',
      );

      const browser = new Browser(gw.url);
      const signIn = await browser.get(one.link);
      assert.equal(signIn.status, 303);
      assert.match(signIn.headers.get('set-cookie') ?? '', new RegExp(`Path=${new URL(oneBase).pathname};`));
      browser.cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      const page = await browser.app(oneBase);
      assert.equal(page.publicUrl, oneBase, 'the backend was told its own address');
      assert.equal(
        (await browser.get(twoBase)).status,
        401,
        "the first session's cookie does not open the second's app",
      );

      const other = new Browser(gw.url);
      await other.get(two.link).then((response) => {
        other.cookie = (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      });
      const second = await other.app(twoBase);
      assert.notEqual(second.pid, page.pid, 'two sessions, two instances');

      // A link for a session by request, naming the session; without one the gateway cannot tell which.
      const minted = await fetch(`${gw.url}/app-links/3d`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${gw.keys.alice}`,
          'mcp-session-id': two.transport.sessionId ?? '',
        },
      });
      assert.equal(minted.status, 200);
      assert.ok(((await minted.json()) as { url: string }).url.startsWith(`${twoBase}?ticket=`));
      const unnamed = await fetch(`${gw.url}/app-links/3d`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.keys.alice}` },
      });
      assert.equal(unnamed.status, 400);
      assert.match(await unnamed.text(), /Mcp-Session-Id/);

      // The session ends: its app and its cookie end with it.
      await one.transport.terminateSession();
      await one.client.close();
      const ended = await browser.get(oneBase);
      assert.equal(ended.status, 410);
      assert.match(await ended.text(), /session that has ended/);
      assert.equal((await other.get(twoBase)).status, 200, 'the other session is untouched');
    } finally {
      await one.client.close();
      await two.client.close();
    }
  });
});

describe('apps: the audit log', () => {
  it('writes a line per sign-in, and per app WebSocket opened and closed, naming the user', async () => {
    const gw = await startGateway(
      { servers: { '3d': appServer('per-user') }, audit: { file: 'audit.jsonl' } },
      { users: ['alice'] },
    );
    const client = await session(gw, '3d', 'alice');
    try {
      const alice = new Browser(gw.url);
      await alice.signIn(gw, gw.keys.alice as string, '3d');
      const ws = alice.socket('/apps/3d/alice/ws', gw.url);
      await nextMessage(ws);
      ws.close();
      const file = join(gw.dir, 'audit.jsonl');
      const lines = () =>
        existsSync(file)
          ? readFileSync(file, 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((line) => JSON.parse(line) as Record<string, unknown>)
              .filter((line) => String(line.event).startsWith('app.'))
          : [];
      await eventually(() => lines().length === 3, 'three app lines');
      assert.deepEqual(
        lines().map(({ event, user, server, auth }) => ({ event, user, server, auth })),
        ['app.sign-in', 'app.open', 'app.close'].map((event) => ({
          event,
          user: 'alice',
          server: '3d',
          auth: 'api-key',
        })),
      );
      assert.equal(typeof lines()[2]?.durationMs, 'number');
    } finally {
      await client.close();
      await gw.close();
    }
  });
});
