// The gateway as a service, from what `mcp-relay deploy print` renders: the shipped and the rendered nginx
// site pass `nginx -t`, the rendered unit passes `systemd-analyze verify`, and a real nginx runs the site
// rendered for a gateway's relay.yaml (changed only where a test must: listen on 127.0.0.1, a short read
// timeout) — MCP with the SDK client and an SSE reply, a GET stream idle past nginx's read timeout kept
// open by the gateway's keep-alive comments (an idle app WebSocket, with none, is cut: the timeout is
// real), the app's WebSocket, and publicUrl's Host reaching the gateway while a foreign one gets 421.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Agent, request, fetch as undiciFetch } from 'undici';
import WebSocket from 'ws';
import { createKey } from '../src/auth/key-admin.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { createGateway, type Gateway } from '../src/gateway/create-gateway.ts';
import { APP_SERVER, nextMessage } from './helpers/app-browser.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { TestPki } from './helpers/certs.ts';
import { runCliInProcess, runProcess } from './helpers/cli.ts';
import { deliveredDuring, textOf } from './helpers/gateway.ts';
import { siteOnLoopback, startNginxSite, type TestNginx, testNginxSite } from './helpers/nginx.ts';
import { freePort } from './helpers/ports.ts';
import { BearerWebSocketTransport } from './helpers/ws-client.ts';

const DEPLOY = new URL('../deploy/', import.meta.url);
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
/** nginx's read timeout in the test, and the gateway's keep-alive interval well inside it. */
const READ_TIMEOUT_S = 3;
const KEEP_ALIVE = '500ms';
const HOST = 'relay.test';

/** Every connection to relay.test goes to 127.0.0.1, as DNS would send users to the office server. */
const toLoopback = ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}) as unknown as LookupFunction;

/** A rendered site on 127.0.0.1 only (siteOnLoopback), with nginx's read timeouts of an hour cut to READ_TIMEOUT_S. */
function forTest(site: string, port: number): string {
  return siteOnLoopback(site, port).replaceAll(
    /proxy_(read|send)_timeout 1h;/g,
    `proxy_$1_timeout ${READ_TIMEOUT_S}s;`,
  );
}

describe('deploy: nginx -t and systemd-analyze verify', () => {
  const pki = new TestPki();
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-deploy-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    pki.close();
  });

  it('nginx -t accepts the shipped site, and the one rendered for a gateway with certificates given', async () => {
    const server = pki.serverCert(pki.createCa('deploy-ca'), 'site');
    // The shipped site names Let's Encrypt files this machine lacks; nginx -t opens them, so only those
    // two paths change.
    const shipped = readFileSync(new URL('nginx-site.conf', DEPLOY), 'utf8')
      .replace(/ssl_certificate {5}\S+;/, `ssl_certificate     ${server.cert};`)
      .replace(/ssl_certificate_key \S+;/, `ssl_certificate_key ${server.key};`);
    const checked = testNginxSite(join(dir, 'shipped'), shipped);
    assert.equal(checked.code, 0, checked.output);
    assert.match(checked.output, /syntax is ok/);

    const config = join(dir, 'relay.yaml');
    writeFileSync(
      config,
      'listen: { port: 9000 }\npublicUrl: https://relay.example:8443\nservers:\n  a: { command: node, app: { portEnv: P } }\nauth: { apiKeys: { file: keys.yaml } }\n',
    );
    const printed = await runCliInProcess([
      'deploy',
      'print',
      'nginx',
      '--config',
      config,
      '--cert',
      server.cert,
      '--key',
      server.key,
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    const rendered = testNginxSite(join(dir, 'rendered'), printed.stdout);
    assert.equal(rendered.code, 0, rendered.output);
  });

  it('systemd-analyze verify accepts the unit rendered for this machine', async (t) => {
    if (!existsSync(SYSTEMD_ANALYZE)) {
      t.skip(`${SYSTEMD_ANALYZE} is not installed (Debian package systemd)`);
      return;
    }
    const config = join(dir, 'unit.yaml');
    writeFileSync(
      config,
      'servers:\n  a: { command: node }\nauth: { apiKeys: { file: keys.yaml } }\naudit: { file: /srv/mcp-relay-audit/audit.jsonl }\n',
    );
    const printed = await runCliInProcess(['deploy', 'print', 'systemd', '--config', config]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /^ReadWritePaths=-\/srv\/mcp-relay-audit$/m);
    const unit = join(dir, 'mcp-relay.service');
    writeFileSync(unit, printed.stdout);
    // verify checks the keys, their values and that ExecStart's program exists; it starts nothing.
    const verified = await runProcess(SYSTEMD_ANALYZE, ['verify', unit]);
    assert.deepEqual(verified, { code: 0, stdout: '', stderr: '' });
    // systemd's own measure of the sandbox (0 is the tightest, 10 none): 5.7 before the capability
    // bounding set, ProtectProc and UMask 0077; the rest is what arbitrary servers inside need (see README).
    const security = await runProcess(SYSTEMD_ANALYZE, ['security', '--offline=yes', unit]);
    const exposure = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1]);
    assert.ok(exposure <= 4, `exposure ${exposure}\n${security.stdout}${security.stderr}`);
    // It does complain about what is wrong, so the empty answer above means something.
    writeFileSync(unit, printed.stdout.replace('KillMode=mixed', 'KillMode=mixed\nProtectSistem=strict'));
    const broken = await runProcess(SYSTEMD_ANALYZE, ['verify', unit]);
    assert.match(broken.stderr, /Unknown key 'ProtectSistem'/);
  });
});

