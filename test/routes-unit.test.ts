// The HTTP edge in process: the route table's matchers, each guard as a pure function, the order a
// row runs in (guards → caller → unknown name → handler) through node's HTTP parser without a port,
// and a refusal written to a raw upgrade socket (a real one).

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type RequestListener } from 'node:http';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import type { AuthResult } from '../src/auth/authenticate.ts';
import type { Caller } from '../src/auth/identify.ts';
import { type Refusal, refuseSocket } from '../src/http/refusal.ts';
import { refusalLog } from '../src/http/refusal-log.ts';
import { foreignPageGuard, hostGuard, originGuard, singleHeaders } from '../src/http/request-guards.ts';
import { anyPath, exact, param, prefix, type Route, routeRequests } from '../src/http/routes.ts';
import { silentLogger } from '../src/log.ts';
import { ErrorCode } from '../src/protocol/jsonrpc.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { inject } from './helpers/inject.ts';

const servers: Record<string, true> = { a: true, 'b c': true };
const serverNamed = (name: string | undefined) =>
  name === undefined ? null : Object.hasOwn(servers, name) ? name : null;

describe('matchers', () => {
  it('exact matches the path only', () => {
    const match = exact('/healthz');
    assert.equal(match('/healthz'), '/healthz');
    assert.equal(match('/healthz/'), undefined);
    assert.equal(match('/healthzz'), undefined);
  });

  it('prefix matches the path and what is below it, not a longer name', () => {
    const match = prefix('/.well-known/x');
    assert.equal(match('/.well-known/x'), '/.well-known/x');
    assert.equal(match('/.well-known/x/mcp/a'), '/.well-known/x/mcp/a');
    assert.equal(match('/.well-known/xy'), undefined);
  });

  it('param decodes the name, drops one trailing slash, and says null for names it does not know', () => {
    const match = param('/mcp/:server', serverNamed);
    assert.equal(match('/mcp/a'), 'a');
    assert.equal(match('/mcp/a/'), 'a');
    assert.equal(match('/mcp/b%20c'), 'b c');
    assert.equal(match('/mcp/zz'), null);
    assert.equal(match('/mcp/a/b'), null);
    assert.equal(match('/mcp//'), null);
    assert.equal(match('/mcp/%E0%A4%A'), null, 'a malformed escape names nothing');
    assert.equal(match('/mcp/constructor'), null);
    assert.equal(match('/mcp'), null, 'the bare base goes through resolve(undefined)');
    assert.equal(param('/mcp/:server', () => 'only')('/mcp/'), 'only');
    assert.equal(match('/mcpx'), undefined);
    assert.equal(match('/other'), undefined);
  });
});

/** A request as a guard sees it: headers and the raw list they came from. */
function guarded(raw: string[]): Pick<IncomingMessage, 'headers' | 'rawHeaders'> {
  const headers: Record<string, string> = {};
  for (let index = 0; index < raw.length; index += 2)
    headers[(raw[index] ?? '').toLowerCase()] ??= raw[index + 1] ?? '';
  return { headers, rawHeaders: raw };
}

