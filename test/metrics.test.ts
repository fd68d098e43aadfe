// /metrics against a real gateway with real backends: an admin's scrape after real calls shows the
// requests, latencies, sessions, backends (with their process's memory and CPU), restarts, refusals
// and failed sign-ins that happened, and nothing of another gateway in the same process; anyone else
// gets 401 or 403; the loopback metrics listener answers without a credential.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseExposition, type Sample, sampleValue } from './helpers/exposition.ts';
import { connectClient, fixtureServer, startGateway, type TestGateway } from './helpers/gateway.ts';
import { httpRequest, rawExchange } from './helpers/raw-http.ts';
import { startServe } from './helpers/serve.ts';

const TIMEOUT = { timeout: 60_000 };

async function scrape(gw: TestGateway, key: string | undefined): Promise<{ status: number; text: string }> {
  const response = await fetch(`${gw.url}/metrics`, {
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
  });
  return { status: response.status, text: await response.text() };
}

async function samples(gw: TestGateway, key: string): Promise<Sample[]> {
  const { status, text } = await scrape(gw, key);
  assert.equal(status, 200, text);
  return parseExposition(text);
}

/** Polls the metrics until `check` holds (a backend restart happens on its own time). */
async function eventually(
  gw: TestGateway,
  key: string,
  check: (all: Sample[]) => boolean,
): Promise<Sample[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const all = await samples(gw, key);
    if (check(all) || Date.now() > deadline) return all;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('/metrics', () => {
  it(
    'counts real calls, sessions, backends, restarts, refusals and failed sign-ins, for admins only',
    TIMEOUT,
    async () => {
      const gw = await startGateway(
        {
          servers: {
            a: fixtureServer('well', { tools: { deny: ['crash'] } }),
            b: fixtureServer('well', { isolation: 'shared', requestsPerMinute: 4 }),
          },
          admin: { groups: ['admins'], metrics: { listen: '127.0.0.1:0' } },
        },
        { users: ['alice', 'root'], groups: { root: ['admins', 'ops'] } },
      );
      // Another gateway in the same process: its metrics must not see the first one's traffic.
      const other = await startGateway(
        { servers: { a: fixtureServer('well') }, admin: { groups: ['admins'] } },
        { users: ['root'], groups: { root: ['admins'] } },
      );
      const clients: Array<{ close(): Promise<void> }> = [];
      try {
        const root = gw.keys.root as string;
        const alice = gw.keys.alice as string;
        const anonymous = await scrape(gw, undefined);
        assert.equal(anonymous.status, 401);
        assert.doesNotMatch(anonymous.text, /mcp_relay_/);
        const forbidden = await scrape(gw, alice);
        assert.equal(forbidden.status, 403, 'alice is in no admin group');
        assert.doesNotMatch(forbidden.text, /mcp_relay_/);
        assert.equal((await scrape(gw, 'mcpr_not-a-real-key')).status, 401);

        const before = await samples(gw, root);
        assert.equal(sampleValue(before, 'mcp_relay_sessions', { server: 'a' }), 0);
        assert.equal(
          sampleValue(before, 'mcp_relay_requests_total', { server: 'a', method: 'tools/call' }),
          undefined,
        );

        const { client } = await connectClient(`${gw.url}/mcp/a`, alice);
        clients.push(client);
        for (let i = 0; i < 3; i++) await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } });
        await client.callTool({ name: 'nope', arguments: {} }).catch(() => undefined);
        // Denied by policy: refused at the gate, never reaching the backend.
        await client.callTool({ name: 'crash', arguments: {} }).catch(() => undefined);

        const { client: shared } = await connectClient(`${gw.url}/mcp/b`, alice);
        clients.push(shared);
        // The shared backend crashes and is restarted by its supervisor.
        await shared.callTool({ name: 'crash', arguments: {} }).catch(() => undefined);
        // b allows 4 requests a minute from everyone: initialize, tools/call(crash), then these.
        const limited: unknown[] = [];
        for (let i = 0; i < 3; i++) {
          limited.push(
            await shared.callTool({ name: 'echo', arguments: { text: 'x' } }).catch((error) => error),
          );
        }
        assert.ok(
          limited.some((result) => result instanceof Error),
          'b refused a call over its rate limit',
        );

        const after = await eventually(
          gw,
          root,
          (all) =>
            (sampleValue(all, 'mcp_relay_backend_events_total', { server: 'b', event: 'restart' }) ?? 0) >= 1,
        );
        const calls = (outcome: string) =>
          sampleValue(after, 'mcp_relay_requests_total', { server: 'a', method: 'tools/call', outcome });
        assert.equal(calls('ok'), 3);
        assert.equal(calls('error'), 1, 'the unknown tool');
        assert.equal(
          sampleValue(after, 'mcp_relay_requests_total', {
            server: 'a',
            method: 'initialize',
            outcome: 'ok',
          }),
          1,
        );
        assert.equal(
          sampleValue(after, 'mcp_relay_request_duration_seconds_count', {
            server: 'a',
            method: 'tools/call',
          }),
          4,
        );
        const seconds = sampleValue(after, 'mcp_relay_request_duration_seconds_sum', {
          server: 'a',
          method: 'tools/call',
        });
        assert.ok(seconds !== undefined && seconds > 0 && seconds < 30, `latency sum ${seconds}`);
        assert.equal(
          sampleValue(after, 'mcp_relay_request_duration_seconds_bucket', {
            server: 'a',
            method: 'tools/call',
            le: '+Inf',
          }),
          4,
        );
        assert.equal(
          sampleValue(after, 'mcp_relay_refusals_total', { server: 'a', reason: 'policy', status: 'none' }),
          1,
        );
        assert.ok(
          (sampleValue(after, 'mcp_relay_refusals_total', {
            server: 'b',
            reason: 'rate_limit',
            status: '429',
          }) ?? 0) >= 1,
        );
        assert.equal(sampleValue(after, 'mcp_relay_sessions', { server: 'a' }), 1);
        assert.equal(sampleValue(after, 'mcp_relay_sessions', { server: 'b' }), 1);
        assert.equal(sampleValue(after, 'mcp_relay_sessions_opened_total', { server: 'a' }), 1);
        assert.equal(sampleValue(after, 'mcp_relay_backends', { server: 'a' }), 1);
        assert.equal(sampleValue(after, 'mcp_relay_server_healthy', { server: 'a' }), 1);
        assert.equal(
          sampleValue(after, 'mcp_relay_backend_events_total', { server: 'a', event: 'first' }),
          1,
        );
        assert.equal(sampleValue(after, 'mcp_relay_backend_events_total', { server: 'b', event: 'down' }), 1);
        assert.equal(
          sampleValue(after, 'mcp_relay_backend_events_total', { server: 'b', event: 'restart' }),
          1,
        );
        // The backend is a real node process: tens of MiB resident, some CPU time spent starting.
        const rss = sampleValue(after, 'mcp_relay_backend_resident_memory_bytes', { server: 'a' }) ?? 0;
        assert.ok(rss > 5 * 1_048_576 && rss < 2_000 * 1_048_576, `backend RSS ${rss}`);
        const cpu = sampleValue(after, 'mcp_relay_backend_cpu_seconds_total', { server: 'a' }) ?? 0;
        assert.ok(cpu > 0 && cpu < 60, `backend CPU ${cpu}`);
        assert.ok(
          (sampleValue(after, 'mcp_relay_auth_failures_total', { reason: 'missing', status: '401' }) ?? 0) >=
            1,
        );
        assert.ok(
          (sampleValue(after, 'mcp_relay_auth_failures_total', { reason: 'invalid', status: '401' }) ?? 0) >=
            1,
        );
        // The gateway's own process, from prom-client's default metrics on this registry.
        assert.ok((sampleValue(after, 'mcp_relay_process_resident_memory_bytes') ?? 0) > 10 * 1_048_576);
        assert.ok(sampleValue(after, 'mcp_relay_nodejs_eventloop_lag_seconds') !== undefined);
        assert.ok((sampleValue(after, 'mcp_relay_process_cpu_seconds_total') ?? 0) > 0);
        // No user is ever a label.
        assert.ok(after.every((sample) => !Object.values(sample.labels).includes('alice')));
        assert.ok(after.every((sample) => sample.labels.user === undefined));

        // The other gateway saw none of it.
        const elsewhere = await samples(other, other.keys.root as string);
        assert.equal(
          sampleValue(elsewhere, 'mcp_relay_requests_total', {
            server: 'a',
            method: 'tools/call',
            outcome: 'ok',
          }),
          undefined,
        );
        assert.equal(sampleValue(elsewhere, 'mcp_relay_sessions', { server: 'a' }), 0);
        assert.equal(
          sampleValue(elsewhere, 'mcp_relay_auth_failures_total', { reason: 'missing', status: '401' }),
          undefined,
        );

        // The loopback listener: no credential needed, /metrics only, loopback host names only.
        const local = gw.gateway.metricsUrl;
        assert.ok(local?.startsWith('http://127.0.0.1:'), local);
        const open = await fetch(`${local}/metrics`);
        assert.equal(open.status, 200);
        assert.match(open.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        const openSamples = parseExposition(await open.text());
        assert.equal(
          sampleValue(openSamples, 'mcp_relay_requests_total', {
            server: 'a',
            method: 'tools/call',
            outcome: 'ok',
          }),
          3,
        );
        assert.equal((await fetch(`${local}/admin/api/status`)).status, 404);
        // A web page reaching it through DNS rebinding names its own host.
        const rebound = await rawExchange(
          Number(new URL(local as string).port),
          httpRequest('GET', '/metrics', [
            ['Host', 'attacker.example'],
            ['Connection', 'close'],
          ]),
        );
        assert.equal(rebound.status, 421);
        assert.doesNotMatch(rebound.body, /mcp_relay_/);
      } finally {
        for (const client of clients) await client.close().catch(() => undefined);
        await gw.close();
        await other.close();
      }
    },
  );

  it('runs in `mcp-relay serve` from a config file, with its loopback listener', TIMEOUT, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-metrics-'));
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        servers: { a: fixtureServer('well') },
        admin: { groups: ['admins'], metrics: { listen: '127.0.0.1:0' } },
      }),
    );
    const serve = await startServe(file);
    try {
      const local = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(serve.stderr())?.[1];
      assert.ok(local, serve.stderr());
      const response = await fetch(local);
      assert.equal(response.status, 200);
      const all = parseExposition(await response.text());
      assert.equal(sampleValue(all, 'mcp_relay_sessions', { server: 'a' }), 0);
      assert.equal(sampleValue(all, 'mcp_relay_server_healthy', { server: 'a' }), 1);
      // The main listener has no authentication here: everyone is user "local", in no admin group.
      assert.equal((await fetch(`${serve.url}/metrics`)).status, 403);
    } finally {
      await serve.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not exist without an admin section', TIMEOUT, async () => {
    const gw = await startGateway(
      { servers: { a: fixtureServer('well') } },
      { users: ['root'], groups: { root: ['admins'] } },
    );
    try {
      const response = await fetch(`${gw.url}/metrics`, {
        headers: { authorization: `Bearer ${gw.keys.root}` },
      });
      assert.equal(response.status, 404);
      assert.equal(gw.gateway.metricsUrl, undefined);
    } finally {
      await gw.close();
    }
  });
});
