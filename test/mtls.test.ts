// Client certificates (mTLS) on the gateway, with a PKI made by openssl for this test: accepted,
// unknown CA / expired / not yet valid / revoked refused at the handshake, a CRL updated while the
// gateway runs, `optional` mode next to API keys, and names taken from the CN or a SAN.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { identityFromCertificate, parseSubjectAltName } from '../src/auth/client-cert.ts';
import { buildConfig, parseConfigText } from '../src/config/load.ts';
import { createGateway } from '../src/gateway/create-gateway.ts';
import { silentLogger } from '../src/log.ts';
import { type IssuedCert, opensslDate, type TestCa, TestPki } from './helpers/certs.ts';
import { fixtureServer, INITIALIZE, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { BearerWebSocketTransport, refusedUpgrade } from './helpers/ws-client.ts';

const DAY = 86_400_000;
const MCP_HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };

interface Answer {
  status: number;
  json: { result?: { content?: { text?: string }[] }; error?: { message?: string } } | undefined;
  headers: Record<string, string | string[] | undefined>;
}

/** An undici agent that trusts `ca` and presents `client` (if any). */
function agentFor(ca: TestCa, client?: IssuedCert): Agent {
  return new Agent({
    connect: {
      ca: readFileSync(ca.cert),
      ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
    },
  });
}

async function post(
  url: string,
  agent: Agent,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await request(`${url}/mcp`, {
    method: 'POST',
    dispatcher: agent,
    headers: { ...MCP_HEADERS, ...headers },
    body,
  });
  const text = await response.body.text();
  let json: Answer['json'];
  try {
    json = JSON.parse(text) as Answer['json'];
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, json, headers: response.headers };
}

/** initialize, then call whoami: the user the backend was started for (MCP_RELAY_USER). */
async function whoami(url: string, agent: Agent, headers: Record<string, string> = {}): Promise<string> {
  const init = await post(url, agent, INITIALIZE, headers);
  assert.equal(init.status, 200, JSON.stringify(init.json));
  const session = String(init.headers['mcp-session-id']);
  const call = await post(
    url,
    agent,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'whoami', arguments: {} },
    }),
    { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
  );
  assert.equal(call.status, 200);
  return call.json?.result?.content?.[0]?.text ?? '';
}

/** The request fails during or right after the handshake (TLS 1.3 reports the alert on first read). */
async function refusedAtHandshake(url: string, agent: Agent): Promise<void> {
  await assert.rejects(post(url, agent, INITIALIZE), (error: Error & { code?: string }) => {
    assert.match(String(error.code ?? error.message), /UND_ERR_SOCKET|ECONNRESET|ERR_SSL|EPIPE/);
    return true;
  });
}