describe('guards', () => {
  it('singleHeaders refuses a repeated single header with 400, and lets repeats of others through', () => {
    assert.deepEqual(singleHeaders(guarded(['Host', 'a', 'host', 'b'])), {
      status: 400,
      code: ErrorCode.InvalidRequest,
      message: 'the host header may appear only once',
    });
    assert.equal(singleHeaders(guarded(['Accept', 'a', 'accept', 'b', 'Host', 'x'])), undefined);
  });

  it('hostGuard on loopback answers 421 naming publicUrl to a foreign or missing Host, and lets loopback and the public host in', () => {
    const check = hostGuard(true, 'https://Relay.example:8443');
    assert.equal(check(guarded(['Host', '127.0.0.1:8787'])), undefined);
    assert.equal(check(guarded(['Host', 'relay.example'])), undefined);
    assert.equal(check(guarded(['Host', 'RELAY.example:8443'])), undefined);
    assert.deepEqual(check(guarded(['Host', 'evil.example'])), {
      status: 421,
      code: ErrorCode.Refused,
      message:
        'Host "evil.example" is not this gateway\'s publicUrl https://Relay.example:8443 — set publicUrl to the address clients use, or fix the proxy\'s Host header',
    });
    assert.match(
      check(guarded([]))?.message ?? '',
      /^a request without a Host header is not this gateway's publicUrl https:\/\/Relay\.example:8443 — /,
    );
    // What a client sent is quoted on one line, bounded, without quotes of its own.
    const long = check(guarded(['Host', `a"b\\c\td${'x'.repeat(500)}`]))?.message ?? '';
    assert.match(long, /^Host "a\?b\?c dx{93}…" is not/);
    assert.match(
      hostGuard(true)(guarded(['Host', 'evil.example']))?.message ?? '',
      /^Host "evil\.example" does not name this gateway \(it listens on loopback and has no publicUrl\) — set publicUrl/,
    );
    assert.equal(hostGuard(false)(guarded(['Host', 'evil.example'])), undefined, 'beyond loopback any Host');
  });

  it('refusalLog warns once per Host (421) or per reason and address (others) an hour, at most 50 an hour', () => {
    const { log, lines } = capturingLogger();
    let clock = 0;
    const report = refusalLog(log, 'https://relay.example', () => clock);
    const warnings = () =>
      lines()
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line));
    const wrongHost = (host: string | undefined, address = '10.0.0.5') =>
      report({ status: 421, message: 'Host …', address, path: '/mcp', host });
    const badKey = (address: string) =>
      report({
        status: 401,
        message: 'the API key is unknown, revoked or expired',
        address,
        path: '/mcp/3d',
        host: 'relay.example',
      });
    wrongHost('evil.example');
    wrongHost('evil.example', '10.0.0.6');
    wrongHost(undefined);
    wrongHost(undefined);
    badKey('10.0.0.7');
    badKey('10.0.0.7');
    badKey('10.0.0.8');
    assert.deepEqual(
      warnings().map((line) => [
        line.level,
        line.status,
        line.address,
        'host' in line ? line.host : line.reason,
      ]),
      [
        [40, 421, '10.0.0.5', 'evil.example'],
        [40, 421, '10.0.0.5', null],
        [40, 401, '10.0.0.7', 'the API key is unknown, revoked or expired'],
        [40, 401, '10.0.0.8', 'the API key is unknown, revoked or expired'],
      ],
    );
    assert.match(
      warnings()[0].msg,
      /^refused \(421\) a request whose Host is not publicUrl's host: set publicUrl/,
    );
    assert.equal(warnings()[0].publicUrl, 'https://relay.example');
    assert.match(warnings()[2].msg, /^refused \(401\) \/mcp\/3d: the API key is unknown, revoked or expired/);
    for (let n = 0; n < 100; n++) badKey(`10.1.0.${n}`);
    assert.equal(warnings().length, 51, '50 distinct refusals, then one line saying the rest go unlogged');
    assert.match(warnings()[50].msg, /not logged again before the hour is over/);
    clock += 3_600_000;
    wrongHost('evil.example');
    assert.equal(warnings().length, 52, 'a new hour logs a refusal again');
  });

  it('originGuard lets no Origin, its own and listed origins in, reads the list per request, and refuses others with 403', () => {
    let allowed: string[] = [];
    const check = originGuard('https', () => allowed, 'https://relay.example');
    const at = (origin: string) => guarded(['Host', 'gw:8443', 'Origin', origin]);
    assert.equal(check(guarded(['Host', 'gw:8443'])), undefined);
    assert.equal(check(at('https://GW:8443')), undefined);
    assert.equal(check(at('https://relay.example')), undefined);
    assert.deepEqual(check(at('https://app.example')), {
      status: 403,
      code: ErrorCode.Refused,
      message: 'Origin not allowed',
    });
    allowed = ['https://app.example'];
    assert.equal(check(at('https://app.example')), undefined);
    assert.notEqual(check(at('http://gw:8443')), undefined, 'the scheme is part of the origin');
  });

  it("foreignPageGuard refuses what another site's page caused without an Origin, and nothing else", () => {
    const from = (...headers: string[]) => foreignPageGuard(guarded(['Host', 'gw:8443', ...headers]));
    for (const site of ['cross-site', 'same-site'])
      assert.equal(from('Sec-Fetch-Site', site)?.status, 403, site);
    // Its own pages, an address typed by the user, clients outside browsers, and pages naming an Origin
    // (the Origin guard's to judge) pass.
    for (const site of ['same-origin', 'none']) assert.equal(from('Sec-Fetch-Site', site), undefined, site);
    assert.equal(from(), undefined);
    assert.equal(from('Sec-Fetch-Site', 'cross-site', 'Origin', 'https://app.example'), undefined);
  });
});

interface Table {
  handler: RequestListener;
  asked: Caller[];
  handled: string[];
}

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers) close();
});

function table(): Table {
  const asked: Caller[] = [];
  const handled: string[] = [];
  const teapot: Refusal = { status: 418, code: -1, message: 'teapot', headers: { 'x-why': 'guard' } };
  const routes: Route[] = [
    { match: exact('/post-only'), methods: ['POST'], guards: [], handle: (_q, res) => void res.end('post') },
    {
      match: exact('/open'),
      guards: [singleHeaders],
      handle: (_q, res, path) => void res.end(`open ${path}`),
    },
    {
      match: exact('/guarded'),
      guards: [() => undefined, () => teapot, () => assert.fail('after a refusal')],
      handle: () => assert.fail('refused'),
    },
    { match: exact('/throws'), guards: [], handle: () => Promise.reject(new Error('boom')) },
    {
      match: param('/mcp/:server', serverNamed),
      guards: [singleHeaders],
      caller: true,
      unknown: { status: 404, code: ErrorCode.InvalidRequest, message: 'no such server' },
      async handle(_req, res, server, identity) {
        handled.push(`${server} ${identity.user}`);
        res.end(`${server} for ${identity.user}`);
      },
    },
    { match: anyPath, guards: [], handle: (_q, res) => void res.writeHead(404).end('none') },
  ];
  const identify = (caller: Caller): AuthResult | Promise<AuthResult> => {
    asked.push(caller);
    if (caller.authorization === 'Bearer ok')
      return { ok: true, identity: { user: 'u', groups: [], method: 'api-key', credential: 'k' } };
    if (caller.authorization === 'Bearer later')
      return Promise.resolve({
        ok: true,
        identity: { user: 'v', groups: [], method: 'oidc', credential: 'o' },
      });
    return { ok: false, status: 401, message: 'who are you', headers: { 'www-authenticate': 'Bearer' } };
  };
  return { handler: routeRequests(routes, identify, silentLogger), asked, handled };
}

