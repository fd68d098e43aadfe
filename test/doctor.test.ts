// `mcp-relay doctor <url>` as a colleague runs it (the CLI as a child process) against a real TLS
// gateway signed by an office CA: every step passes with the right flags; a wrong token, an untrusted
// certificate, an unreachable host and a refusing proxy each fail at their own step with a fix, and the
// steps after a failed network step are skipped.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { opensslDate, type TestCa, TestPki } from './helpers/certs.ts';
import { BRIDGE_BASE_ENV, type CliResult, runCli } from './helpers/cli.ts';
import { fixtureServer, startGateway, type TestGateway } from './helpers/gateway.ts';
import { startProxy } from './helpers/proxy.ts';

interface Step {
  step: string;
  status: string;
  detail: string;
  fix?: string;
}

function doctor(url: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(['doctor', url, ...args], { env: { ...BRIDGE_BASE_ENV, ...env } });
}

function stepsOf(result: CliResult): Step[] {
  return (JSON.parse(result.stdout) as { steps: Step[] }).steps;
}

function step(steps: Step[], name: string): Step {
  const found = steps.find((entry) => entry.step === name);
  assert.ok(found, `a ${name} step in ${JSON.stringify(steps)}`);
  return found;
}

describe('mcp-relay doctor', () => {
  const pki = new TestPki();
  let ca: TestCa;
  let gw: TestGateway;
  let url: string;

  before(async () => {
    ca = pki.createCa('office-ca');
    // Longer than a test certificate's usual day, so the doctor has no expiry to warn about.
    const server = pki.serverCert(ca, 'server', { endDate: opensslDate(Date.now() + 60 * 86_400_000) });
    gw = await startGateway(
      {
        listen: { host: '127.0.0.1', port: 0, tls: { cert: server.cert, key: server.key } },
        servers: { echo: fixtureServer() },
      },
      { users: ['alice'] },
    );
    url = `${gw.url}/mcp/echo`;
  });
  after(async () => {
    await gw.close();
    pki.close();
  });

  it('passes every step with the office CA and a valid key, one line each', async () => {
    const result = await doctor(url, ['--ca', ca.cert], { MCP_RELAY_TOKEN: gw.keys.alice ?? '' });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.trim().split('\n');
    for (const name of ['proxy', 'dns', 'tcp', 'tls', 'gateway', 'clock', 'auth', 'mcp'])
      assert.ok(
        lines.some((line) => new RegExp(`^  ok {4}${name}`).test(line)),
        `${name} ok in:\n${result.stdout}`,
      );
    assert.match(
      result.stdout,
      /issued by office-ca, valid until \d{4}-\d\d-\d\d \(\d+ days left\), trusted/,
    );
    assert.match(result.stdout, /tools\/list: \d+ tools \(echo/);
    assert.match(result.stdout, /All steps passed\./);
  });

  it('a wrong token fails at auth and says to ask for a new key', async () => {
    const result = await doctor(url, ['--ca', ca.cert, '--json'], { MCP_RELAY_TOKEN: 'mcpr_not-a-real-key' });
    assert.equal(result.code, 1);
    const steps = stepsOf(result);
    assert.equal(step(steps, 'tls').status, 'ok');
    const auth = step(steps, 'auth');
    assert.equal(auth.status, 'fail');
    assert.match(auth.detail, /rejected the token in MCP_RELAY_TOKEN/);
    assert.match(auth.fix ?? '', /new API key/);
    assert.equal(step(steps, 'mcp').status, 'skip');
    assert.ok(!result.stdout.includes('mcpr_not-a-real-key'), 'the token is never printed');
  });

  it('no token at all says which variable to set', async () => {
    const result = await doctor(url, ['--ca', ca.cert, '--json']);
    assert.equal(result.code, 1);
    assert.match(step(stepsOf(result), 'auth').detail, /MCP_RELAY_TOKEN is not set/);
  });

  it('an untrusted certificate fails at tls, naming --ca, and skips the rest', async () => {
    const result = await doctor(url, ['--json'], { MCP_RELAY_TOKEN: gw.keys.alice ?? '' });
    assert.equal(result.code, 1);
    const steps = stepsOf(result);
    const tls = step(steps, 'tls');
    assert.equal(tls.status, 'fail');
    assert.match(
      tls.detail,
      /not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/,
    );
    assert.match(tls.fix ?? '', /--ca/);
    for (const name of ['gateway', 'auth', 'mcp']) assert.equal(step(steps, name).status, 'skip', name);
  });

  it('an expired gateway certificate fails at tls and says it must be renewed on the server', async () => {
    const old = pki.serverCert(ca, 'expired', {
      startDate: opensslDate(Date.now() - 3 * 86_400_000),
      endDate: opensslDate(Date.now() - 86_400_000),
    });
    const stale = await startGateway(
      {
        listen: { host: '127.0.0.1', port: 0, tls: { cert: old.cert, key: old.key } },
        servers: { echo: fixtureServer() },
      },
      { users: ['alice'] },
    );
    try {
      const result = await doctor(`${stale.url}/mcp/echo`, ['--ca', ca.cert, '--json']);
      assert.equal(result.code, 1);
      const tls = step(stepsOf(result), 'tls');
      assert.equal(tls.status, 'fail');
      assert.match(tls.detail, /expired/);
      assert.match(tls.fix ?? '', /renewed on the server/);
    } finally {
      await stale.close();
    }
  });

  it('an unreachable host fails at tcp; an unknown name at dns', async () => {
    const closed = await doctor('https://127.0.0.1:9/mcp/echo', ['--json', '--timeout', '2s']);
    assert.equal(closed.code, 1);
    const tcp = step(stepsOf(closed), 'tcp');
    assert.equal(tcp.status, 'fail');
    assert.match(tcp.detail, /refused the connection/);
    assert.match(tcp.fix ?? '', /is the gateway running/);

    const unknown = await doctor('https://gateway.invalid/mcp/echo', ['--json', '--timeout', '3s']);
    assert.equal(unknown.code, 1);
    assert.equal(step(stepsOf(unknown), 'dns').status, 'fail');
  });

  it('through a proxy: the tunnel step passes, or a refusing proxy (407) says how to sign in to it', async () => {
    const proxy = await startProxy();
    const refusing = await startProxy({ refuse: true });
    try {
      const through = await doctor(url, ['--ca', ca.cert, '--json', '--proxy', proxy.url], {
        MCP_RELAY_TOKEN: gw.keys.alice ?? '',
      });
      assert.equal(through.code, 0, through.stdout + through.stderr);
      assert.equal(step(stepsOf(through), 'tunnel').status, 'ok');
      assert.ok(proxy.tunnels.length >= 2, 'the doctor and its HTTP steps both went through the proxy');

      const refused = await doctor(url, ['--ca', ca.cert, '--json', '--proxy', refusing.url], {
        MCP_RELAY_TOKEN: gw.keys.alice ?? '',
      });
      assert.equal(refused.code, 1);
      const tunnel = step(stepsOf(refused), 'tunnel');
      assert.equal(tunnel.status, 'fail');
      assert.match(tunnel.detail, /407/);
      assert.match(tunnel.fix ?? '', /user:password/);
    } finally {
      await proxy.close();
      await refusing.close();
    }
  });
});