describe('deploy: a gateway behind nginx configured from `deploy print nginx`', () => {
  const pki = new TestPki();
  const logged = capturingLogger();
  let dir: string;
  let ca: Buffer;
  let dispatcher: Agent;
  let gateway: Gateway;
  let gatewayPort: number;
  let nginx: TestNginx;
  let publicUrl: string;
  let key: string;
  let client: Client | undefined;
  const sockets: WebSocket[] = [];
  /** Content types of the SDK client's replies, to see an SSE one came through nginx. */
  const replyTypes: string[] = [];

  const bearer = () => ({ authorization: `Bearer ${key}` });
  /** fetch at publicUrl (through nginx), trusting the test CA. */
  const get = (path: string, init: Parameters<typeof undiciFetch>[1] = {}) =>
    undiciFetch(new URL(path, publicUrl), { redirect: 'manual', ...init, dispatcher });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-deploy-'));
    const testCa = pki.createCa('deploy-ca');
    const server = pki.serverCert(testCa, 'relay', { san: [`DNS:${HOST}`] });
    ca = readFileSync(testCa.cert);
    dispatcher = new Agent({ connect: { ca, lookup: toLoopback } });
    const nginxPort = await freePort();
    gatewayPort = await freePort();
    publicUrl = `https://${HOST}:${nginxPort}`;
    const keysFile = join(dir, 'keys.yaml');
    key = (await createKey(keysFile, { user: 'alice', groups: [] })).key;
    // The relay.yaml an admin would write: loopback listener, publicUrl naming nginx, one app server.
    const configFile = join(dir, 'relay.yaml');
    writeFileSync(
      configFile,
      [
        `listen: { host: 127.0.0.1, port: ${gatewayPort} }`,
        `publicUrl: ${publicUrl}`,
        'servers:',
        `  3d: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(APP_SERVER)}], app: { portEnv: APP_PORT } }`,
        // OAuth too, for its metadata route; the provider is never reached (the calls use an API key).
        "auth: { apiKeys: { file: keys.yaml }, oidc: { issuer: 'https://login.example.com' } }",
        `sse: { keepAlive: ${KEEP_ALIVE} }`,
        '',
      ].join('\n'),
    );
    gateway = createGateway({ config: loadConfigFile(configFile).config, log: logged.log });
    await gateway.listen();
    const printed = await runCliInProcess([
      'deploy',
      'print',
      'nginx',
      '--config',
      configFile,
      '--cert',
      server.cert,
      '--key',
      server.key,
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stderr, '', 'a loopback gateway over http: nothing to note');
    const nginxDir = join(dir, 'nginx');
    mkdirSync(nginxDir);
    nginx = await startNginxSite(nginxDir, forTest(printed.stdout, nginxPort), nginxPort);
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await client?.close();
    await nginx?.close();
    await dispatcher?.close();
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
    pki.close();
  });

  it('an MCP client initializes and calls tools through nginx, progress arriving on an SSE reply', async () => {
    const transport = new StreamableHTTPClientTransport(new URL('/mcp/3d', publicUrl), {
      requestInit: { headers: bearer() },
      fetch: (async (url: string | URL, init?: RequestInit) => {
        const response = await undiciFetch(url, { ...(init as object), dispatcher });
        replyTypes.push(response.headers.get('content-type') ?? '');
        return response;
      }) as unknown as typeof fetch,
    });
    const connected = new Client({ name: 'deploy-test', version: '1.0.0' });
    client = connected;
    await connected.connect(transport);
    assert.equal(connected.getServerVersion()?.name, 'fixture');
    const progress: number[] = [];
    const { result, delivered } = await deliveredDuring(connected, () =>
      connected.callTool({ name: 'progress', arguments: { steps: 3 } }, undefined, {
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
    const health = await get('/healthz');
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
    // OAuth discovery through nginx: the resource is named on publicUrl, the address clients used.
    const metadata = await get('/.well-known/oauth-protected-resource/mcp/3d');
    assert.equal(metadata.status, 200);
    const { resource, authorization_servers } = (await metadata.json()) as Record<string, unknown>;
    assert.deepEqual(
      { resource, authorization_servers },
      { resource: `${publicUrl}/mcp/3d`, authorization_servers: ['https://login.example.com'] },
    );
    const elsewhere = await get('/admin');
    assert.equal(elsewhere.status, 404);
    assert.match(
      elsewhere.headers.get('server') ?? '',
      /^nginx/,
      'nginx answers paths the gateway has no route for',
    );
    await elsewhere.text();
  });

  it(`a GET stream idle for more than nginx's ${READ_TIMEOUT_S} s read timeout stays open on keep-alive comments, then carries a notification`, async () => {
    const post = (body: unknown, session?: string) =>
      get('/mcp/3d', {
        method: 'POST',
        headers: {
          ...bearer(),
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
          ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' } : {}),
        },
        body: JSON.stringify(body),
      });
    const init = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    assert.equal(init.status, 200);
    await init.text();
    const session = init.headers.get('mcp-session-id') ?? '';
    assert.notEqual(session, '');
    const initialized = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    assert.equal(initialized.status, 202);
    await initialized.text();

    const stream = await get('/mcp/3d', {
      headers: {
        ...bearer(),
        accept: 'text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-06-18',
      },
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    let ended = false;
    let longestGap = 0;
    let last = Date.now();
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          ended = true;
          return;
        }
        const now = Date.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        text += decoder.decode(value, { stream: true });
      }
    })().catch(() => {
      ended = true;
    });

    // Idle: nothing but keep-alive comments for more than twice nginx's read timeout.
    const idleMs = (READ_TIMEOUT_S * 2 + 1) * 1_000;
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    assert.equal(ended, false, `the stream was cut while idle; nginx said:\n${nginx.log()}`);
    const comments = text.match(/^: keep-alive$/gm)?.length ?? 0;
    assert.ok(comments >= 5, `${comments} keep-alive comments in ${idleMs} ms`);
    assert.ok(longestGap < READ_TIMEOUT_S * 1_000, `longest silence ${longestGap} ms`);
    assert.doesNotMatch(text, /^data:/m, 'nothing but comments so far');

    // The backend announces a change: the notification reaches the client on the long-idle stream.
    const call = await post(
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'announce', arguments: {} } },
      session,
    );
    assert.equal(call.status, 200);
    assert.match(await call.text(), /announced/);
    const deadline = Date.now() + 5_000;
    while (!text.includes('notifications/tools/list_changed') && Date.now() < deadline && !ended) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.match(text, /^data: .*"method":"notifications\/tools\/list_changed"/m);
    assert.equal(ended, false);
    await reader.cancel();
    await reading;
  });

  it("the app's WebSocket upgrades through nginx, and the Host users sent is the one the gateway saw", async () => {
    const minted = await get('/app-links/3d', { method: 'POST', headers: bearer() });
    assert.equal(minted.status, 200);
    const link = ((await minted.json()) as { url: string }).url;
    assert.ok(link.startsWith(`${publicUrl}/apps/3d/alice/?ticket=`), link);
    const signIn = await get(link);
    assert.equal(signIn.status, 303);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const page = await get('/apps/3d/alice/', { headers: { cookie } });
    assert.equal(page.status, 200);
    const answer = (await page.json()) as { headers: Record<string, string> };
    // The app proxy passes on, as X-Forwarded-Host, the Host the gateway received from nginx.
    assert.equal(answer.headers['x-forwarded-host'], `${HOST}:${nginx.port}`);
    assert.equal(answer.headers['x-forwarded-proto'], 'https');
    assert.equal(answer.headers['x-forwarded-for'], '127.0.0.1', "nginx's, passed on by the gateway");

    const ws = new WebSocket(new URL('/apps/3d/alice/ws', publicUrl.replace(/^https/, 'wss')), {
      ca,
      lookup: toLoopback,
      headers: { cookie, origin: publicUrl },
    });
    sockets.push(ws);
    assert.match(await nextMessage(ws), /^hello alice \d+ \/ws$/);
    ws.send('ping 1');
    assert.equal(await nextMessage(ws), 'echo alice: ping 1');
    // The control for the stream above: an app socket with no traffic, nor keep-alives, is cut by
    // nginx once its read timeout passes.
    // nginx's timer runs from its last read of the app, a moment before the echo reached this test: on
    // a loaded machine that moment can be most of a second, so the lower bound leaves room for it.
    const opened = Date.now();
    const closed = await new Promise<number>((resolve) => ws.once('close', resolve));
    const idleFor = Date.now() - opened;
    assert.ok(
      idleFor >= READ_TIMEOUT_S * 1_000 - 1_000 && idleFor < READ_TIMEOUT_S * 1_000 + 3_000,
      `closed after ${idleFor} ms (code ${closed})`,
    );
    assert.match(nginx.log(), /upstream timed out/);
  });

  it('an MCP session over wss:// reaches /ws/<server> through nginx and outlives its read timeout on pings', async () => {
    const transport = new BearerWebSocketTransport(
      `${publicUrl.replace(/^https/, 'wss')}/ws/3d`,
      key,
      {},
      {
        ca,
        lookup: toLoopback,
      },
    );
    const overWs = new Client({ name: 'deploy-ws', version: '1.0.0' });
    await overWs.connect(transport);
    try {
      assert.equal(textOf(await overWs.callTool({ name: 'whoami', arguments: {} })), 'alice');
      // Idle past nginx's read timeout: the gateway's pings (every sse.keepAlive) keep the socket open.
      await new Promise((resolve) => setTimeout(resolve, READ_TIMEOUT_S * 1_000 + 1_000));
      assert.equal(
        textOf(await overWs.callTool({ name: 'echo', arguments: { text: 'still open' } })),
        'still open',
      );
    } finally {
      await overWs.close();
    }
  });

  it('a foreign Host gets 421 naming publicUrl, straight to the gateway and through nginx, and is logged once', async () => {
    const direct = `http://127.0.0.1:${gatewayPort}`;
    const ask = async (origin: string, host: string, via?: Agent) => {
      const reply = await request(`${origin}/healthz`, {
        headers: { host },
        ...(via ? { dispatcher: via } : {}),
      });
      const body = await reply.body.text();
      return { status: reply.statusCode, body };
    };
    assert.equal((await ask(direct, `${HOST}:${nginx.port}`)).status, 200, "publicUrl's host is let in");
    const expected = `Host "evil.example" is not this gateway's publicUrl ${publicUrl} — set publicUrl to the address clients use, or fix the proxy's Host header`;
    // undici takes the TLS server name from the Host header, so the certificate (relay.test) cannot match
    // evil.example: this client checks the chain only, as one that ignores names would.
    const nameBlind = new Agent({
      connect: { ca, lookup: toLoopback, checkServerIdentity: () => undefined },
    });
    const replies = [
      await ask(direct, 'evil.example'),
      await ask(direct, 'evil.example'),
      await ask(publicUrl, 'evil.example', nameBlind),
    ];
    await nameBlind.close();
    for (const reply of replies) {
      assert.equal(reply.status, 421);
      assert.equal((JSON.parse(reply.body) as { error: { message: string } }).error.message, expected);
    }
    const warnings = logged
      .lines()
      .split('\n')
      .filter((line) => line.includes('refused (421)'))
      .map((line) => JSON.parse(line) as { level: number; host: string; publicUrl: string });
    assert.deepEqual(
      warnings.map(({ level, host, publicUrl }) => ({ level, host, publicUrl })),
      [{ level: 40, host: 'evil.example', publicUrl }],
      'three refusals, one warning',
    );
  });
});
