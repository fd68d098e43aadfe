// Client-certificate (mTLS) users in a cluster: three replicas on one real redis-server, each listening
// with TLS and a client CA. A certificate user's request that lands on a replica not owning its backend
// is forwarded over the signed peer hop with the certificate the landing replica verified, and the owner
// maps it as if the client had presented it there (user, groups, policy, one audit line at the owner),
// over HTTP, WebSocket and legacy HTTP+SSE. The hop's certificate header is taken only under a valid
// signature that covers it: sent to the peer listener unsigned, with a signature made without it, or
// under another secret, it is refused (403); sent by a client to the public listener next to a bearer
// key or another certificate, it changes nothing.

import assert from 'node:assert/strict';
import { createHmac, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { Agent, fetch as undiciFetch } from 'undici';
import { CERTIFICATE_HEADER, PEER_HEADER } from '../src/cluster/peer-hop.ts';
import { type IssuedCert, type TestCa, TestPki } from './helpers/certs.ts';
import {
  CLUSTER_SECRET,
  forwardsOf,
  type MeteredReplica,
  startCluster,
  startMeteredReplica,
  type TestCluster,
} from './helpers/cluster.ts';
import { connectLegacyClient } from './helpers/fronts.ts';
import { answerOf, fixtureServer, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { BearerWebSocketTransport } from './helpers/ws-client.ts';

const TIMEOUT = { timeout: 60_000 };

const servers = {
  mine: fixtureServer('well', { isolation: 'per-user' }),
  // Only the `design` group (alice's certificate OU) may use it: groups travel with the certificate.
  designers: fixtureServer('well', { isolation: 'per-user', allow: { groups: ['design'] } }),
  fresh: fixtureServer('well', { isolation: 'per-session' }),
};

let nextId = 10;
const callBody = (name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: {} } });

