// The bad-input corpus (test/fixtures/bad-input-corpus.ts) against one real gateway process with API
// keys and OAuth: every case gets its documented answer (docs/bad-input.md), while another user's SDK
// client calls the echo tool throughout and must never see a failure, and the process stays up.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { createKey, revokeKey } from '../src/auth/key-admin.ts';
import { parseJsonBody } from '../src/http/json-body.ts';
import { duplicatedHeader } from '../src/http/request-guards.ts';
import { deeperThan, MAX_JSON_DEPTH } from '../src/protocol/json-depth.ts';
import {
  type BadInputCase,
  buildCorpus,
  type CorpusContext,
  corpusTable,
  SHAPE_CONTEXT,
} from './fixtures/bad-input-corpus.ts';
import { connectClient, FIXTURE_SERVER, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { type RawResponse, rawExchange } from './helpers/raw-http.ts';

const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));
const AUDIENCE = 'mcp-relay-corpus';

const SHAPE = buildCorpus(SHAPE_CONTEXT).map((c) => ({ group: c.group, name: c.name }));

describe('bad-input corpus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-corpus-'));
  let jwks: Server;
  let gateway: ChildProcess;
  let gatewayLog = '';
  let url: string;
  let corpus: BadInputCase[];
  let bob: { client: Client; close(): Promise<void> };
  let ctx: CorpusContext;
  const other = { calls: 0, failures: [] as string[], running: true, done: Promise.resolve() };

  before(async () => {
    // Users: alice sends the corpus, bob is the bystander; one key revoked, one expired.
    const keysFile = join(dir, 'keys.yaml');
    const alice = await createKey(keysFile, { user: 'alice' });
    const bobKey = await createKey(keysFile, { user: 'bob' });
    const revoked = await createKey(keysFile, { user: 'alice' });
    await revokeKey(keysFile, revoked.record.id);
    const expired = await createKey(keysFile, { user: 'alice', expiresInMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 5));

    // A JWKS for auth.oidc: one trusted key; a second key plays the forger.
    const trusted = await generateKeyPair('ES256', { extractable: true });
    const forger = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = { ...(await exportJWK(trusted.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;

    writeFileSync(
      join(dir, 'relay.yaml'),
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        'servers:',
        `  echo: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE_SERVER)}, well], resources: { deny: ["file:///etc/*"] } }`,
        'auth:',
        '  apiKeys: { file: keys.yaml }',
        `  oidc: { issuer: "${issuer}", jwksUri: "${issuer}/jwks", audience: ${AUDIENCE} }`,
        'limits: { maxBodyBytes: 2MiB, sessionsPerUser: 500, headersTimeout: 1500ms, receiveTimeout: 3s }',
        'logLevel: warn',
        '',
      ].join('\n'),
    );
    gateway = spawn(process.execPath, [RUN_CLI, 'serve', '--config', join(dir, 'relay.yaml')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${gatewayLog}`)), 20_000);
      gateway.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        gatewayLog += chunk;
        const found = /mcp-relay gateway at (http:\/\/[^\s]+)/.exec(gatewayLog)?.[1];
        if (found) {
          clearTimeout(timer);
          resolve(found);
        }
      });
      gateway.once('exit', (code) => reject(new Error(`gateway exited (${code}):\n${gatewayLog}`)));
    });

    // alice's session, which many cases use.
    const init = await rawPost(`${url}/mcp`, INITIALIZE, { authorization: `Bearer ${alice.key}` });
    assert.equal(init.status, 200, init.text);
    const aliceSession = init.headers.get('mcp-session-id') ?? '';
    const initialized = await rawPost(
      `${url}/mcp`,
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      {
        authorization: `Bearer ${alice.key}`,
        'mcp-session-id': aliceSession,
      },
    );
    assert.equal(initialized.status, 202);

    // bob, the other user: an SDK client calling echo for as long as the corpus runs.
    const connected = await connectClient(`${url}/mcp`, bobKey.key);
    bob = { client: connected.client, close: () => connected.client.close() };
    const bobSession = connected.transport.sessionId ?? '';
    other.done = (async () => {
      while (other.running) {
        const text = `bob-${++other.calls}`;
        try {
          const result = await bob.client.callTool({ name: 'echo', arguments: { text } });
          if (textOf(result) !== text) other.failures.push(`${text}: got ${JSON.stringify(result)}`);
        } catch (error) {
          other.failures.push(`${text}: ${(error as Error).message}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();

    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'alice', aud: AUDIENCE, iss: issuer, iat: now, exp: now + 600 };
    const sign = (payload: JWTPayload, key = trusted.privateKey, kid = 'k1') =>
      new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(key);
    const valid = await sign(claims);
    const [validHeader, , validSignature] = valid.split('.');
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const hmacHeader = b64({ alg: 'HS256', kid: 'k1', typ: 'JWT' });
    const secret = await exportSPKI(trusted.publicKey);
    const hmacBody = `${hmacHeader}.${b64(claims)}`;
    const { exp: _exp, ...withoutExp } = claims;
    ctx = {
      port: Number(new URL(url).port),
      keys: { alice: alice.key, bob: bobKey.key, revoked: revoked.key, expired: expired.key },
      aliceSession,
      bobSession,
      tokens: {
        valid,
        validBob: await sign({ ...claims, sub: 'bob' }),
        foreignKey: await sign(claims, forger.privateKey, 'k-forged'),
        foreignKeySameKid: await sign(claims, forger.privateKey),
        algNone: `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
        hs256: `${hmacBody}.${createHmac('sha256', secret).update(hmacBody).digest('base64url')}`,
        expired: await sign({ ...claims, iat: now - 7200, exp: now - 3600 }),
        notYetValid: await sign({ ...claims, nbf: now + 3600 }),
        otherAudience: await sign({ ...claims, aud: 'https://other.example/mcp' }),
        otherIssuer: await sign({ ...claims, iss: 'https://idp.other.example' }),
        noExpiry: await sign(withoutExp),
        tamperedPayload: `${validHeader}.${b64({ ...claims, sub: 'bob' })}.${validSignature}`,
        noSignature: `${validHeader}.${b64(claims)}.`,
        badUser: await sign({ ...claims, sub: '../../root' }),
        hugeKid: await sign(claims, trusted.privateKey, 'k'.repeat(8192)),
      },
    };
    corpus = buildCorpus(ctx);
    assert.deepEqual(
      corpus.map((c) => ({ group: c.group, name: c.name })),
      SHAPE,
    );
  });

  after(async () => {
    other.running = false;
    await other.done;
    await bob?.close();
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
    await new Promise((resolve) => jwks?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it(`holds at least 100 cases (${SHAPE.length})`, () => {
    assert.ok(SHAPE.length >= 100, `only ${SHAPE.length} cases`);
    const names = SHAPE.map((c) => `${c.group}: ${c.name}`);
    assert.equal(new Set(names).size, names.length, 'case names are unique');
  });

  it('documents every case with its answer in docs/bad-input.md', () => {
    const doc = readFileSync(fileURLToPath(new URL('../docs/bad-input.md', import.meta.url)), 'utf8');
    const table = /<!-- corpus:start -->\n([\s\S]*?)\n<!-- corpus:end -->/.exec(doc)?.[1];
    // Regenerate with: node test/fixtures/bad-input-corpus.ts
    assert.equal(table, corpusTable(buildCorpus(SHAPE_CONTEXT)));
  });

  const slow = SHAPE.map((shape, index) => ({ ...shape, index })).filter((c) => c.group === 'slow clients');
  for (const [index, shape] of SHAPE.entries()) {
    if (shape.group === 'slow clients') continue;
    it(`${shape.group}: ${shape.name}`, async () => {
      await runCase(corpus[index] as BadInputCase, ctx.port);
    });
  }
  // Slow clients wait for the server's timeouts: run them side by side.
  describe('slow clients', { concurrency: true }, () => {
    for (const shape of slow) {
      it(shape.name, async () => {
        await runCase(corpus[shape.index] as BadInputCase, ctx.port);
      });
    }
  });

  it('kept serving the other user throughout, and the gateway process is up', async (t) => {
    other.running = false;
    await other.done;
    t.diagnostic(`bob's echo calls during the corpus: ${other.calls}`);
    assert.deepEqual(other.failures, []);
    assert.ok(other.calls >= 10, `bob made only ${other.calls} calls`);
    assert.equal(gateway.exitCode, null, `gateway exited:\n${gatewayLog}`);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
    // alice's session survived her own bad input too.
    const call = await rawPost(
      `${url}/mcp`,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'end',
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'still here' } },
      }),
      {
        authorization: `Bearer ${ctx.keys.alice}`,
        'mcp-session-id': ctx.aliceSession,
        'mcp-protocol-version': '2025-11-25',
      },
    );
    assert.equal(call.status, 200);
    assert.equal(textOf((call.json as { result: unknown }).result), 'still here');
    // No client input was answered with a 500 (the gateway logs those as "request failed").
    assert.doesNotMatch(gatewayLog, /request failed/);
  });
});

