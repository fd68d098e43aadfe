// Client-certificate (mTLS) users in a cluster: three replicas on one real redis-server, each listening
// with TLS and a client CA. A certificate user's request that lands on a replica not owning its backend
// is forwarded over the signed peer hop with the certificate the landing replica verified, and the owner
// maps it as if the client had presented it there (user, groups, policy), over HTTP and WebSocket. The
// hop's certificate header is taken only under a valid signature that covers it: sent to the peer
// listener unsigned, with a signature made without it, or under another secret, it is refused (403); sent
// by a client to the public listener next to a bearer key or another certificate, it changes nothing.

import assert from 'node:assert/strict';
import { createHmac, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Agent, request } from 'undici';
import { createKey } from '../src/auth/key-admin.ts';
import { freePort } from '../src/backends/launcher.ts';
import { CERTIFICATE_HEADER, PEER_HEADER } from '../src/cluster/peer-hop.ts';
import { buildConfig } from '../src/config/load.ts';
import { createGateway, type Gateway } from '../src/gateway/create-gateway.ts';
import { silentLogger } from '../src/log.ts';
import { type IssuedCert, type TestCa, TestPki } from './helpers/certs.ts';
import { fixtureServer, INITIALIZE, textOf } from './helpers/gateway.ts';
import { startRedis, type TestRedis } from './helpers/redis-server.ts';
import { BearerWebSocketTransport } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 60_000 };
const SECRET = 'a-cluster-secret-of-at-least-32-chars!';
const MCP_HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };

interface Replica {
  id: string;
  gateway: Gateway;
  url: string;
  peerPort: number;
  metricsPort: number;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { result?: unknown; error?: { message?: string } } | undefined;
}

const servers = {
  mine: fixtureServer('well', { isolation: 'per-user' }),
  // Only the `design` group (alice's certificate OU) may use it: groups travel with the certificate.
  designers: fixtureServer('well', { isolation: 'per-user', allow: { groups: ['design'] } }),
  fresh: fixtureServer('well', { isolation: 'per-session' }),
};

async function answerOf(response: Awaited<ReturnType<typeof request>>): Promise<Answer> {
  const text = await response.body.text();
  let json: Answer['json'];
  try {
    json = JSON.parse(text) as Answer['json'];
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, json };
}

let nextId = 10;
const callBody = (name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: {} } });

