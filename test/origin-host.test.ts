// Origin allowlist (403) and the Host check against DNS rebinding on a loopback-bound gateway, over a
// real socket with hand-set headers; allowedOrigins entries are checked when the config is read.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { buildConfig, parseConfigText } from '../src/config/load.ts';
import { hostAllowed } from '../src/http/request-guards.ts';
import { isLoopbackAddress } from '../src/util/loopback.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { fixtureServer, INITIALIZE, startGateway, type TestGateway } from './helpers/gateway.ts';

/** POSTs initialize with exactly these Host and Origin headers; resolves with the status and body. */
function post(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: {
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(INITIALIZE),
          ...headers,
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.once('error', reject);
    req.end(INITIALIZE);
  });
}

describe('Origin and Host checks', () => {
  let gw: TestGateway;
  let port: string;
  const logged = capturingLogger();

  before(async () => {
    gw = await startGateway(
      { servers: { a: fixtureServer() }, allowedOrigins: ['https://App.Example.com/'] },
      { auth: false, log: logged.log },
    );
    port = new URL(gw.url).port;
  });
  after(() => gw.close());

  it('answers 421 to a Host that is not a loopback name (DNS rebinding)', async () => {
    const url = `${gw.url}/mcp/a`;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `127.1.2.3:${port}`]) {
      assert.equal((await post(url, { host })).status, 200, host);
    }
    for (const host of [
      `127.attacker.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `evil.example:${port}`,
      `localhost.:${port}`,
    ]) {
      const answer = await post(url, { host });
      assert.equal(answer.status, 421, host);
      assert.match(answer.body, /"code":-32003/);
      const { message } = (JSON.parse(answer.body) as { error: { message: string } }).error;
      assert.ok(
        message.startsWith(
          `Host "${host}" does not name this gateway (it listens on loopback and has no publicUrl) — set publicUrl`,
        ),
        message,
      );
    }
  });

  it('answers 403 to an Origin outside the allowlist, with a JSON-RPC error body', async () => {
    const url = `${gw.url}/mcp/a`;
    const host = `127.0.0.1:${port}`;
    for (const origin of ['https://evil.example', 'null', 'https://app.example.com.evil.example']) {
      const answer = await post(url, { host, origin });
      assert.equal(answer.status, 403, origin);
      assert.match(answer.body, /Origin not allowed/);
    }
    // Listed (the entry was normalized from "https://App.Example.com/"), the gateway's own, and none at all.
    assert.equal((await post(url, { host, origin: 'https://app.example.com' })).status, 200);
    assert.equal((await post(url, { host, origin: `http://127.0.0.1:${port}` })).status, 200);
    assert.equal((await post(url, { host })).status, 200);
  });

  it("logs each refusal with the client's address and the reason, once per kind", async () => {
    const url = `${gw.url}/mcp/a`;
    for (let n = 0; n < 3; n++)
      await post(url, { host: `127.0.0.1:${port}`, origin: 'https://elsewhere.example' });
    const lines = logged
      .lines()
      .split('\n')
      .filter((line) => line.includes('"msg":"refused ('))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const origin = lines.filter((line) => line.status === 403);
    assert.equal(origin.length, 1, 'three refusals, one line');
    assert.equal(origin[0]?.address, '127.0.0.1');
    assert.equal(origin[0]?.path, '/mcp/a');
    assert.equal(origin[0]?.reason, 'Origin not allowed');
    const hosts = lines.filter((line) => line.status === 421);
    assert.ok(
      hosts.length >= 1 && hosts.every((line) => line.address === '127.0.0.1'),
      JSON.stringify(hosts),
    );
  });

  it('treats only IPv4 literals in 127/8 as loopback', () => {
    assert.ok(isLoopbackAddress('127.0.0.1') && isLoopbackAddress('127.255.0.9'));
    assert.ok(!isLoopbackAddress('127.example.com') && !isLoopbackAddress('127.0.0.256'));
    assert.ok(!hostAllowed('127.0.0.1.nip.io:80', true));
    assert.ok(hostAllowed('mcp.example.com', true, 'mcp.example.com'));
  });

  it('refuses an allowedOrigins entry that could never match, with its line', () => {
    assert.throws(
      () =>
        parseConfigText(
          'servers: { a: { command: x } }\nallowedOrigins:\n  - https://app.example.com/path\n',
          '/r.yaml',
          {},
        ),
      /r\.yaml:3: allowedOrigins\.0: "https:\/\/app\.example\.com\/path" is not an origin/,
    );
    assert.throws(
      () => buildConfig({ servers: { a: { command: 'x' } }, allowedOrigins: ['app.example.com'] }),
      /is not an origin/,
    );
    const config = buildConfig({
      servers: { a: { command: 'x' } },
      allowedOrigins: ['*', 'HTTPS://A.example:443/'],
    });
    assert.deepEqual(config.allowedOrigins, ['*', 'https://a.example']);
  });
});