describe('mTLS: certificates required (no other auth)', () => {
  const pki = new TestPki();
  const agents: Agent[] = [];
  // The gateway's log lines: refusals must say why, for the administrator.
  const logLines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  let gw: { url: string; close(): Promise<void> };
  let ca: TestCa;
  let certs: Record<
    'alice' | 'bob' | 'stranger' | 'expired' | 'future' | 'revoked' | 'later' | 'dots',
    IssuedCert
  >;
  let crlFile: string;

  const agent = (client?: IssuedCert) => {
    const made = agentFor(ca, client);
    agents.push(made);
    return made;
  };

  before(async () => {
    ca = pki.createCa('office-ca');
    const other = pki.createCa('other-ca');
    const server = pki.serverCert(ca);
    certs = {
      alice: pki.clientCert(ca, 'alice', { cn: 'alice', ou: ['design'] }),
      bob: pki.clientCert(ca, 'bob', { cn: 'bob' }),
      // Same CN as alice, but from a CA the gateway does not trust.
      stranger: pki.clientCert(other, 'stranger', { cn: 'alice' }),
      expired: pki.clientCert(ca, 'expired', {
        cn: 'carol',
        startDate: opensslDate(Date.now() - 3 * DAY),
        endDate: opensslDate(Date.now() - DAY),
      }),
      future: pki.clientCert(ca, 'future', {
        cn: 'dave',
        startDate: opensslDate(Date.now() + DAY),
        endDate: opensslDate(Date.now() + 2 * DAY),
      }),
      revoked: pki.clientCert(ca, 'revoked', { cn: 'mallory' }),
      later: pki.clientCert(ca, 'later', { cn: 'erin' }),
      dots: pki.clientCert(ca, 'dots', { cn: '..', ou: ['design'] }),
    };
    crlFile = pki.revoke(ca, certs.revoked);
    const config = buildConfig({
      listen: {
        host: '127.0.0.1',
        port: 0,
        tls: { cert: server.cert, key: server.key, clientCa: ca.cert, crl: crlFile },
      },
      servers: { echo: fixtureServer() },
    });
    const gateway = createGateway({ config, log });
    await gateway.listen();
    gw = { url: gateway.url, close: () => gateway.close() };
  });
  after(async () => {
    await Promise.all(agents.map((made) => made.destroy()));
    await gw.close();
    pki.close();
  });

  it('accepts a certificate from the client CA and runs the backend as its CN', async () => {
    assert.equal(await whoami(gw.url, agent(certs.alice)), 'alice');
    assert.equal(await whoami(gw.url, agent(certs.bob)), 'bob');
  });

  it('takes the caller of a WebSocket session (/ws/<server>) from the certificate of its TLS connection', async () => {
    const tls = (client: IssuedCert) => ({
      ca: readFileSync(ca.cert),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    });
    const url = `${gw.url.replace(/^https/, 'wss')}/ws/echo`;
    const client = new Client({ name: 'mtls-ws', version: '1.0.0' });
    await client.connect(new BearerWebSocketTransport(url, undefined, {}, tls(certs.bob)));
    assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'bob');
    await client.close();
    const dots = await refusedUpgrade(url, {}, 'mcp', tls(certs.dots));
    assert.equal(dots.status, 401);
  });

  it('answers a trusted certificate whose CN is made only of dots with 401 and the reason', async () => {
    const answer = await post(gw.url, agent(certs.dots), INITIALIZE);
    assert.equal(answer.status, 401);
    assert.match(
      answer.json?.error?.message ?? '',
      /client certificate user is not a valid name \(1-64 letters, digits or \._@-, not only dots; /,
    );
  });

  it('binds sessions to the certificate user: bob cannot use alice’s session', async () => {
    const init = await post(gw.url, agent(certs.alice), INITIALIZE);
    const session = String(init.headers['mcp-session-id']);
    const stolen = await post(
      gw.url,
      agent(certs.bob),
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
      {
        'mcp-session-id': session,
      },
    );
    assert.equal(stolen.status, 404);
  });

  /** Waits until the gateway logged a refusal with `reason` (for the CN `subject`). */
  async function loggedRefusal(reason: string, subject?: string): Promise<void> {
    const deadline = Date.now() + 5_000;
    const found = () =>
      logLines.some((line) => {
        const entry = JSON.parse(line) as { msg?: string; reason?: string; subject?: string };
        return (
          entry.msg === 'client certificate refused' && entry.reason === reason && entry.subject === subject
        );
      });
    while (!found()) {
      assert.ok(Date.now() < deadline, `no "${reason}" refusal logged`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('refuses a client without a certificate at the handshake', async () => {
    await refusedAtHandshake(gw.url, agent());
    await loggedRefusal('UNABLE_TO_GET_ISSUER_CERT');
  });

  it('refuses a certificate from an unknown CA', async () => {
    await refusedAtHandshake(gw.url, agent(certs.stranger));
    await loggedRefusal('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'alice');
  });

  it('refuses an expired and a not-yet-valid certificate', async () => {
    await refusedAtHandshake(gw.url, agent(certs.expired));
    await loggedRefusal('CERT_HAS_EXPIRED', 'carol');
    await refusedAtHandshake(gw.url, agent(certs.future));
    await loggedRefusal('CERT_NOT_YET_VALID', 'dave');
  });

  it('refuses a revoked certificate (CRL)', async () => {
    await refusedAtHandshake(gw.url, agent(certs.revoked));
    await loggedRefusal('CERT_REVOKED', 'mallory');
  });

  it('applies a CRL updated while the gateway runs, without a restart', async () => {
    assert.equal(await whoami(gw.url, agent(certs.later)), 'erin');
    pki.revoke(ca, certs.later); // rewrites crlFile in place
    const deadline = Date.now() + 15_000;
    for (;;) {
      // A fresh agent: a new handshake, not a pooled connection from before the revocation.
      const fresh = agent(certs.later);
      const refused = await post(gw.url, fresh, INITIALIZE).then(
        () => false,
        () => true,
      );
      if (refused) break;
      assert.ok(Date.now() < deadline, 'the revocation was not applied within 15 s');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // Still serving the others.
    assert.equal(await whoami(gw.url, agent(certs.alice)), 'alice');
  });

  it('applies a CRL update to connections already open, not only to new handshakes', async () => {
    const kept = pki.clientCert(ca, 'kept', { cn: 'frank' });
    const pooled = agent(kept);
    assert.equal(await whoami(gw.url, pooled), 'frank');
    pki.revoke(ca, kept);
    const deadline = Date.now() + 15_000;
    for (;;) {
      // The same agent, kept busy (within keep-alive) so its connection from before the revocation stays.
      const refused = await post(gw.url, pooled, INITIALIZE).then(
        () => false,
        () => true,
      );
      if (refused) break;
      assert.ok(Date.now() < deadline, 'an open connection kept working after its certificate was revoked');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await refusedAtHandshake(gw.url, pooled);
    assert.equal(await whoami(gw.url, agent(certs.alice)), 'alice');
  });
});

describe('mTLS: optional next to API keys', () => {
  const pki = new TestPki();
  const agents: Agent[] = [];
  let gw: TestGateway;
  let ca: TestCa;
  let certs: Record<'alice' | 'expired' | 'spaces', IssuedCert>;

  const agent = (client?: IssuedCert) => {
    const made = agentFor(ca, client);
    agents.push(made);
    return made;
  };

  before(async () => {
    ca = pki.createCa('office-ca');
    const server = pki.serverCert(ca);
    certs = {
      alice: pki.clientCert(ca, 'alice', {
        cn: 'Alice Example',
        san: ['email:alice@example.com', 'URI:spiffe://example.org/user/alice'],
      }),
      expired: pki.clientCert(ca, 'expired', {
        cn: 'carol',
        san: ['email:carol@example.com'],
        startDate: opensslDate(Date.now() - 3 * DAY),
        endDate: opensslDate(Date.now() - DAY),
      }),
      spaces: pki.clientCert(ca, 'spaces', { cn: 'no email here' }),
    };
    gw = await startGateway(
      {
        listen: {
          host: '127.0.0.1',
          port: 0,
          tls: { cert: server.cert, key: server.key, clientCa: ca.cert, clientCert: 'optional' },
        },
        // keys.yaml is the file startGateway writes bob's key to (relative to its folder).
        auth: { apiKeys: { file: 'keys.yaml' }, clientCert: { userFrom: 'san-email' } },
        servers: { echo: fixtureServer() },
      },
      { users: ['bob'] },
    );
  });
  after(async () => {
    await Promise.all(agents.map((made) => made.destroy()));
    await gw.close();
    pki.close();
  });

  it('takes the user from the email SAN', async () => {
    assert.equal(await whoami(gw.url, agent(certs.alice)), 'alice@example.com');
  });

  it('answers an untrusted (expired) certificate with 401 and the reason', async () => {
    const answer = await post(gw.url, agent(certs.expired), INITIALIZE);
    assert.equal(answer.status, 401);
    assert.match(answer.json?.error?.message ?? '', /CERT_HAS_EXPIRED/);
    assert.match(String(answer.headers['www-authenticate']), /client certificate refused/);
  });

  it('answers a trusted certificate that names no user with 401', async () => {
    const answer = await post(gw.url, agent(certs.spaces), INITIALIZE);
    assert.equal(answer.status, 401);
    assert.match(answer.json?.error?.message ?? '', /names no user/);
  });

  it('lets a client without a certificate use an API key', async () => {
    assert.equal(await whoami(gw.url, agent(), { authorization: `Bearer ${gw.keys.bob}` }), 'bob');
    const anonymous = await post(gw.url, agent(), INITIALIZE);
    assert.equal(anonymous.status, 401);
  });

  it('lets the Authorization header decide when both are sent', async () => {
    assert.equal(await whoami(gw.url, agent(certs.alice), { authorization: `Bearer ${gw.keys.bob}` }), 'bob');
    const wrongKey = await post(gw.url, agent(certs.alice), INITIALIZE, {
      authorization: 'Bearer mcpr_forged',
    });
    assert.equal(wrongKey.status, 401);
  });
});

describe('mTLS: config and names', () => {
  it('counts client certificates as authentication for listening beyond loopback', async () => {
    const pki = new TestPki();
    try {
      const ca = pki.createCa('ca');
      const server = pki.serverCert(ca);
      const base = {
        listen: { host: '0.0.0.0', port: 0, tls: { cert: server.cert, key: server.key } },
        servers: { echo: fixtureServer() },
      };
      assert.throws(
        () => createGateway({ config: buildConfig(base), log: silentLogger }),
        /refusing to listen on 0\.0\.0\.0/,
      );
      // Built, never listened on: the check is made before any socket exists.
      const gateway = createGateway({
        config: buildConfig({
          ...base,
          listen: { ...base.listen, tls: { ...base.listen.tls, clientCa: ca.cert } },
        }),
        log: silentLogger,
      });
      await gateway.close();
    } finally {
      pki.close();
    }
  });

  it('rejects inconsistent keys with the file line', () => {
    const servers = 'servers:\n  a: { command: x }\n';
    assert.throws(
      () =>
        parseConfigText(
          `listen:\n  tls:\n    cert: c.pem\n    key: k.pem\n    crl: crl.pem\n${servers}`,
          '/x/relay.yaml',
        ),
      /relay\.yaml:5: listen\.tls\.crl: needs listen\.tls\.clientCa/,
    );
    assert.throws(
      () => parseConfigText(`auth:\n  clientCert:\n    userFrom: san-uri\n${servers}`, '/x/relay.yaml'),
      /auth\.clientCert\.uriPrefix: userFrom san-uri needs uriPrefix/,
    );
    assert.throws(
      () =>
        parseConfigText(
          `listen:\n  tls: { cert: c, key: k, clientCert: sometimes }\n${servers}`,
          '/x/relay.yaml',
        ),
      /listen\.tls\.clientCert/,
    );
  });

  it('maps CN, SANs (with a URI prefix) and OUs to users and groups', () => {
    const cert = {
      subject: { CN: 'alice', OU: ['design', 'ops', 'Not A Group', '..'] },
      subjectaltname:
        'DNS:alice.example.com, email:alice@example.com, URI:spiffe://other.org/user/mallory, URI:spiffe://example.org/user/alice',
      fingerprint256: 'AB:CD',
    };
    const id = (options: Parameters<typeof identityFromCertificate>[1]) =>
      identityFromCertificate(cert, options);
    assert.deepEqual(id({ userFrom: 'cn', groupsFrom: 'ou' }), {
      kind: 'ok',
      identity: { user: 'alice', groups: ['design', 'ops'], method: 'mtls', credential: 'cert:AB:CD' },
    });
    const user = (options: Parameters<typeof identityFromCertificate>[1]) => {
      const outcome = id(options);
      return outcome.kind === 'ok' ? outcome.identity.user : outcome.kind;
    };
    assert.equal(user({ userFrom: 'san-dns', groupsFrom: 'none' }), 'alice.example.com');
    assert.equal(user({ userFrom: 'san-email', groupsFrom: 'none' }), 'alice@example.com');
    assert.equal(
      user({ userFrom: 'san-uri', uriPrefix: 'spiffe://example.org/user/', groupsFrom: 'none' }),
      'alice',
    );
    assert.equal(
      user({ userFrom: 'san-uri', uriPrefix: 'spiffe://nobody.org/', groupsFrom: 'none' }),
      'refused',
    );
    // Two CNs are ambiguous.
    assert.equal(
      identityFromCertificate({ subject: { CN: ['a', 'b'] } }, { userFrom: 'cn', groupsFrom: 'ou' }).kind,
      'refused',
    );
  });

  it('parses quoted SAN values so a crafted name cannot add an entry', () => {
    assert.deepEqual(parseSubjectAltName('DNS:"evil.com, email:admin@example.com", email:bob@example.com'), [
      { type: 'DNS', value: 'evil.com, email:admin@example.com' },
      { type: 'email', value: 'bob@example.com' },
    ]);
    assert.deepEqual(parseSubjectAltName('IP Address:127.0.0.1, URI:https://x.example/a'), [
      { type: 'IP Address', value: '127.0.0.1' },
      { type: 'URI', value: 'https://x.example/a' },
    ]);
  });
});
