// `mcp-relay connect` as a child process (driven by the official SDK client over stdio) against an
// mTLS gateway: --ca/--cert/--key end to end, refused certificates explained, and corporate proxies —
// a real HTTP CONNECT proxy (`proxy`) through HTTPS_PROXY or --proxy, bypassed for NO_PROXY hosts.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { proxySettings } from '../src/connect/dispatcher.ts';
import { resolveConnectSetup } from '../src/connect/options.ts';
import { type IssuedCert, opensslDate, type TestCa, TestPki } from './helpers/certs.ts';
import { connectThroughBridge } from './helpers/cli.ts';
import { fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { startProxy } from './helpers/proxy.ts';

function bridge(url: string, args: string[], env: Record<string, string> = {}) {
  return connectThroughBridge(url, { args, env });
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  return textOf(await client.callTool({ name, arguments: args }));
}

describe('connect: client certificates and proxies', () => {
  const pki = new TestPki();
  let ca: TestCa;
  let alice: IssuedCert;
  let expired: IssuedCert;
  let gw: TestGateway;
  let target: string;
  let tls: string[];

  before(async () => {
    ca = pki.createCa('office-ca');
    const server = pki.serverCert(ca);
    alice = pki.clientCert(ca, 'alice', { cn: 'alice' });
    expired = pki.clientCert(ca, 'expired', {
      cn: 'carol',
      startDate: opensslDate(Date.now() - 3 * 86_400_000),
      endDate: opensslDate(Date.now() - 86_400_000),
    });
    gw = await startGateway(
      {
        listen: {
          host: '127.0.0.1',
          port: 0,
          tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
        },
        servers: { echo: fixtureServer() },
      },
      { auth: false },
    );
    target = new URL(gw.url).host;
    tls = ['--ca', ca.cert, '--cert', alice.cert, '--key', alice.key];
  });
  after(async () => {
    await gw.close();
    pki.close();
  });

  it('connects with --cert/--key and acts as the certificate’s user', async () => {
    const bridged = await bridge(`${gw.url}/mcp`, tls);
    try {
      assert.equal(await call(bridged.client, 'echo', { text: 'over mTLS' }), 'over mTLS');
      assert.equal(await call(bridged.client, 'whoami'), 'alice');
    } finally {
      await bridged.close();
    }
  });

  it('explains a refusal when no client certificate is given', async () => {
    await assert.rejects(bridge(`${gw.url}/mcp`, ['--ca', ca.cert]), /pass --cert FILE --key FILE/);
  });

  it('explains a refusal of an expired client certificate', async () => {
    await assert.rejects(
      bridge(`${gw.url}/mcp`, ['--ca', ca.cert, '--cert', expired.cert, '--key', expired.key]),
      /may have refused the client certificate/,
    );
  });

  it('tunnels through HTTPS_PROXY (a real CONNECT proxy), client certificate inside the tunnel', async () => {
    const proxy = await startProxy();
    try {
      const bridged = await bridge(`${gw.url}/mcp`, tls, { HTTPS_PROXY: proxy.url });
      try {
        assert.equal(await call(bridged.client, 'whoami'), 'alice');
        assert.equal(await call(bridged.client, 'echo', { text: 'via proxy' }), 'via proxy');
      } finally {
        await bridged.close();
      }
      assert.ok(proxy.tunnels.length > 0, 'the proxy saw no CONNECT');
      assert.ok(
        proxy.tunnels.every((tunnel) => tunnel === target),
        proxy.tunnels.join(','),
      );
    } finally {
      await proxy.close();
    }
  });

  it('goes direct for hosts in NO_PROXY', async () => {
    const proxy = await startProxy();
    try {
      const bridged = await bridge(`${gw.url}/mcp`, tls, {
        https_proxy: proxy.url,
        NO_PROXY: 'localhost,127.0.0.1',
      });
      try {
        assert.equal(await call(bridged.client, 'echo', { text: 'direct' }), 'direct');
      } finally {
        await bridged.close();
      }
      assert.deepEqual(proxy.tunnels, []);
    } finally {
      await proxy.close();
    }
  });

  it('uses --proxy over the environment', async () => {
    const proxy = await startProxy();
    try {
      const bridged = await bridge(`${gw.url}/mcp`, [...tls, '--proxy', proxy.url], {
        HTTPS_PROXY: 'http://127.0.0.1:9', // nothing listens there: using it would fail
      });
      try {
        assert.equal(await call(bridged.client, 'echo', { text: 'flag' }), 'flag');
      } finally {
        await bridged.close();
      }
      assert.ok(proxy.tunnels.includes(target));
    } finally {
      await proxy.close();
    }
  });

  it('says so when the proxy refuses the tunnel', async () => {
    const proxy = await startProxy({ refuse: true });
    try {
      await assert.rejects(
        bridge(`${gw.url}/mcp`, tls, { HTTPS_PROXY: proxy.url }),
        /proxy refused the tunnel \(407\)/,
      );
    } finally {
      await proxy.close();
    }
  });
});

describe('connect: certificate and proxy flags', () => {
  const flags = {
    url: 'https://mcp.example.com/mcp',
    headers: [],
    tokenEnv: 'MCP_RELAY_TOKEN',
    caFile: undefined,
    timeout: '5m',
  };

  it('needs --cert and --key together, and readable PEM files', () => {
    assert.throws(
      () => resolveConnectSetup({ ...flags, certFile: '/nonexistent.pem' }, {}),
      /--cert and --key go together/,
    );
    assert.throws(
      () => resolveConnectSetup({ ...flags, certFile: '/nonexistent.pem', keyFile: '/nonexistent.key' }, {}),
      /--cert: cannot read \/nonexistent\.pem: ENOENT/,
    );
  });

  it('refuses a proxy URL that is not http(s) without echoing it', () => {
    assert.throws(
      () => resolveConnectSetup(flags, { HTTPS_PROXY: 'socks9://user:secret@proxy' }),
      (error: Error) => /HTTPS_PROXY is not an http/.test(error.message) && !error.message.includes('secret'),
    );
  });

  it('reads lower-case variables first, falls back to HTTP_PROXY for https, and lets --proxy win', () => {
    assert.deepEqual(
      proxySettings(undefined, {
        HTTPS_PROXY: 'http://upper:1',
        https_proxy: 'http://lower:1',
        no_proxy: '.corp',
      }),
      { httpProxy: undefined, httpsProxy: 'http://lower:1', noProxy: '.corp' },
    );
    assert.deepEqual(proxySettings(undefined, { HTTP_PROXY: 'http://p:3128' }), {
      httpProxy: 'http://p:3128',
      httpsProxy: 'http://p:3128',
      noProxy: undefined,
    });
    assert.deepEqual(proxySettings('http://flag:8080', { HTTPS_PROXY: 'http://env:1', NO_PROXY: 'a' }), {
      httpProxy: 'http://flag:8080',
      httpsProxy: 'http://flag:8080',
      noProxy: 'a',
    });
  });
});
