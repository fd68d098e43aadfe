// identify(): the one decision on who is calling — socket caller, client certificate, token — in
// process, with a fake TLS peer and a recording token authenticator.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthRequest, AuthResult } from '../src/auth/authenticate.ts';
import {
  CLIENT_CERT_CHALLENGE,
  ClientCertificates,
  type PeerCertificateLike,
} from '../src/auth/client-cert.ts';
import { type Caller, identifier } from '../src/auth/identify.ts';
import { buildConfig } from '../src/config/load.ts';

const servers = { s: { command: 'true' } };
const tls = { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem', clientCa: '/nonexistent/ca.pem' };

/** Client certificates alone (required) or beside API keys (optional). */
function certificates(withKeys: boolean): ClientCertificates {
  return new ClientCertificates(
    buildConfig({
      listen: { host: '127.0.0.1', port: 0, tls },
      servers,
      ...(withKeys ? { auth: { apiKeys: { file: '/nonexistent/keys.yaml' } } } : {}),
    }),
  );
}

/** A token authenticator that accepts "Bearer good" as bob and records what it was asked. */
function tokens() {
  const asked: AuthRequest[] = [];
  return {
    asked,
    async authenticate(request: AuthRequest): Promise<AuthResult> {
      asked.push(request);
      return request.authorization === 'Bearer good'
        ? { ok: true, identity: { user: 'bob', groups: [], method: 'api-key', credential: 'key:1' } }
        : { ok: false, status: 401, message: 'bad token', headers: { 'www-authenticate': 'Bearer' } };
    },
  };
}

function peer(authorized: boolean, cert: PeerCertificateLike | null, error?: string) {
  return { authorized, authorizationError: error ?? null, getPeerCertificate: () => cert };
}

function caller(overrides: Partial<Caller>): Caller {
  return {
    viaSocket: false,
    headers: {},
    peer: undefined,
    authorization: undefined,
    server: 's',
    path: '/mcp/s',
    ...overrides,
  };
}

const CAROL = { subject: { CN: 'carol', OU: ['ops', 'ops'] }, fingerprint256: 'AA:BB' };

describe('identify', () => {
  it('takes the user a socket request names, and never asks the certificate or the token', async () => {
    const token = tokens();
    const identify = identifier({ certificates: certificates(false), tokens: token });
    const result = identify(
      caller({
        viaSocket: true,
        headers: { 'mcp-relay-user': 'alice', 'mcp-relay-groups': 'dev, ops' },
        peer: peer(false, CAROL),
        authorization: 'Bearer good',
      }),
    );
    assert.ok(!(result instanceof Promise), 'a socket caller is decided without waiting');
    assert.deepEqual(result, {
      ok: true,
      identity: { user: 'alice', groups: ['dev', 'ops'], method: 'ssh', credential: 'ssh-socket' },
    });
    assert.equal(token.asked.length, 0);
  });

  it('refuses a socket request that names no valid user with 401', async () => {
    const identify = identifier({ tokens: tokens() });
    for (const headers of [{}, { 'mcp-relay-user': '../root' }, { 'mcp-relay-user': ['a', 'b'] }]) {
      const result = await identify(caller({ viaSocket: true, headers }));
      assert.equal(result.ok, false);
      assert.ok(!result.ok);
      assert.equal(result.status, 401);
      assert.match(result.message, /the gateway socket needs a valid mcp-relay-user header/);
    }
  });

  it('ignores socket headers on a request that did not come in on the socket', async () => {
    const token = tokens();
    const identify = identifier({ tokens: token });
    const result = await identify(caller({ headers: { 'mcp-relay-user': 'alice' } }));
    assert.equal(result.ok, false);
    assert.equal(token.asked.length, 1);
  });

  it('takes the user a trusted client certificate names', () => {
    const identify = identifier({ certificates: certificates(false), tokens: tokens() });
    const result = identify(caller({ peer: peer(true, CAROL) }));
    assert.deepEqual(result, {
      ok: true,
      identity: { user: 'carol', groups: ['ops'], method: 'mtls', credential: 'cert:AA:BB' },
    });
  });

  it('refuses an untrusted certificate, and a missing one when certificates are required, with the challenge', () => {
    const identify = identifier({ certificates: certificates(true), tokens: tokens() });
    const untrusted = identify(
      caller({ peer: peer(false, CAROL, 'CERT_HAS_EXPIRED'), authorization: 'Bearer good' }),
    );
    assert.deepEqual(untrusted, {
      ok: false,
      status: 401,
      message: 'client certificate not accepted (CERT_HAS_EXPIRED)',
      headers: { 'www-authenticate': CLIENT_CERT_CHALLENGE },
      reason: 'certificate',
    });
    const required = identifier({ certificates: certificates(false), tokens: tokens() });
    const missing = required(caller({ peer: peer(false, {}) }));
    assert.ok(!(missing instanceof Promise) && !missing.ok);
    assert.equal(missing.message, 'client certificate required');
    assert.equal(missing.headers['www-authenticate'], CLIENT_CERT_CHALLENGE);
  });

  it('lets the token decide when a trusted certificate comes with Authorization and tokens are configured', async () => {
    const token = tokens();
    const identify = identifier({ certificates: certificates(true), tokens: token });
    const result = await identify(caller({ peer: peer(true, CAROL), authorization: 'Bearer good' }));
    assert.equal(result.ok && result.identity.user, 'bob');
    assert.equal(token.asked[0]?.server, 's');
    assert.equal(token.asked[0]?.path, '/mcp/s');
  });

  it('asks the token authenticator when no certificate decides, and passes its refusal on unchanged', async () => {
    const token = tokens();
    const identify = identifier({ certificates: certificates(true), tokens: token });
    // A plain (non-TLS) connection has no certificate; optional certificates let the token decide.
    const plain = await identify(caller({ peer: {}, authorization: 'Bearer bad' }));
    assert.deepEqual(plain, {
      ok: false,
      status: 401,
      message: 'bad token',
      headers: { 'www-authenticate': 'Bearer' },
    });
    const absent = await identify(caller({ peer: peer(false, null), authorization: 'Bearer good' }));
    assert.equal(absent.ok && absent.identity.user, 'bob');
  });
});
