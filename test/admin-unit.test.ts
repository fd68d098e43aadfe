// The pure parts behind /metrics and the admin page: the admin config (loopback only, and a parsed
// config that parses again, as a reload does), /proc parsing, the activity kept per user and per
// second (bounded), and the terminal status, which keeps client-chosen names to one harmless line.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatusReport } from '../src/admin/status.ts';
import { statusText } from '../src/cli/status-text.ts';
import { buildConfig } from '../src/config/load.ts';
import { configSchema } from '../src/config/schema.ts';
import { Activity, HISTORY_SECONDS } from '../src/observe/activity.ts';
import {
  type EventOwner,
  publishRequestRefused,
  publishRequestSettled,
  watchRequest,
} from '../src/observe/events.ts';
import { cpuSecondsOf, processUsage, rssBytesOf } from '../src/observe/proc-stats.ts';

const servers = { a: { command: 'node' } };
const identity = { user: 'alice', groups: [], method: 'api-key', credential: 'key:1' };

describe('admin config', () => {
  it('takes groups and a loopback metrics listener, and parses its own output again (reload)', () => {
    const config = buildConfig({ servers, admin: { groups: ['admins'], metrics: { listen: '[::1]:9464' } } });
    assert.deepEqual(config.admin, { groups: ['admins'], metrics: { listen: '[::1]:9464' } });
    assert.deepEqual(configSchema.parse(config).admin, config.admin);
    assert.equal(buildConfig({ servers }).admin, undefined);
  });

  it('refuses a metrics listener beyond loopback, a malformed address and no groups', () => {
    assert.throws(
      () => buildConfig({ servers, admin: { groups: ['a'], metrics: { listen: '0.0.0.0:9464' } } }),
      /not a loopback address/,
    );
    assert.throws(
      () => buildConfig({ servers, admin: { groups: ['a'], metrics: { listen: '127.0.0.1' } } }),
      /not host:port/,
    );
    assert.throws(() => buildConfig({ servers, admin: { groups: [] } }), /admin\.groups/);
  });
});

describe('/proc readings', () => {
  it('counts stat fields after the last parenthesis, whatever the command name holds', () => {
    const fields = Array.from({ length: 40 }, (_, i) => String(i + 3));
    fields[11] = '250'; // utime (field 14)
    fields[12] = '50'; // stime (field 15)
    assert.equal(cpuSecondsOf(`1234 (we ird) (name)) ${fields.join(' ')}`), 3);
    assert.equal(cpuSecondsOf('garbage'), undefined);
    assert.equal(rssBytesOf('Name:\tnode\nVmRSS:\t   51200 kB\nVmSwap:\t0 kB\n'), 51_200 * 1024);
    assert.equal(rssBytesOf('Name:\tzombie\n'), undefined);
  });

  it('reads this process, and nothing for a pid that is not there', async () => {
    const own = await processUsage(process.pid);
    if (process.platform === 'linux') {
      assert.ok(own && own.rssBytes > 1_048_576 && own.cpuSeconds > 0, JSON.stringify(own));
    }
    assert.equal(await processUsage(2 ** 22 + 7), undefined);
    assert.equal(await processUsage(-1), undefined);
  });
});