/** One request through the table, in process (test/helpers/inject.ts). */
async function call(
  handler: RequestListener,
  url: string,
  options: { method?: string; authorization?: string } = {},
) {
  const headers: Array<[string, string]> = options.authorization
    ? [['authorization', options.authorization]]
    : [];
  const res = await inject(handler, { method: options.method ?? 'GET', url, headers });
  return { status: res.status, headers: res.headers, text: res.body };
}

describe('routeRequests', () => {
  it('serves the first row whose matcher and methods fit, and falls through on another method', async () => {
    const { handler } = table();
    assert.equal((await call(handler, '/post-only', { method: 'POST' })).text, 'post');
    assert.equal((await call(handler, '/post-only')).text, 'none');
    assert.equal((await call(handler, '/open?x=1')).text, 'open /open', 'the query is not part of the path');
  });

  it('answers the first refusal of a row’s guards, with its status, headers and a JSON-RPC body', async () => {
    const { handler } = table();
    const refused = await call(handler, '/guarded');
    assert.equal(refused.status, 418);
    assert.equal(refused.headers['x-why'], 'guard');
    assert.deepEqual(JSON.parse(refused.text), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -1, message: 'teapot' },
    });
  });

  it('establishes the caller after the guards and before the name is checked, and hands the handler its identity', async () => {
    const { handler, asked, handled } = table();
    const stranger = await call(handler, '/mcp/zz');
    assert.equal(stranger.status, 401, 'an unknown name is not revealed to a stranger');
    assert.equal(stranger.headers['www-authenticate'], 'Bearer');
    assert.equal(JSON.parse(stranger.text).error.code, ErrorCode.Refused);
    assert.equal(asked[0]?.server, null);
    assert.equal(asked[0]?.viaSocket, false);
    const unknown = await call(handler, '/mcp/zz', { authorization: 'Bearer ok' });
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.text).error.message, 'no such server');
    assert.equal((await call(handler, '/mcp/a', { authorization: 'Bearer ok' })).text, 'a for u');
    assert.equal((await call(handler, '/mcp/b%20c/', { authorization: 'Bearer later' })).text, 'b c for v');
    assert.deepEqual(handled, ['a u', 'b c v']);
    assert.equal(asked.at(-1)?.path, '/mcp/b%20c/');
  });

  it('answers a duplicate header before asking who is calling', async () => {
    const { handler, asked } = table();
    const { status } = await inject(handler, {
      url: '/mcp/a',
      headers: [
        ['authorization', 'Bearer ok'],
        ['authorization', 'Bearer x'],
      ],
    });
    assert.equal(status, 400);
    assert.equal(asked.length, 0);
  });

  it('turns a handler that throws into a 500 with a JSON-RPC internal error', async () => {
    const { handler } = table();
    const failed = await call(handler, '/throws');
    assert.equal(failed.status, 500);
    assert.equal(JSON.parse(failed.text).error.code, ErrorCode.InternalError);
  });
});

describe('refuseSocket', () => {
  it('writes a complete HTTP/1.1 refusal on an upgrade socket and closes it', async () => {
    const server = createServer();
    server.on('upgrade', (_req, socket) =>
      refuseSocket(socket, {
        status: 401,
        code: ErrorCode.Refused,
        message: 'no "token"',
        headers: { 'www-authenticate': 'Bearer realm="mcp-relay"', 'x-bad': 'a\r\nset-cookie: x' },
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    const socket = connect(address.port, '127.0.0.1');
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const text = Buffer.concat(chunks).toString();
    const [head = '', body = ''] = text.split('\r\n\r\n');
    const lines = head.split('\r\n');
    assert.equal(lines[0], 'HTTP/1.1 401 Unauthorized');
    assert.ok(lines.includes('connection: close'));
    assert.ok(lines.includes('www-authenticate: Bearer realm="mcp-relay"'));
    assert.ok(!text.includes('set-cookie'), 'a header value with a line break is not written');
    assert.ok(lines.includes(`content-length: ${Buffer.byteLength(body)}`));
    assert.deepEqual(JSON.parse(body), {
      jsonrpc: '2.0',
      id: null,
      error: { code: ErrorCode.Refused, message: 'no "token"' },
    });
  });
});