describe('cluster: client-certificate users across replicas', () => {
  const pki = new TestPki();
  const agents: Agent[] = [];
  let cluster: TestCluster<MeteredReplica>;
  let dir: string;
  let ca: TestCa;
  let certs: Record<'alice' | 'bob', IssuedCert>;
  /** alice's certificate as the hop carries it (base64 DER). */
  let aliceDer: string;
  let bobKey: string;
  let replicas: MeteredReplica[];

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

  /** A replica listening with TLS and the office CA for client certificates, with its audit log and metrics. */
  async function startReplica(
    id: string,
    redis: string,
    keysFile: string,
    dir: string,
  ): Promise<MeteredReplica> {
    const server = pki.serverCert(ca, `server-${id}`);
    const listen = {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
    };
    // API keys too (replicaConfig): certificates are then optional, and a bearer key decides when sent.
    const options = { redis, keyPrefix: 'test:', keysFile, servers };
    return startMeteredReplica(id, options, { listen, audit: { file: `audit-${id}.jsonl` } }, dir);
  }

  before(async () => {
    ca = pki.createCa('office-ca');
    certs = {
      alice: pki.clientCert(ca, 'alice', { cn: 'alice', ou: ['design'] }),
      bob: pki.clientCert(ca, 'bob', { cn: 'bob' }),
    };
    aliceDer = new X509Certificate(readFileSync(certs.alice.cert)).raw.toString('base64');
    cluster = await startCluster('cluster-certs', startReplica, ['bob']);
    ({ dir, replicas } = cluster);
    bobKey = cluster.keys.bob as string;
  });
  after(async () => {
    await Promise.all(agents.map((made) => made.destroy()));
    await cluster.close();
    pki.close();
  });

  const at = (index: number, server: string) => `${replicas[index]?.url}/mcp/${server}`;
  const ownerOf = (session: string) => replicas.findIndex((replica) => session.startsWith(`${replica.id}.`));

  const post = (url: string, dispatcher: Agent, body: string, headers: Record<string, string> = {}) =>
    rawPost(url, body, headers, dispatcher);

  /** initialize at replica `index`: the answer and its session id. */
  async function initialize(index: number, server: string, dispatcher: Agent, headers = {}) {
    const answer = await post(at(index, server), dispatcher, INITIALIZE, headers);
    return { answer, session: answer.headers.get('mcp-session-id') ?? '' };
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
    assert.equal(answer.status, 200, answer.text);
    return textOf((answerOf(answer) as { result?: unknown } | undefined)?.result);
  }

  type AuditLine = Record<string, unknown>;
  /** Replica `index`'s audit lines so far. */
  const readAudit = (index: number): AuditLine[] => {
    const file = join(dir, `audit-${replicas[index]?.id}.jsonl`);
    if (!existsSync(file)) return [];
    const text = readFileSync(file, 'utf8');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditLine);
  };
  /** Waits until replica `index` has audited `count` lines that `match` (the log is written asynchronously). */
  async function auditLines(index: number, match: (line: AuditLine) => boolean, count: number) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const lines = readAudit(index).filter(match);
      if (lines.length >= count) return lines;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return readAudit(index).filter(match);
  }

  const forwards = (index: number, direction: 'sent' | 'received') => forwardsOf(replicas[index], direction);

  /** The replica owning alice's backend of `server` (placed by an initialize at r1), and one that does not. */
  async function placeAlice(server: string, dispatcher: Agent) {
    const { answer, session } = await initialize(0, server, dispatcher);
    assert.equal(answer.status, 200, answer.text);
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
      assert.equal(answer.status, 200, answer.text);
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
      // Audited once, by the owner, as the certificate's user and groups.
      const lines = await auditLines(
        owner,
        (line) => line.session === session && line.event === 'tools.call',
        3,
      );
      assert.deepEqual(
        lines.map((line) => [line.user, line.auth, line.tool]),
        [
          ['alice', 'mtls', 'whoami'],
          ['alice', 'mtls', 'pid'],
          ['alice', 'mtls', 'whoami'],
        ],
      );
      const start = readAudit(owner).find(
        (line) => line.session === session && line.event === 'session.start',
      );
      assert.deepEqual(
        [start?.replica, start?.user, start?.auth, start?.groups],
        [replicas[owner]?.id, 'alice', 'mtls', ['design']],
      );
      for (const index of [0, 1, 2].filter((index) => index !== owner))
        assert.deepEqual(
          readAudit(index).filter((line) => line.session === session),
          [],
        );
    },
  );

  it(
    "applies the certificate's groups on the owner: the design group's server opens for alice through a non-owner, not for bob",
    TIMEOUT,
    async () => {
      const alice = agent(certs.alice);
      const { other } = await placeAlice('designers', alice);
      const { answer, session } = await initialize(other, 'designers', alice);
      assert.equal(answer.status, 200, answer.text);
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

  it(
    "serves a certificate user's legacy HTTP+SSE session opened on a non-owner from the owner's backend",
    TIMEOUT,
    async () => {
      const alice = agent(certs.alice);
      const { other, pid } = await placeAlice('mine', alice);
      const sent = await forwards(other, 'sent');
      const overAgent: FetchLike = (url, init) =>
        undiciFetch(url, { ...(init as object), dispatcher: alice }) as unknown as Promise<Response>;
      const client = await connectLegacyClient(`${at(other, 'mine')}/sse`, undefined, overAgent);
      try {
        assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
        assert.equal(textOf(await client.callTool({ name: 'pid', arguments: {} })), pid);
      } finally {
        await client.close();
      }
      // The stream, and each POST (its endpoint names the owner's session), went over the hop.
      assert.ok((await forwards(other, 'sent')) >= sent + 3);
    },
  );

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
    const secret = signing === 'another secret' ? `${CLUSTER_SECRET}-not` : CLUSTER_SECRET;
    const mac = createHmac('sha256', secret).update(parts.join('\n')).digest('base64url');
    return rawPost(`http://127.0.0.1:${replicas[0]?.peerPort}${path}`, body, {
      ...headers,
      ...(certificate === undefined ? {} : { [CERTIFICATE_HEADER]: certificate }),
      ...(signing === 'unsigned' ? {} : { [PEER_HEADER]: `r2 ${time} ${mac}` }),
    });
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
      assert.equal(opened.status, 200, opened.text);
      const session = String(opened.headers.get('mcp-session-id'));
      const whoami = await hopPost(
        aliceDer,
        'with the certificate',
        { 'mcp-session-id': session },
        callBody('whoami'),
      );
      assert.equal(textOf((answerOf(whoami) as { result?: unknown } | undefined)?.result), 'alice');
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
      assert.equal(byKey.answer.status, 200, byKey.answer.text);
      const withKey = { ...forged, authorization: `Bearer ${bobKey}` };
      assert.equal(await call(index, 'mine', keyOnly, byKey.session, 'whoami', withKey), 'bob');
      const byCert = await initialize(index, 'mine', bob, forged);
      assert.equal(byCert.answer.status, 200, byCert.answer.text);
      assert.equal(await call(index, 'mine', bob, byCert.session, 'whoami', forged), 'bob');
      assert.equal((await initialize(index, 'mine', keyOnly, forged)).answer.status, 401);
      // Not alice's group either.
      assert.equal((await initialize(index, 'designers', bob, forged)).answer.status, 403);
    }
  });
});
