// `mcp-relay connect` over a WebSocket: Bearer token and subprotocol on the upgrade, a private CA and a
// client certificate for wss://, a CONNECT proxy, and a peer that goes silent (pings unanswered).
// The front is fixtures/ws-mcp-server.ts (one socket = one session, the shape of the gateway's
// /ws/<server>) and, for the silent peer, supergateway's ws output behind a fault relay.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startWsMcpServer, type WsMcpServer } from './fixtures/ws-mcp-server.ts';
import { TestPki } from './helpers/certs.ts';
import { type Bridged, connectThroughBridge } from './helpers/cli.ts';
import { startFaultRelay } from './helpers/fault-relay.ts';
import { type Front, startSupergateway } from './helpers/foreign-fronts.ts';
import { startProxy } from './helpers/proxy.ts';

async function echo(client: Client, text: string, timeout = 10_000): Promise<string> {
  const result = await client.callTool({ name: 'echo', arguments: { text } }, undefined, { timeout });
  const content = result.content as { type: string; text: string }[];
  return content[0]?.text ?? '';
}

async function closing<T>(bridged: Bridged, work: (bridged: Bridged) => Promise<T>): Promise<T> {
  try {
    return await work(bridged);
  } catch (error) {
    throw Object.assign(error as Error, {
      message: `${(error as Error).message}\nbridge: ${bridged.stderr()}`,
    });
  } finally {
    await bridged.close();
  }
}

describe('connect over WebSocket: credentials on the upgrade', () => {
  let server: WsMcpServer;
  before(async () => {
    server = await startWsMcpServer({ token: 'ws-secret-token' });
  });
  after(() => server.close());

  it('sends Authorization: Bearer and the mcp subprotocol on the upgrade, never printing the token', async () => {
    const bridged = await connectThroughBridge(server.url, { env: { MCP_RELAY_TOKEN: 'ws-secret-token' } });
    await closing(bridged, async () => {
      assert.equal(await echo(bridged.client, 'over ws'), 'over ws');
      const upgrade = server.upgrades.at(-1);
      assert.equal(upgrade?.authorization, 'Bearer ws-secret-token');
      assert.equal(upgrade?.protocols, 'mcp');
      assert.doesNotMatch(bridged.stderr(), /ws-secret-token/);
    });
  });

  it('explains a refused upgrade (401) and names MCP_RELAY_TOKEN', async () => {
    await assert.rejects(
      connectThroughBridge(server.url),
      /requires a token \(401.*MCP_RELAY_TOKEN is not set/s,
    );
  });
});

describe('connect over WebSocket: TLS and proxies', () => {
  const pki = new TestPki();
  let server: WsMcpServer;
  let tls: string[];

  before(async () => {
    const ca = pki.createCa('ws-ca');
    const serverCert = pki.serverCert(ca);
    const alice = pki.clientCert(ca, 'alice', { cn: 'alice' });
    server = await startWsMcpServer({
      tls: { cert: serverCert.cert, key: serverCert.key, clientCa: ca.cert },
    });
    tls = ['--ca', ca.cert, '--cert', alice.cert, '--key', alice.key];
  });
  after(async () => {
    await server.close();
    pki.close();
  });

  it('trusts --ca and presents --cert/--key on wss://', async () => {
    const bridged = await connectThroughBridge(server.url, { args: tls });
    await closing(bridged, async () => assert.equal(await echo(bridged.client, 'over wss'), 'over wss'));
  });

  it('refuses an untrusted certificate and says how to fix it', async () => {
    await assert.rejects(connectThroughBridge(server.url), /TLS certificate not trusted .*pass --ca FILE/);
  });

  it('tunnels wss:// through HTTPS_PROXY (CONNECT), TLS and the client certificate inside the tunnel', async () => {
    const proxy = await startProxy();
    try {
      const bridged = await connectThroughBridge(server.url, { args: tls, env: { HTTPS_PROXY: proxy.url } });
      await closing(bridged, async () => assert.equal(await echo(bridged.client, 'via proxy'), 'via proxy'));
      const target = new URL(server.url).host;
      assert.ok(
        proxy.tunnels.length > 0 && proxy.tunnels.every((tunnel) => tunnel === target),
        proxy.tunnels.join(','),
      );
    } finally {
      await proxy.close();
    }
  });

  it('says so when the proxy refuses the tunnel', async () => {
    const proxy = await startProxy({ refuse: true });
    try {
      await assert.rejects(
        connectThroughBridge(server.url, { args: [...tls, '--proxy', proxy.url] }),
        /proxy refused the tunnel \(407\)/,
      );
    } finally {
      await proxy.close();
    }
  });
});

describe('connect over WebSocket: a peer that goes silent', () => {
  let front: Front;
  before(async () => {
    front = await startSupergateway('ws');
  });
  after(() => front.stop());

  it('drops the socket when pings go unanswered, fails the call in flight honestly, and reconnects once the network heals', async () => {
    const relay = await startFaultRelay(front.port);
    const url = relay.url('/message').replace(/^http/, 'ws');
    const bridged = await connectThroughBridge(url, { args: ['--idle-timeout', '2s'] });
    try {
      await closing(bridged, async () => {
        assert.equal(await echo(bridged.client, 'before'), 'before');
        relay.setMode('blackhole');
        const started = Date.now();
        await assert.rejects(echo(bridged.client, 'into the void', 30_000), /outcome is unknown/);
        const ms = Date.now() - started;
        assert.ok(ms < 8_000, `the dead socket was noticed after ${ms} ms`);
        assert.match(bridged.stderr(), /no answer to pings for 2 s/);
        relay.setMode('pass');
        assert.equal(await echo(bridged.client, 'healed', 30_000), 'healed');
      });
    } finally {
      await relay.close();
    }
  });
});