describe('cluster: client-certificate users across replicas', () => {
  const pki = new TestPki();
  const agents: Agent[] = [];
  let redis: TestRedis;
  let dir: string;
  let ca: TestCa;
  let certs: Record<'alice' | 'bob', IssuedCert>;
  /** alice's certificate as the hop carries it (base64 DER). */
  let aliceDer: string;
  let bobKey: string;
  let replicas: Replica[];

  const agent = (client?: IssuedCert): Agent => {
    const made = new Agent({
      connect: {
        ca: readFileSync(ca.cert),
        ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
      },
    });
    agents.push(made);
    return made;
  };

  async function startReplica(id: string, server: IssuedCert, keysFile: string): Promise<Replica> {
    const peerPort = await freePort();
    const metricsPort = await freePort();
    const config = buildConfig(
      {
        listen: {
          host: '127.0.0.1',
          port: 0,
          tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
        },
        admin: { groups: ['admins'], metrics: { listen: `127.0.0.1:${metricsPort}` } },
        // API keys too: certificates are then optional, and a bearer key decides when sent.
        auth: { apiKeys: { file: keysFile } },
        cluster: {
          replica: id,
          redis: redis.url,
          secret: SECRET,
          keyPrefix: 'certs:',
          peer: { listen: `127.0.0.1:${peerPort}` },
        },
        servers,
      },
      dir,
    );
    const gateway = createGateway({ config, log: silentLogger });
    await gateway.listen();
    return { id, gateway, url: gateway.url, peerPort, metricsPort };
  }

  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-cluster-certs-'));
    ca = pki.createCa('office-ca');
    const server = pki.serverCert(ca);
    certs = {
      alice: pki.clientCert(ca, 'alice', { cn: 'alice', ou: ['design'] }),
      bob: pki.clientCert(ca, 'bob', { cn: 'bob' }),
    };
    aliceDer = new X509Certificate(readFileSync(certs.alice.cert)).raw.toString('base64');
    const keysFile = join(dir, 'keys.yaml');
    bobKey = (await createKey(keysFile, { user: 'bob', groups: [] })).key;
    replicas = [];
    for (const id of ['r1', 'r2', 'r3']) replicas.push(await startReplica(id, server, keysFile));
  });
  after(async () => {
    await Promise.all(agents.map((made) => made.destroy()));
    await Promise.all(replicas.map((replica) => replica.gateway.close()));
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
    pki.close();
  });

  const at = (index: number, server: string) => `${replicas[index]?.url}/mcp/${server}`;
  const ownerOf = (session: string) => replicas.findIndex((replica) => session.startsWith(`${replica.id}.`));

  async function post(url: string, dispatcher: Agent, body: string, headers: Record<string, string> = {}) {
    return answerOf(
      await request(url, { method: 'POST', dispatcher, headers: { ...MCP_HEADERS, ...headers }, body }),
    );
  }

  /** initialize at replica `index`: the answer and its session id. */
  async function initialize(index: number, server: string, dispatcher: Agent, headers = {}) {
    const answer = await post(at(index, server), dispatcher, INITIALIZE, headers);
    return { answer, session: String(answer.headers['mcp-session-id'] ?? '') };
  }

  /** A tool's text, called on `session` at replica `index`. */
  async function call(
    index: number,
    server: string,
    dispatcher: Agent,
    session: string,
    name: string,
    headers = {},
  ) {
    const answer = await post(at(index, server), dispatcher, callBody(name), {
      ...headers,
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    return textOf(answer.json?.result);
  }

  /** A replica's forwards sent or received, as its metrics show them. */
  async function forwards(index: number, direction: 'sent' | 'received'): Promise<number> {
    const scraped = await (await fetch(`http://127.0.0.1:${replicas[index]?.metricsPort}/metrics`)).text();
    const line = new RegExp(`^mcp_relay_cluster_forwards_total\\{direction="${direction}"\\} (\\d+)$`, 'm');
    return Number(line.exec(scraped)?.[1] ?? Number.NaN);
  }

  /** The replica owning alice's backend of `server` (placed by an initialize at r1), and one that does not. */
  async function placeAlice(server: string, dispatcher: Agent) {
    const { answer, session } = await initialize(0, server, dispatcher);
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    const owner = ownerOf(session);
    assert.ok(owner >= 0, session);
    const other = [0, 1, 2].find((index) => index !== owner) as number;
    return { owner, other, pid: await call(owner, server, dispatcher, session, 'pid') };
  }

  it(
    "forwards a certificate user's initialize from a non-owner to the owner, once, and serves the session's later calls sent there",
    TIMEOUT,
    async () => {
      const alice = agent(certs.alice);
      const { owner, other, pid } = await placeAlice('mine', alice);
      const sent = await forwards(other, 'sent');
      const received = await forwards(owner, 'received');
      const { answer, session } = await initialize(other, 'mine', alice);
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.equal(ownerOf(session), owner, 'the session is the owner’s');
      assert.equal(await forwards(other, 'sent'), sent + 1);
      assert.equal(await forwards(owner, 'received'), received + 1);
      // The session's calls sent to the non-owner reach the owner's one backend, run as the certificate's CN.
      assert.equal(await call(other, 'mine', alice, session, 'whoami'), 'alice');
      assert.equal(await call(other, 'mine', alice, session, 'pid'), pid);
      // The same certificate presented to the owner itself is the same caller (user and credential)...
      assert.equal(await call(owner, 'mine', alice, session, 'whoami'), 'alice');
      // ...and another certificate, forwarded, is not: alice's session is unknown to bob.
      const stolen = await post(at(other, 'mine'), agent(certs.bob), callBody('whoami'), {
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
      });
      assert.equal(stolen.status, 404);
    },
  );

  it(
    "applies the certificate's groups on the owner: the design group's server opens for alice through a non-owner, not for bob",
    TIMEOUT,
    async () => {
      const alice = agent(certs.alice);
      const { other } = await placeAlice('designers', alice);
      const { answer, session } = await initialize(other, 'designers', alice);
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.equal(await call(other, 'designers', alice, session, 'whoami'), 'alice');
      const bob = agent(certs.bob);
      for (const index of [0, 1, 2])
        assert.equal((await initialize(index, 'designers', bob)).answer.status, 403);
    },
  );

  it('tunnels a certificate user’s WebSocket from a non-owner to the owner’s backend', TIMEOUT, async () => {
    const alice = agent(certs.alice);
    const { owner, other, pid } = await placeAlice('mine', alice);
    const sent = await forwards(other, 'sent');
    const url = `${replicas[other]?.url.replace(/^https/, 'wss')}/ws/mine`;
    const tls = {
      ca: readFileSync(ca.cert),
      cert: readFileSync(certs.alice.cert),
      key: readFileSync(certs.alice.key),
    };
    const client = new Client({ name: 'cluster-mtls-ws', version: '1.0.0' });
    await client.connect(new BearerWebSocketTransport(url, undefined, {}, tls));
    try {
      assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
      assert.equal(textOf(await client.callTool({ name: 'pid', arguments: {} })), pid);
    } finally {
      await client.close();
    }
    assert.equal(await forwards(other, 'sent'), sent + 1);
    assert.notEqual(owner, other);
  });

  /** A POST straight to replica r1's peer listener, signed as `signing` says, carrying `certificate`. */
  async function hopPost(
    certificate: string | undefined,
    signing: 'unsigned' | 'without the certificate' | 'with the certificate' | 'another secret',
    headers: Record<string, string> = {},
    body = INITIALIZE,
  ) {
    const path = '/mcp/fresh';
    const time = String(Date.now());
    const session = headers['mcp-session-id'] ?? '';
    const parts = ['POST', path, session, 'r2', time];
    if (signing !== 'without the certificate' && certificate !== undefined) parts.push(certificate);
    const secret = signing === 'another secret' ? `${SECRET}-not` : SECRET;
    const mac = createHmac('sha256', secret).update(parts.join('\n')).digest('base64url');
    const response = await request(`http://127.0.0.1:${replicas[0]?.peerPort}${path}`, {
      method: 'POST',
      headers: {
        ...MCP_HEADERS,
        ...headers,
        ...(certificate === undefined ? {} : { [CERTIFICATE_HEADER]: certificate }),
        ...(signing === 'unsigned' ? {} : { [PEER_HEADER]: `r2 ${time} ${mac}` }),
      },
      body,
    });
    return answerOf(response);
  }

  it(
    'refuses a certificate header on the peer listener unless the hop’s signature covers it',
    TIMEOUT,
    async () => {
      assert.equal((await hopPost(aliceDer, 'unsigned')).status, 403);
      // A signed hop of someone else's request, with alice's certificate added to it.
      assert.equal((await hopPost(aliceDer, 'without the certificate')).status, 403);
      assert.equal((await hopPost(aliceDer, 'another secret')).status, 403);
      // Signed, but not a certificate.
      assert.equal(
        (await hopPost(Buffer.from('alice').toString('base64'), 'with the certificate')).status,
        403,
      );
      // Without any credential a signed hop is unauthenticated on the owner, as any request.
      assert.equal((await hopPost(undefined, 'with the certificate')).status, 401);
      // What a replica sends: the owner maps the certificate it carries.
      const opened = await hopPost(aliceDer, 'with the certificate');
      assert.equal(opened.status, 200, JSON.stringify(opened.json));
      const session = String(opened.headers['mcp-session-id']);
      const whoami = await hopPost(
        aliceDer,
        'with the certificate',
        { 'mcp-session-id': session },
        callBody('whoami'),
      );
      assert.equal(textOf(whoami.json?.result), 'alice');
    },
  );

  it('ignores the certificate header a client sends to the public listener', TIMEOUT, async () => {
    const forged = { [CERTIFICATE_HEADER]: aliceDer };
    const keyOnly = agent();
    const bob = agent(certs.bob);
    // On every replica, so the request lands on bob's owner once and is forwarded from the others.
    for (const index of [0, 1, 2]) {
      const byKey = await initialize(index, 'mine', keyOnly, {
        ...forged,
        authorization: `Bearer ${bobKey}`,
      });
      assert.equal(byKey.answer.status, 200, JSON.stringify(byKey.answer.json));
      const withKey = { ...forged, authorization: `Bearer ${bobKey}` };
      assert.equal(await call(index, 'mine', keyOnly, byKey.session, 'whoami', withKey), 'bob');
      const byCert = await initialize(index, 'mine', bob, forged);
      assert.equal(byCert.answer.status, 200, JSON.stringify(byCert.answer.json));
      assert.equal(await call(index, 'mine', bob, byCert.session, 'whoami', forged), 'bob');
      assert.equal((await initialize(index, 'mine', keyOnly, forged)).answer.status, 401);
      // Not alice's group either.
      assert.equal((await initialize(index, 'designers', bob, forged)).answer.status, 403);
    }
  });
});
