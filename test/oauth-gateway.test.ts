// The gateway as an OAuth 2.1 resource server, against a real OpenID provider on 127.0.0.1 issuing
// real JWT access tokens: audience, issuer, expiry, scopes, key rotation, RFC 9728 metadata, the
// WWW-Authenticate challenges, API keys alongside, and the token never reaching a backend.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { OidcVerifier } from '../src/auth/oidc.ts';
import { buildConfig } from '../src/config/load.ts';
import { createGateway } from '../src/gateway/create-gateway.ts';
import { silentLogger } from '../src/log.ts';
import {
  connectClient,
  fixtureServer,
  INITIALIZE,
  rawPost,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';
import { startTestIdp, type TestIdp } from './helpers/oidc-provider.ts';
import { BearerWebSocketTransport, connectOver, refusedUpgrade, wsUrlOf } from './helpers/ws-client.ts';

const RECORDING_SERVER = fileURLToPath(new URL('./fixtures/recording-server.mjs', import.meta.url));

/** The parameters of a Bearer challenge: `error="x", scope="a b"` → { error: 'x', scope: 'a b' }. */
function challengeParams(header: string | null): Record<string, string> {
  assert.ok(header, 'a WWW-Authenticate header');
  assert.match(header, /^Bearer /);
  const params: Record<string, string> = {};
  for (const [, name, value] of header.matchAll(/([a-z_]+)="([^"]*)"/g)) params[name ?? ''] = value ?? '';
  return params;
}

/** An OidcVerifier's config as the schema fills it in, with no clock tolerance and no cooldown. */
const VERIFIER_DEFAULTS = {
  scopes: [],
  userClaim: 'sub',
  groupsClaim: 'groups',
  clockTolerance: 0,
  jwksCooldown: 0,
  jwksRefresh: 60_000,
  jwksMaxStale: 300_000,
};

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

describe('OAuth resource server (gateway)', () => {
  let idp: TestIdp;
  let gw: TestGateway;
  let echo: string;

  before(async () => {
    idp = await startTestIdp({ groups: { alice: ['design', '/staff', '..', '/.'] } });
    gw = await startGateway(
      {
        servers: {
          echo: fixtureServer(),
          admin: fixtureServer('well', { scopes: ['mcp:admin'] }),
          recording: { command: process.execPath, args: [RECORDING_SERVER] },
          design: fixtureServer('well', { allow: { groups: ['design'] } }),
        },
        auth: {
          apiKeys: { file: 'keys.yaml' },
          oidc: {
            issuer: idp.issuer,
            scopes: ['mcp'],
            userClaim: 'preferred_username',
            clockTolerance: '0s',
            jwksCooldown: '0s',
          },
        },
      },
      { users: ['carol'] },
    );
    echo = `${gw.url}/mcp/echo`;
  });
  after(async () => {
    await gw?.close();
    await idp?.close();
  });

  it('accepts a real access token for the endpoint and runs the backend as the token user', async () => {
    const tokens = await idp.authorize({ user: 'alice', resource: echo, scope: 'mcp' });
    const { client } = await connectClient(echo, tokens.access_token);
    try {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      assert.equal(textOf(result), 'alice');
    } finally {
      await client.close();
    }
  });

  it("accepts the same token on the server's WebSocket (/ws/<server>); the challenge names /mcp/<server>", async () => {
    const tokens = await idp.authorize({ user: 'alice', resource: echo, scope: 'mcp' });
    const { client, close } = await connectOver('ws', gw.url, 'echo', tokens.access_token);
    try {
      assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    } finally {
      await close();
    }
    const refused = await refusedUpgrade(wsUrlOf(gw.url, 'echo'));
    assert.equal(refused.status, 401);
    const params = challengeParams(String(refused.headers['www-authenticate']));
    assert.equal(params.resource_metadata, `${gw.url}/.well-known/oauth-protected-resource/mcp/echo`);
    // A token for another server's resource is refused here as on /mcp.
    const admin = await idp.authorize({
      user: 'alice',
      resource: `${gw.url}/mcp/admin`,
      scope: 'mcp mcp:admin',
    });
    assert.equal((await refusedUpgrade(wsUrlOf(gw.url, 'echo'), bearer(admin.access_token))).status, 401);
  });

  it('closes a WebSocket with 1008 when its access token expires (exp, no clock tolerance here)', async () => {
    const ttl = idp.settings.accessTokenTTL;
    idp.settings.accessTokenTTL = 4;
    let tokens: Awaited<ReturnType<TestIdp['authorize']>>;
    try {
      tokens = await idp.authorize({ user: 'alice', resource: echo, scope: 'mcp' });
    } finally {
      idp.settings.accessTokenTTL = ttl;
    }
    const exp = (
      JSON.parse(Buffer.from(tokens.access_token.split('.')[1] ?? '', 'base64url').toString()) as {
        exp: number;
      }
    ).exp;
    const transport = new BearerWebSocketTransport(wsUrlOf(gw.url, 'echo'), tokens.access_token);
    const client = new Client({ name: 'expiring-token', version: '1' });
    await client.connect(transport);
    assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    const closed = await Promise.race([
      transport.closed,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref()),
    ]);
    assert.ok(closed, 'the socket outlived its token');
    assert.ok(Date.now() >= exp * 1000, 'closed before the token expired');
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /credential expired/);
  });

  it('401 without a token: WWW-Authenticate names the resource metadata and the scope', async () => {
    const reply = await rawPost(echo, INITIALIZE);
    assert.equal(reply.status, 401);
    const params = challengeParams(reply.headers.get('www-authenticate'));
    assert.equal(params.resource_metadata, `${gw.url}/.well-known/oauth-protected-resource/mcp/echo`);
    assert.equal(params.scope, 'mcp');
    assert.equal(params.error, undefined, 'no error code when no token was sent (RFC 6750 §3.1)');
    const metadata = await fetch(params.resource_metadata ?? '');
    assert.equal(metadata.status, 200);
    assert.equal(metadata.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(await metadata.json(), {
      resource: echo,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp'],
      resource_name: 'mcp-relay: echo',
    });
  });

  it('serves protected resource metadata at the root and per path; other paths are 404', async () => {
    const root = await fetch(`${gw.url}/.well-known/oauth-protected-resource`);
    assert.equal(root.status, 200);
    const rootDoc = (await root.json()) as Record<string, unknown>;
    assert.equal(rootDoc.resource, gw.url);
    assert.deepEqual(rootDoc.authorization_servers, [idp.issuer]);
    const admin = (await (
      await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp/admin`)
    ).json()) as {
      resource: string;
      scopes_supported: string[];
    };
    assert.equal(admin.resource, `${gw.url}/mcp/admin`);
    assert.deepEqual(admin.scopes_supported, ['mcp:admin'], 'the per-server scopes replace the global ones');
    for (const path of ['/mcp/nope', '/mcp', '/other']) {
      const missing = await fetch(`${gw.url}/.well-known/oauth-protected-resource${path}`);
      assert.equal(missing.status, 404, path);
    }
  });

  it('401 invalid_token for a token issued for another resource (audience)', async () => {
    const tokens = await idp.authorize({
      user: 'alice',
      resource: `${gw.url}/mcp/admin`,
      scope: 'mcp mcp:admin',
    });
    const reply = await rawPost(echo, INITIALIZE, bearer(tokens.access_token));
    assert.equal(reply.status, 401);
    const params = challengeParams(reply.headers.get('www-authenticate'));
    assert.equal(params.error, 'invalid_token');
    assert.match(params.error_description ?? '', /another resource/);
    assert.match((reply.json as { error: { message: string } }).error.message, /audience/);
    const elsewhere = await idp.authorize({ user: 'alice', resource: 'https://other.example/mcp' });
    assert.equal((await rawPost(echo, INITIALIZE, bearer(elsewhere.access_token))).status, 401);
  });

  it('a token for the whole gateway (the root resource) is accepted by every server', async () => {
    const tokens = await idp.authorize({ user: 'alice', resource: gw.url, scope: 'mcp' });
    assert.equal((await rawPost(echo, INITIALIZE, bearer(tokens.access_token))).status, 200);
  });

  it('401 invalid_token for a token from another issuer, even one signed with the same key', async () => {
    const impostor = await startTestIdp({ keys: [...idp.keys] });
    try {
      const tokens = await impostor.authorize({ user: 'alice', resource: echo });
      const reply = await rawPost(echo, INITIALIZE, bearer(tokens.access_token));
      assert.equal(reply.status, 401);
      const params = challengeParams(reply.headers.get('www-authenticate'));
      assert.equal(params.error, 'invalid_token');
      assert.match(params.error_description ?? '', /another issuer/);
    } finally {
      await impostor.close();
    }
  });

  it('401 invalid_token once the token has expired', async () => {
    idp.settings.accessTokenTTL = 1;
    let tokens: { access_token: string };
    try {
      tokens = await idp.authorize({ user: 'alice', resource: echo });
    } finally {
      idp.settings.accessTokenTTL = 300;
    }
    // Issued with exp = iat + 1 s and no clock tolerance: expired within two seconds of issue.
    await sleep(2_100);
    const reply = await rawPost(echo, INITIALIZE, bearer(tokens.access_token));
    assert.equal(reply.status, 401);
    const params = challengeParams(reply.headers.get('www-authenticate'));
    assert.equal(params.error, 'invalid_token');
    assert.match(params.error_description ?? '', /expired/);
  });

  it('403 insufficient_scope when the token lacks a required scope, naming the scope', async () => {
    const adminUrl = `${gw.url}/mcp/admin`;
    const tokens = await idp.authorize({ user: 'alice', resource: adminUrl, scope: 'mcp' });
    const reply = await rawPost(adminUrl, INITIALIZE, bearer(tokens.access_token));
    assert.equal(reply.status, 403);
    const params = challengeParams(reply.headers.get('www-authenticate'));
    assert.equal(params.error, 'insufficient_scope');
    assert.equal(params.scope, 'mcp:admin');
    assert.equal(params.resource_metadata, `${gw.url}/.well-known/oauth-protected-resource/mcp/admin`);
    const upgraded = await idp.authorize({ user: 'alice', resource: adminUrl, scope: 'mcp:admin' });
    assert.equal((await rawPost(adminUrl, INITIALIZE, bearer(upgraded.access_token))).status, 200);
  });

  it('picks up a rotated signing key without a restart', async () => {
    const before = await idp.authorize({ user: 'alice', resource: echo });
    assert.equal((await rawPost(echo, INITIALIZE, bearer(before.access_token))).status, 200);
    await idp.rotateSigningKey();
    const after = await idp.authorize({ user: 'alice', resource: echo });
    const kid = (token: string) =>
      (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string }).kid;
    assert.notEqual(kid(after.access_token), kid(before.access_token), 'signed with the new key');
    assert.equal((await rawPost(echo, INITIALIZE, bearer(after.access_token))).status, 200);
    assert.equal(
      (await rawPost(echo, INITIALIZE, bearer(before.access_token))).status,
      200,
      'old key still published',
    );
  });

  it('401 invalid_token for a user claim made only of dots, which would reach backends as a path', async () => {
    for (const user of ['..', '.']) {
      const tokens = await idp.authorize({ user, resource: echo });
      const reply = await rawPost(echo, INITIALIZE, bearer(tokens.access_token));
      assert.equal(reply.status, 401, user);
      const params = challengeParams(reply.headers.get('www-authenticate'));
      assert.equal(params.error, 'invalid_token');
      assert.match(
        params.error_description ?? '',
        /preferred_username"? claim is not a user name \(1-64 letters, digits or \._@-, not only dots\)/,
      );
    }
  });

  it('refuses tampered and unsigned tokens', async () => {
    const tokens = await idp.authorize({ user: 'alice', resource: echo });
    const [header, payload, signature] = tokens.access_token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, preferred_username: 'mallory' })).toString(
      'base64url',
    );
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
    for (const token of [`${header}.${forged}.${signature}`, `${none}.${payload}.`, 'not.a.jwt', 'garbage']) {
      const reply = await rawPost(echo, INITIALIZE, bearer(token));
      assert.equal(reply.status, 401, token.slice(0, 20));
      assert.equal(challengeParams(reply.headers.get('www-authenticate')).error, 'invalid_token');
    }
  });

  it('API keys keep working alongside OAuth', async () => {
    const key = gw.keys.carol ?? '';
    const { client } = await connectClient(echo, key);
    try {
      assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'carol');
    } finally {
      await client.close();
    }
    const wrongKey = await rawPost(echo, INITIALIZE, bearer(`mcpr_${'x'.repeat(43)}`));
    assert.equal(wrongKey.status, 401);
    assert.match(
      challengeParams(wrongKey.headers.get('www-authenticate')).error_description ?? '',
      /API key/,
    );
  });

  it('never passes the user token to a backend (environment, arguments or messages)', async () => {
    const url = `${gw.url}/mcp/recording`;
    const tokens = await idp.authorize({ user: 'alice', resource: url });
    const { client } = await connectClient(url, tokens.access_token);
    try {
      const dump = textOf(await client.callTool({ name: 'dump', arguments: {} }));
      const { env, received } = JSON.parse(dump) as { env: Record<string, string>; received: string[] };
      assert.equal(env.MCP_RELAY_USER, 'alice');
      assert.ok(received.length >= 2, 'the backend saw the session messages');
      const signature = tokens.access_token.split('.')[2] ?? '';
      assert.ok(signature.length > 20);
      assert.ok(!dump.includes(signature), 'no part of the token reaches the backend');
      assert.ok(!/authorization|bearer/i.test(JSON.stringify(received)));
    } finally {
      await client.close();
    }
  });

  it("the token's groups feed the servers' allow lists", async () => {
    const url = `${gw.url}/mcp/design`;
    const alice = await idp.authorize({ user: 'alice', resource: url });
    assert.equal((await rawPost(url, INITIALIZE, bearer(alice.access_token))).status, 200);
    const bob = await idp.authorize({ user: 'bob', resource: url });
    assert.equal(
      (await rawPost(url, INITIALIZE, bearer(bob.access_token))).status,
      403,
      'bob is not in design',
    );
  });

  it('maps user and groups from configurable claims', async () => {
    const url = `${gw.url}/mcp/echo`;
    const tokens = await idp.authorize({ user: 'alice', resource: url });
    const audiences = new Set([url]);
    const base = { ...VERIFIER_DEFAULTS, issuer: idp.issuer };
    const byEmail = new OidcVerifier({ ...base, userClaim: 'email', groupsClaim: 'groups' }, silentLogger);
    const checked = await byEmail.verify(tokens.access_token, audiences);
    assert.ok(checked.ok);
    assert.equal(checked.principal.user, 'alice@example.test');
    assert.deepEqual(
      checked.principal.groups,
      ['design', 'staff'],
      'Keycloak-style /paths lose the slash; names made only of dots are no groups',
    );
    assert.deepEqual([...checked.principal.scopes], ['mcp']);
    const noClaim = new OidcVerifier({ ...base, userClaim: 'upn', groupsClaim: 'groups' }, silentLogger);
    const refused = await noClaim.verify(tokens.access_token, audiences);
    assert.ok(!refused.ok);
    assert.match(refused.description, /no "upn" claim/);
  });

  it('refuses an unverified email as the user name, so open sign-up cannot claim an existing user', async () => {
    // Only the boolean true counts as verified: not false, not the string "false", not a missing claim.
    const openIdp = await startTestIdp({
      emailVerified: { mallory: false, eve: 'false', trent: 'true', oscar: undefined },
    });
    try {
      const url = `${gw.url}/mcp/echo`;
      const audiences = new Set([url]);
      const byEmail = new OidcVerifier(
        { ...VERIFIER_DEFAULTS, issuer: openIdp.issuer, userClaim: 'email' },
        silentLogger,
      );
      for (const user of ['mallory', 'eve', 'trent', 'oscar']) {
        const tokens = await openIdp.authorize({ user, resource: url });
        const refused = await byEmail.verify(tokens.access_token, audiences);
        assert.ok(!refused.ok, user);
        assert.match(refused.description, /not verified/, user);
      }
      const alice = await openIdp.authorize({ user: 'alice', resource: url });
      const accepted = await byEmail.verify(alice.access_token, audiences);
      assert.ok(accepted.ok);
      assert.equal(accepted.principal.user, 'alice@example.test');
    } finally {
      await openIdp.close();
    }
  });
});

describe('OAuth resource server: the key set follows the provider', () => {
  const oidcGateway = (issuer: string, oidc: Record<string, unknown>) =>
    startGateway(
      { servers: { echo: fixtureServer() }, auth: { oidc: { issuer, ...oidc } } },
      { auth: false },
    );

  it('refuses a token signed with a key the provider removed once jwksRefresh has passed', async () => {
    const idp = await startTestIdp();
    // The default cooldown (30 s): only the refresh can notice the removal within this test.
    const gw = await oidcGateway(idp.issuer, { jwksRefresh: '1s' });
    try {
      const echo = `${gw.url}/mcp/echo`;
      const signedWithOld = await idp.authorize({ user: 'alice', resource: echo });
      assert.equal((await rawPost(echo, INITIALIZE, bearer(signedWithOld.access_token))).status, 200);
      await idp.rotateSigningKey({ retire: true });
      await sleep(1_100);
      const refused = await rawPost(echo, INITIALIZE, bearer(signedWithOld.access_token));
      assert.equal(refused.status, 401, 'the removed key no longer verifies');
      const params = challengeParams(refused.headers.get('www-authenticate'));
      assert.equal(params.error, 'invalid_token');
      assert.match(params.error_description ?? '', /unknown key/);
      const signedWithNew = await idp.authorize({ user: 'alice', resource: echo });
      assert.equal((await rawPost(echo, INITIALIZE, bearer(signedWithNew.access_token))).status, 200);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('fetches the key set once per jwksRefresh while tokens arrive, not per token', async () => {
    const idp = await startTestIdp();
    try {
      const resource = 'https://mcp.example.com/mcp/echo';
      const tokens = await idp.authorize({ user: 'alice', resource });
      const verifier = new OidcVerifier(
        { ...VERIFIER_DEFAULTS, issuer: idp.issuer, jwksCooldown: 60_000, jwksRefresh: 1_000 },
        silentLogger,
      );
      const verifyTimes = async (count: number) => {
        for (let i = 0; i < count; i++) {
          assert.ok((await verifier.verify(tokens.access_token, new Set([resource]))).ok);
        }
      };
      await verifyTimes(5);
      assert.equal(idp.jwksRequests, 1, 'one fetch for five tokens within the interval');
      await sleep(1_100);
      await verifyTimes(5);
      assert.equal(idp.jwksRequests, 2, 'one more fetch once the set was stale');
    } finally {
      await idp.close();
    }
  });

  it('while the provider is down, keeps its last keys for jwksMaxStale past jwksRefresh, then answers 503', async () => {
    const idp = await startTestIdp();
    const gw = await oidcGateway(idp.issuer, { jwksRefresh: '1s', jwksMaxStale: '2s' });
    try {
      const echo = `${gw.url}/mcp/echo`;
      const tokens = await idp.authorize({ user: 'alice', resource: echo });
      assert.equal((await rawPost(echo, INITIALIZE, bearer(tokens.access_token))).status, 200);
      await idp.close();
      await sleep(1_200);
      const stale = await rawPost(echo, INITIALIZE, bearer(tokens.access_token));
      assert.equal(stale.status, 200, 'stale keys stay in use for a while when they cannot be refreshed');
      // Now over 3 s (jwksRefresh + jwksMaxStale) since the keys were fetched.
      await sleep(2_000);
      const tooOld = await rawPost(echo, INITIALIZE, bearer(tokens.access_token));
      assert.equal(tooOld.status, 503, 'keys that old are not trusted any more');
      assert.equal(tooOld.headers.get('retry-after'), '5');
    } finally {
      await gw.close();
      await idp.close();
    }
  });
});

describe('OAuth resource server: configuration', () => {
  it('503 with Retry-After while the OpenID provider cannot be reached for keys', async () => {
    const idp = await startTestIdp();
    const issuerDown = idp.issuer;
    await idp.close();
    const gw = await startGateway(
      { servers: { echo: fixtureServer() }, auth: { oidc: { issuer: issuerDown } } },
      { auth: false },
    );
    try {
      const reply = await rawPost(`${gw.url}/mcp/echo`, INITIALIZE, bearer('eyJhbGciOiJSUzI1NiJ9.e30.c2ln'));
      assert.equal(reply.status, 503);
      assert.equal(reply.headers.get('retry-after'), '5');
    } finally {
      await gw.close();
    }
  });

  it('an explicit audience replaces the resource URL; publicUrl names the resource', async () => {
    const idp = await startTestIdp();
    const gw = await startGateway(
      {
        publicUrl: 'https://mcp.example.com',
        servers: { echo: fixtureServer() },
        auth: { oidc: { issuer: idp.issuer, audience: 'api://mcp-relay' } },
      },
      { auth: false },
    );
    try {
      const metadata = (await (
        await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp/echo`)
      ).json()) as {
        resource: string;
      };
      assert.equal(metadata.resource, 'https://mcp.example.com/mcp/echo');
      const forApi = await idp.authorize({ user: 'dave', resource: 'api://mcp-relay' });
      assert.equal(
        (await rawPost(`${gw.url}/mcp/echo`, INITIALIZE, bearer(forApi.access_token))).status,
        200,
      );
      const forUrl = await idp.authorize({ user: 'dave', resource: 'https://mcp.example.com/mcp/echo' });
      assert.equal(
        (await rawPost(`${gw.url}/mcp/echo`, INITIALIZE, bearer(forUrl.access_token))).status,
        401,
      );
      // With a single server, /mcp is the same server and its metadata exists too.
      const single = await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp`);
      assert.equal(((await single.json()) as { resource: string }).resource, 'https://mcp.example.com/mcp');
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('OAuth counts as authentication for listening beyond loopback, with a publicUrl', () => {
    const config = (auth: Record<string, unknown>, publicUrl?: string) =>
      buildConfig(
        {
          listen: { host: '0.0.0.0', port: 0 },
          ...(publicUrl ? { publicUrl } : {}),
          servers: { echo: fixtureServer() },
          auth,
        },
        '/tmp',
      );
    const oidc = { oidc: { issuer: 'https://idp.example.com' } };
    // createGateway checks these rules synchronously; nothing listens here.
    assert.throws(() => createGateway({ config: config({}), log: silentLogger }), /without authentication/);
    assert.throws(
      () => createGateway({ config: config(oidc), log: silentLogger }),
      /auth.oidc needs publicUrl/,
    );
    const gateway = createGateway({ config: config(oidc, 'https://mcp.example.com'), log: silentLogger });
    return gateway.close();
  });
});
