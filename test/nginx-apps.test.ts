// The gateway behind a real nginx that terminates TLS, with one `location /` proxying everything:
// MCP over Streamable HTTP with an SSE reply, app links naming nginx's address, the ticket → cookie
// sign-in, the app page, and the app's WebSocket (frames both ways; a foreign Origin refused), all
// through https://127.0.0.1:<nginx port> to a plain-HTTP gateway on loopback.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Agent, fetch as undiciFetch } from 'undici';
import WebSocket from 'ws';
import { type AppAnswer, appServer, nextMessage, refusedStatus } from './helpers/app-browser.ts';
import { TestPki } from './helpers/certs.ts';
import { deliveredDuring, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { startNginx, type TestNginx } from './helpers/nginx.ts';
import { freePort } from './helpers/ports.ts';

describe('apps behind nginx with TLS', () => {
  const pki = new TestPki();
  let ca: Buffer;
  let dispatcher: Agent;
  let nginx: TestNginx;
  let gw: TestGateway;
  let client: Client;
  /** Content types of the MCP client's replies, to see an SSE one came through nginx. */
  const replyTypes: string[] = [];
  const sockets: WebSocket[] = [];

  /** fetch through nginx, trusting the test CA; redirects are the test's to read. */
  const get = (url: string, init: Parameters<typeof undiciFetch>[1] = {}) =>
    undiciFetch(new URL(url, nginx.url), { redirect: 'manual', ...init, dispatcher });

  function socket(path: string, cookie: string, origin: string): WebSocket {
    const ws = new WebSocket(new URL(path, nginx.url.replace(/^https/, 'wss')), {
      ca,
      headers: { cookie, origin },
    });
    sockets.push(ws);
    return ws;
  }

  /** A ticketed link → its cookie (name=value) and the whole Set-Cookie line. */
  async function signIn(link: string): Promise<{ cookie: string; line: string; location: string }> {
    const response = await get(link);
    assert.equal(response.status, 303, await response.text());
    const line = response.headers.get('set-cookie') ?? '';
    return { cookie: line.split(';')[0] ?? '', line, location: response.headers.get('location') ?? '' };
  }

  before(async () => {
    const testCa = pki.createCa('nginx-ca');
    const server = pki.serverCert(testCa, 'nginx');
    ca = readFileSync(testCa.cert);
    dispatcher = new Agent({ connect: { ca } });
    // The gateway's port is only known once it listens, and publicUrl names nginx's: the gateway goes
    // first with a publicUrl on a port reserved for nginx, then nginx starts on that port.
    const nginxDir = join(pki.dir, 'nginx');
    mkdirSync(nginxDir);
    const port = await freePort();
    gw = await startGateway(
      { publicUrl: `https://127.0.0.1:${port}`, servers: { '3d': appServer('per-user') } },
      { users: ['alice'] },
    );
    nginx = await startNginx(nginxDir, gw.url, { cert: server.cert, key: server.key }, port);
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await client?.close();
    await nginx?.close();
    await dispatcher?.close();
    await gw?.close();
    pki.close();
  });

  it('an MCP client initializes and calls tools through nginx, progress arriving on an SSE reply', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${nginx.url}/mcp/3d`), {
      requestInit: { headers: { authorization: `Bearer ${gw.keys.alice}` } },
      fetch: (async (url: string | URL, init?: RequestInit) => {
        const response = await undiciFetch(url, { ...(init as object), dispatcher });
        replyTypes.push(response.headers.get('content-type') ?? '');
        return response;
      }) as unknown as typeof fetch,
    });
    client = new Client({ name: 'nginx-test', version: '1.0.0' });
    await client.connect(transport);
    assert.equal(client.getServerVersion()?.name, 'fixture');
    const progress: number[] = [];
    const { result, delivered } = await deliveredDuring(client, () =>
      client.callTool({ name: 'progress', arguments: { steps: 3 } }, undefined, {
        onprogress: (step) => progress.push(step.progress),
      }),
    );
    assert.equal(textOf(result), 'done 3');
    assert.deepEqual(delivered, [1, 2, 3, 'answer']);
    assert.equal(progress[0], 1, 'the SDK matched the progress token');
    assert.ok(
      replyTypes.some((type) => type.startsWith('text/event-stream')),
      `an SSE reply among ${replyTypes.join(', ')}`,
    );
  });

  it("links name nginx's address; a ticket signs in with a cookie, and the app page loads", async () => {
    const base = `${nginx.url}/apps/3d/alice/`;
    const fromTool = textOf(await client.callTool({ name: 'env', arguments: { name: 'APP_PUBLIC_URL' } }));
    assert.ok(fromTool.startsWith(`${base}?ticket=`), fromTool);
    const minted = await get('/app-links/3d', {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys.alice}` },
    });
    assert.equal(minted.status, 200);
    const link = ((await minted.json()) as { url: string }).url;
    assert.ok(link.startsWith(`${base}?ticket=`), link);

    for (const ticketed of [fromTool, link]) {
      const { cookie, line, location } = await signIn(ticketed);
      assert.equal(location, '/apps/3d/alice/');
      // publicUrl is https: browsers use TLS to nginx, so the cookie is Secure though the gateway's own
      // listener behind nginx is plain HTTP.
      assert.match(
        line,
        /^mcp-relay-app=[^;]+; Path=\/apps\/3d\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/,
      );
      const page = await get(location, { headers: { cookie } });
      assert.equal(page.status, 200);
      const answer = (await page.json()) as AppAnswer;
      assert.equal(answer.user, 'alice');
      assert.equal(answer.publicUrl, base);
      assert.equal(answer.headers.host, `127.0.0.1:${nginx.port}`, 'nginx passes the Host browsers used');
      assert.equal(answer.headers['x-forwarded-host'], `127.0.0.1:${nginx.port}`);
      assert.equal(answer.headers['x-forwarded-prefix'], '/apps/3d/alice');
      // Likewise the app is told the scheme the browser used.
      assert.equal(answer.headers['x-forwarded-proto'], 'https');
      assert.equal(answer.headers.cookie, undefined);
    }
    assert.equal((await get(base)).status, 401, 'no cookie, no app');
  });

  it("the app's WebSocket upgrades through nginx: frames both ways; a foreign Origin is refused", async () => {
    const minted = await get('/app-links/3d', {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys.alice}` },
    });
    const { cookie } = await signIn(((await minted.json()) as { url: string }).url);
    const ws = socket('/apps/3d/alice/ws', cookie, nginx.url);
    assert.match(await nextMessage(ws), /^hello alice \d+ \/ws$/);
    for (const text of ['ping 1', 'x'.repeat(70_000)]) {
      ws.send(text);
      assert.equal(await nextMessage(ws), `echo alice: ${text}`);
    }
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close();
    await closed;
    assert.equal(await refusedStatus(socket('/apps/3d/alice/ws', cookie, 'https://evil.example')), 403);
    assert.equal(await refusedStatus(socket('/apps/3d/alice/ws', '', nginx.url)), 401);
    assert.doesNotMatch(nginx.log(), /\[(error|crit|alert|emerg)\]/);
  });
});