describe('activity', () => {
  const settle = (owner: EventOwner, user: string, ok: boolean) => {
    const request = { jsonrpc: '2.0' as const, id: 1, method: 'tools/call', params: { name: 'echo' } };
    const watch = watchRequest(request);
    assert.ok(watch, 'a subscriber is listening');
    const response = ok
      ? { jsonrpc: '2.0' as const, id: 1, result: {} }
      : { jsonrpc: '2.0' as const, id: 1, error: { code: -1, message: 'no' } };
    publishRequestSettled(
      owner,
      { id: 's', server: 'a', identity: { ...identity, user } },
      watch,
      response,
      'response',
    );
  };

  it("counts its own gateway's calls and errors per user and per second, and keeps refusals bounded", () => {
    const owner = Symbol('mine');
    let now = 1_800_000_000_000;
    const activity = new Activity(owner, () => now);
    try {
      settle(owner, 'alice', true);
      settle(owner, 'alice', false);
      settle(owner, 'bob', true);
      settle(Symbol('other gateway'), 'carol', true);
      now += 2_000;
      settle(owner, 'alice', true);
      for (let i = 0; i < 60; i++) {
        publishRequestRefused(
          owner,
          { id: 's', server: 'a', identity },
          { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'x'.repeat(500) } },
          { code: -32003, message: `refusal ${i}`, status: 429 },
          performance.now(),
        );
      }
      const report = activity.report();
      const alice = report.users.find((user) => user.user === 'alice');
      assert.deepEqual([alice?.calls, alice?.errors], [3, 1]);
      assert.equal(alice?.callsPerSecond, 3 / 60);
      assert.equal(report.users.length, 2, 'carol called another gateway');
      assert.equal(report.history.calls.length, HISTORY_SECONDS);
      assert.deepEqual(report.history.calls.slice(-3), [3, 0, 1]);
      assert.deepEqual(report.history.errors.slice(-3), [1, 0, 0]);
      assert.equal(report.refusals.length, 50);
      assert.equal(report.refusals[0]?.reason, 'refusal 59', 'newest first');
      assert.ok((report.refusals[0]?.name?.length ?? 0) <= 121, 'names are bounded');
      // Five minutes later the chart has moved on and the per-minute rate is back to zero.
      now += HISTORY_SECONDS * 1000;
      const later = activity.report();
      assert.ok(later.history.calls.every((count) => count === 0));
      assert.equal(later.users.find((user) => user.user === 'alice')?.callsPerSecond, 0);
      assert.equal(later.users.find((user) => user.user === 'alice')?.calls, 3);
    } finally {
      activity.close();
    }
  });
});

describe('mcp-relay status text', () => {
  it('prints sessions, users and backends, with client-chosen names on one harmless line', () => {
    const now = 1_800_000_000_000;
    const status: StatusReport = {
      version: '9.9.9',
      now,
      startedAt: now - 3_600_000,
      sessions: [
        {
          id: 'abcdef01',
          server: 'a',
          user: 'alice',
          auth: 'api-key',
          clientName: 'evil\u001b[2J\nclient',
          clientVersion: '1',
          address: '10.0.0.7',
          since: now - 65_000,
          lastActivity: now,
          inFlight: 0,
          requests: 4,
        },
      ],
      backends: [
        {
          server: 'a',
          user: 'alice',
          isolation: 'per-user',
          pid: 4242,
          state: 'running',
          healthy: true,
          startedAt: now - 120_000,
          restarts: 1,
          sessions: 1,
          cpuSeconds: 1.5,
          rssBytes: 50 * 1_048_576,
        },
      ],
      servers: { a: { backends: 1, sessions: 1, healthy: true, unresponsive: 0, hangs: 0 } },
      appWebSockets: undefined,
      users: [
        {
          user: 'alice',
          calls: 3,
          errors: 1,
          callsPerSecond: 0.05,
          errorsPerSecond: 0,
          lastCall: now - 1_000,
        },
      ],
      history: { endsAt: now, calls: [0, 3], errors: [0, 1] },
      refusals: [],
      authFailures: { missing: 2 },
    };
    const text = statusText(status);
    assert.match(text, /^mcp-relay 9\.9\.9, up 1h 0m: 1 sessions, 1 backends/);
    assert.match(text, /alice\s+a\s+evil \[2J client 1\s+10\.0\.0\.7\s+1m 5s ago\s+4\s+0\s+abcdef01/);
    assert.match(text, /a\s+alice\s+4242\s+running\s+healthy\s+1\.50s\s+50\.0 MiB\s+2m 0s\s+1\s+1/);
    assert.match(text, /Failed sign-ins since start: missing 2/);
    assert.ok(!text.includes('\u001b'), 'no escape character reaches the terminal');
  });
});
