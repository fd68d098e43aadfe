// Day 2 of running mcp-relay for an office, played end to end with the real parts: a TLS gateway signed
// by an office CA with an admin section; alice and bob work through `mcp-relay connect --ca` (as their
// Claude Desktop runs it). The admin watches /admin/ in Chromium (a screenshot) and /metrics (scraped
// and parsed), updates the server's code with `backends restart` while calls are in flight (none
// fails), and revokes bob by name (his session ends at once). On a colleague's PC, `doctor` explains a
// revoked token, an untrusted certificate and an unreachable host.

import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Browser } from 'playwright-core';
import { Agent, fetch as undiciFetch } from 'undici';
import type { StatusReport } from '../src/admin/status.ts';
import { launchChromium } from './helpers/browser.ts';
import { opensslDate, type TestCa, TestPki } from './helpers/certs.ts';
import { BRIDGE_BASE_ENV, type Bridged, connectThroughBridge, runCli } from './helpers/cli.ts';
import { parseExposition, sampleValue } from './helpers/exposition.ts';
import { FIXTURE_SERVER, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const TIMEOUT = { timeout: 120_000 };

describe('day 2: seeing and operating what runs', () => {
  const pki = new TestPki();
  let ca: TestCa;
  let gw: TestGateway;
  let url: string;
  let trust: Agent;
  let browser: Browser;
  const bridges: Bridged[] = [];
  let alice: Client;
  let bob: Client;

  /** The admin API with root's key, trusting the office CA. */
  const asAdmin = (path: string, init: { method?: string } = {}) =>
    undiciFetch(`${gw.url}${path}`, {
      ...init,
      dispatcher: trust,
      headers: { authorization: `Bearer ${gw.keys.root}` },
    });

  before(async () => {
    ca = pki.createCa('office-ca');
    const server = pki.serverCert(ca, 'relay', { endDate: opensslDate(Date.now() + 60 * 86_400_000) });
    gw = await startGateway(
      {
        listen: { host: '127.0.0.1', port: 0, tls: { cert: server.cert, key: server.key } },
        servers: {
          s: {
            command: process.execPath,
            args: ['server.mjs', 'well'],
            isolation: 'shared',
            drainTimeout: '20s',
          },
        },
        admin: { groups: ['ops'] },
      },
      { users: ['root', 'alice', 'bob'], groups: { root: ['ops'] } },
    );
    // The server's code, in a file the admin can update.
    copyFileSync(FIXTURE_SERVER, join(gw.dir, 'server.mjs'));
    url = `${gw.url}/mcp/s`;
    trust = new Agent({ connect: { ca: readFileSync(ca.cert) } });
    browser = await launchChromium();
    for (const user of ['alice', 'bob']) {
      const bridged = await connectThroughBridge(url, {
        args: ['--ca', ca.cert],
        env: { MCP_RELAY_TOKEN: gw.keys[user] ?? '' },
      });
      bridges.push(bridged);
    }
    [alice, bob] = bridges.map((bridged) => bridged.client) as [Client, Client];
  });

  after(async () => {
    for (const bridged of bridges) await bridged.close().catch(() => undefined);
    await browser?.close();
    await trust?.close();
    await gw?.close();
    pki.close();
  });

  it('the admin sees alice and bob on /admin/ (Chromium) and their calls in /metrics', TIMEOUT, async (t) => {
    for (const client of [alice, bob])
      for (let i = 0; i < 3; i++) await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } });

    const link = await asAdmin('/admin/link', { method: 'POST' });
    assert.equal(link.status, 200);
    const { url: signIn } = (await link.json()) as { url: string };
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1200, height: 900 },
    });
    try {
      const page = await context.newPage();
      assert.equal((await page.goto(signIn))?.status(), 200);
      // A locator, not waitForFunction: that evaluates its predicate with eval in the page, which the
      // page's CSP (script-src 'self', no 'unsafe-eval') can refuse: CI saw an EvalError there.
      await page.locator('#sessions tbody tr:not(.empty)').nth(1).waitFor();
      assert.equal(await page.locator('#sessions tbody tr:not(.empty)').count(), 2);
      const users = await page.$$eval('#sessions tbody tr', (rows) =>
        rows.map((row) => row.querySelector('td')?.textContent ?? ''),
      );
      assert.deepEqual(users.sort(), ['alice', 'bob']);
      const shot = join(gw.dir, 'admin.png');
      await page.screenshot({ path: shot, fullPage: true });
      const png = readFileSync(shot);
      assert.equal(png.subarray(1, 4).toString(), 'PNG');
      assert.ok(statSync(shot).size > 20_000, 'a page with content, not a blank');
      t.diagnostic(`admin page screenshot: ${shot} (${png.length} bytes)`);
    } finally {
      await context.close();
    }

    const scraped = await asAdmin('/metrics');
    assert.equal(scraped.status, 200);
    const samples = parseExposition(await scraped.text());
    const ok = sampleValue(samples, 'mcp_relay_requests_total', {
      server: 's',
      method: 'tools/call',
      outcome: 'ok',
    });
    assert.ok((ok ?? 0) >= 6, `6 tool calls counted, got ${ok}`);
    assert.equal(sampleValue(samples, 'mcp_relay_sessions', { server: 's' }), 2);
  });

  it(
    'the admin updates the server code with calls in flight: a new pid, no call fails',
    TIMEOUT,
    async () => {
      const pid = textOf(await alice.callTool({ name: 'pid', arguments: {} }));
      const inFlight = [alice, bob, alice].map((client) =>
        client.callTool({ name: 'sleep', arguments: { ms: 1_500 } }),
      );
      let stop = false;
      const steady = (async () => {
        const results = [];
        while (!stop) results.push(await bob.callTool({ name: 'echo', arguments: { text: 'steady' } }));
        return results;
      })();
      appendFileSync(join(gw.dir, 'server.mjs'), '\n// version 2\n');
      const restart = await runCli(['backends', 'restart', 's', '--url', gw.url, '--ca', ca.cert], {
        env: { ...BRIDGE_BASE_ENV, MCP_RELAY_TOKEN: gw.keys.root ?? '' },
      });
      stop = true;
      assert.equal(restart.code, 0, restart.stdout + restart.stderr);
      assert.match(restart.stdout, /restarted, pid \d+ → \d+/);
      const results = [...(await Promise.all(inFlight)), ...(await steady)];
      assert.ok(results.length >= 4);
      assert.deepEqual(
        results.filter((result) => result.isError === true).map((result) => textOf(result)),
        [],
        'no call failed',
      );
      assert.notEqual(textOf(await alice.callTool({ name: 'pid', arguments: {} })), pid);
    },
  );

  it("the admin revokes bob by name: his session ends at once, alice's goes on", TIMEOUT, async () => {
    const revoked = await runCli(['keys', 'revoke', 'bob', '--yes', '--keys-file', gw.keysFile]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await eventually(
      async () => {
        const status = (await (await asAdmin('/admin/api/status')).json()) as StatusReport;
        return status.sessions.every((session) => session.user !== 'bob');
      },
      "bob's session gone from the admin status",
      5_000,
    );
    const refused = await bob.callTool({ name: 'echo', arguments: { text: 'after' } }).then(
      (result) => (result.isError ? textOf(result) : undefined),
      (error: Error) => error.message,
    );
    assert.match(refused ?? 'answered', /rejected the token|401|unknown, revoked or expired/);
    assert.equal(textOf(await alice.callTool({ name: 'echo', arguments: { text: 'still' } })), 'still');
  });

  it(
    "doctor on a colleague's PC explains a revoked key, an untrusted certificate and an unreachable host",
    TIMEOUT,
    async () => {
      const doctor = async (target: string, args: string[], token: string) => {
        const result = await runCli(['doctor', target, '--json', '--timeout', '3s', ...args], {
          env: { ...BRIDGE_BASE_ENV, MCP_RELAY_TOKEN: token },
        });
        assert.equal(result.code, 1, result.stdout + result.stderr);
        return (JSON.parse(result.stdout) as { steps: Array<{ step: string; status: string; fix?: string }> })
          .steps;
      };
      const failed = (steps: Array<{ step: string; status: string; fix?: string }>) =>
        steps.find((step) => step.status === 'fail');

      const revoked = failed(await doctor(url, ['--ca', ca.cert], gw.keys.bob ?? ''));
      assert.equal(revoked?.step, 'auth');
      assert.match(revoked?.fix ?? '', /new API key/);

      const untrusted = failed(await doctor(url, [], gw.keys.alice ?? ''));
      assert.equal(untrusted?.step, 'tls');
      assert.match(untrusted?.fix ?? '', /--ca/);

      const unreachable = failed(await doctor('https://127.0.0.1:9/mcp/s', [], gw.keys.alice ?? ''));
      assert.equal(unreachable?.step, 'tcp');
      assert.match(unreachable?.fix ?? '', /is the gateway running/);
    },
  );
});
