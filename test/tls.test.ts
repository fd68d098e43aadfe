// The gateway's built-in TLS: a certificate made by openssl for this test, trusted through a custom CA.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { fixtureServer, INITIALIZE, startGateway, type TestGateway } from './helpers/gateway.ts';

describe('TLS', () => {
  let gw: TestGateway;
  let ca: string;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    gw = await startGateway(
      {
        listen: {
          host: '127.0.0.1',
          port: 0,
          tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
        },
        servers: { echo: fixtureServer() },
      },
      { users: ['alice'] },
    );
  });
  after(async () => {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with the configured certificate', async () => {
    assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const dispatcher = new Agent({ connect: { ca } });
    const health = await undiciFetch(`${gw.url}/healthz`, { dispatcher });
    assert.equal(health.status, 200);
    const init = await undiciFetch(`${gw.url}/mcp`, {
      method: 'POST',
      dispatcher,
      headers: {
        authorization: `Bearer ${gw.keys.alice}`,
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
      },
      body: INITIALIZE,
    });
    assert.equal(init.status, 200);
    assert.ok(init.headers.get('mcp-session-id'));
    await dispatcher.close();
  });

  it('is refused by a client that does not trust the certificate', async () => {
    await assert.rejects(fetch(`${gw.url}/healthz`), /fetch failed/);
  });
});