describe('bad-input guards (units)', () => {
  it('accepts JSON nested exactly 128 levels deep and refuses 129', () => {
    const nested = (levels: number) => Buffer.from(`${'['.repeat(levels)}${']'.repeat(levels)}`);
    assert.equal(parseJsonBody(nested(MAX_JSON_DEPTH)).ok, true);
    assert.deepEqual(parseJsonBody(nested(MAX_JSON_DEPTH + 1)), {
      ok: false,
      code: -32600,
      message: 'JSON nested deeper than 128 levels',
    });
    assert.equal(deeperThan({ a: [{ b: 1 }] }, 3), false);
    assert.equal(deeperThan({ a: [{ b: {} }] }, 3), true);
  });

  it('names the first repeated single-use header, whatever its case', () => {
    assert.equal(duplicatedHeader(['Host', 'a', 'X-A', '1', 'x-a', '2']), undefined);
    assert.equal(
      duplicatedHeader(['Host', 'a', 'Authorization', 'x', 'authorization', 'y']),
      'authorization',
    );
    assert.equal(duplicatedHeader(['mcp-session-id', 'a', 'Mcp-Session-Id', 'a']), 'mcp-session-id');
  });
});

async function runCase(c: BadInputCase, port: number): Promise<void> {
  const response = await rawExchange(port, c.request, { timeoutMs: 10_000, ...c.options });
  const where = `${c.group}: ${c.name} → ${response.status} ${response.body.slice(0, 300)}`;
  const { expect } = c;
  if (expect.status === undefined) {
    assert.equal(response.status, undefined, where);
    assert.ok(response.closedByServer, `${where}: the connection should be closed`);
  } else {
    assert.equal(response.status, expect.status, where);
  }
  if (expect.closes) assert.ok(response.closedByServer, `${where}: the connection should be closed`);
  if (expect.header)
    assert.ok(response.headers[expect.header] !== undefined, `${where}: no ${expect.header} header`);
  if (expect.withinMs !== undefined)
    assert.ok(response.elapsedMs < expect.withinMs, `${where}: took ${response.elapsedMs} ms`);
  if (expect.rpcCode === undefined && expect.id === undefined && expect.text === undefined) return;
  const message = jsonRpcOf(response);
  assert.ok(message, `${where}: no JSON-RPC answer`);
  if (expect.rpcCode !== undefined) assert.equal(message.error?.code, expect.rpcCode, where);
  if (expect.id !== undefined) assert.deepEqual(message.id, expect.id, where);
  if (expect.text !== undefined) assert.equal(textOf(message.result), expect.text, where);
}

interface Answer {
  id?: unknown;
  result?: unknown;
  error?: { code?: number };
}

/** The JSON-RPC answer in a JSON body, or the last one with an id in an SSE body. */
function jsonRpcOf(response: RawResponse): Answer | undefined {
  if ((response.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    const messages = response.body
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => {
        try {
          return JSON.parse(line.slice(5)) as Answer;
        } catch {
          return undefined;
        }
      })
      .filter((message): message is Answer => message !== undefined && 'id' in message);
    return messages.at(-1);
  }
  try {
    return JSON.parse(response.body) as Answer;
  } catch {
    return undefined;
  }
}
