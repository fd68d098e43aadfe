// Live config reload of a running gateway: policy, limits and origins change within seconds without
// dropping other users' sessions; invalid edits keep the running config; restart-only changes are
// reported; revoked keys stop working; `serve` reloads on SIGHUP.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createKey, revokeKey } from '../src/auth/key-admin.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { ConfigReloader } from '../src/config/reload.ts';
import { createGateway, type Gateway } from '../src/gateway/create-gateway.ts';
import { connectClient, FIXTURE_SERVER, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { eventually } from './helpers/wait.ts';

const TIMEOUT = { timeout: 60_000 };
const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));

/** relay.yaml for the fixture backend as one shared server `team`, with `extra` lines appended to it. */
function configText(options: { team?: string; top?: string } = {}): string {
  return [
    'listen: { host: 127.0.0.1, port: 0 }',
    'auth: { apiKeys: { file: keys.yaml } }',
    'servers:',
    '  team:',
    `    command: ${JSON.stringify(process.execPath)}`,
    `    args: [${JSON.stringify(FIXTURE_SERVER)}]`,
    '    isolation: shared',
    ...(options.team ?? '')
      .split('\n')
      .filter(Boolean)
      .map((line) => `    ${line}`),
    options.top ?? '',
    '',
  ].join('\n');
}

function ping(id: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });
}

describe('live config reload', () => {
  let dir: string;
  let file: string;
  let gateway: Gateway;
  let reloader: ConfigReloader;
  const logLines: string[] = [];
  const keys: Record<string, string> = {};
  const keyIds: Record<string, string> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-reload-'));
    file = join(dir, 'relay.yaml');
    for (const [user, groups] of [
      ['alice', ['design']],
      ['bob', []],
      ['carol', []],
    ] as const) {
      const created = await createKey(join(dir, 'keys.yaml'), { user, groups });
      keys[user] = created.key;
      keyIds[user] = created.record.id;
    }
    writeFileSync(file, configText({ team: 'allow: { users: [bob, carol], groups: [design] }' }));
    const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    gateway = createGateway({ config: loadConfigFile(file).config, log });
    await gateway.listen();
    reloader = new ConfigReloader({
      file,
      load: () => loadConfigFile(file).config,
      apply: (next) => gateway.reload(next),
      log,
      pollIntervalMs: 200,
    });
  });
  after(async () => {
    reloader.close();
    await gateway.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    'applies allow and tool filter edits within seconds while other sessions carry on',
    TIMEOUT,
    async (t) => {
      const alice = await connectClient(`${gateway.url}/mcp/team`, keys.alice);
      const bob = await connectClient(`${gateway.url}/mcp/team`, keys.bob);
      const aliceSession = alice.transport.sessionId;
      assert.ok((await alice.client.listTools()).tools.some((tool) => tool.name === 'echo'));
      assert.equal(
        textOf(await bob.client.callTool({ name: 'echo', arguments: { text: 'before' } })),
        'before',
      );

      writeFileSync(
        file,
        configText({ team: 'allow: { users: [carol], groups: [design] }\ntools: { deny: [echo] }' }),
      );
      const bobHeaders = {
        authorization: `Bearer ${keys.bob}`,
        'mcp-session-id': bob.transport.sessionId as string,
      };
      // Bob's session is closed (a client then re-initializes), and a new one is refused with the reason.
      const tookMs = await eventually(
        async () => (await rawPost(`${gateway.url}/mcp/team`, ping(99), bobHeaders)).status === 404,
        "the end of bob's session",
      );
      const refused = await rawPost(`${gateway.url}/mcp/team`, INITIALIZE, {
        authorization: `Bearer ${keys.bob}`,
      });
      assert.equal(refused.status, 403);
      assert.match((refused.json as { error: { message: string } }).error.message, /"bob" is not allowed/);
      assert.ok(logLines.some((line) => line.includes('closed sessions whose user lost access')));

      // Alice's open session was never dropped: the same session now sees the new tool filter.
      assert.equal(alice.transport.sessionId, aliceSession);
      const tools = (await alice.client.listTools()).tools.map((tool) => tool.name);
      assert.ok(!tools.includes('echo') && tools.includes('whoami'));
      await assert.rejects(
        alice.client.callTool({ name: 'echo', arguments: { text: 'x' } }),
        /policy does not allow/,
      );
      assert.equal(textOf(await alice.client.callTool({ name: 'whoami', arguments: {} })), '');
      t.diagnostic(`the edit took effect ${tookMs} ms after the write (polling every 200 ms)`);
      await Promise.all([alice.client.close(), bob.client.close()]);
    },
  );

  it('keeps the running config when an edit is invalid, and names the line', TIMEOUT, async () => {
    const carol = await connectClient(`${gateway.url}/mcp/team`, keys.carol);
    // From here on reloads are by hand (as SIGHUP does), so each outcome is known exactly.
    reloader.close();
    reloader = new ConfigReloader({
      file,
      load: () => loadConfigFile(file).config,
      apply: (next) => gateway.reload(next),
      log: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }),
      pollIntervalMs: 3_600_000,
    });
    writeFileSync(file, configText({ team: 'allow: { users: [bob] }\ntools:\n  deny: ["[oops"]' }));
    assert.equal(await reloader.reload(), undefined);
    const logged = logLines.map((line) => JSON.parse(line) as { msg: string; err?: string }).at(-1);
    assert.equal(logged?.msg, 'config not reloaded; the running config stays');
    assert.match(String(logged?.err), /relay\.yaml:\d+: servers\.team\.tools\.deny\.0: bad pattern/);
    writeFileSync(file, 'servers: [\n');
    assert.equal(await reloader.reload(), undefined);
    // Still the last good policy: carol allowed, bob not, echo hidden.
    const tools = (await carol.client.listTools()).tools.map((tool) => tool.name);
    assert.ok(!tools.includes('echo') && tools.includes('pid'));
    assert.equal(
      (await rawPost(`${gateway.url}/mcp/team`, INITIALIZE, { authorization: `Bearer ${keys.bob}` })).status,
      403,
    );
    await carol.client.close();
  });

  it('reports what needs a restart and still applies the rest', TIMEOUT, async () => {
    writeFileSync(
      file,
      configText({ team: 'allow: { users: [carol, bob] }' })
        .replace(/args: \[.*\]/, 'args: [other.js]')
        .replace('port: 0', 'port: 1')
        .concat(`  extra:\n    command: node\n`),
    );
    const change = await reloader.reload();
    assert.ok(change);
    assert.deepEqual(
      change.restartNeeded.sort(),
      ['listen', 'servers.extra (added)', 'servers.team.args'].sort(),
    );
    assert.deepEqual(change.applied.sort(), ['servers.team.allow', 'servers.team.tools'].sort());
    // bob is allowed again; the backend still runs the startup command (echo is there, now unfiltered).
    const bob = await connectClient(`${gateway.url}/mcp/team`, keys.bob);
    assert.equal(textOf(await bob.client.callTool({ name: 'echo', arguments: { text: 'back' } })), 'back');
    const extra = await rawPost(`${gateway.url}/mcp/extra`, INITIALIZE, {
      authorization: `Bearer ${keys.bob}`,
    });
    assert.equal(extra.status, 404, 'a server added to the file waits for a restart');
    await bob.client.close();
  });

  it('applies limits and allowedOrigins live', TIMEOUT, async () => {
    const carol = await connectClient(`${gateway.url}/mcp/team`, keys.carol);
    const headers = {
      authorization: `Bearer ${keys.carol}`,
      'mcp-session-id': carol.transport.sessionId as string,
    };
    const origin = { ...headers, origin: 'https://app.example.com' };
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, ping(1), origin)).status, 403);
    const big = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping', params: { pad: 'x'.repeat(3_000) } });
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, big, headers)).status, 200);

    writeFileSync(
      file,
      configText({
        team: 'allow: { users: [carol] }',
        top: 'allowedOrigins: [https://app.example.com]\nlimits: { maxBodyBytes: 2KiB, requestsPerMinute: 3 }',
      }),
    );
    const change = await reloader.reload();
    assert.deepEqual(
      change?.applied.sort(),
      ['allowedOrigins', 'limits.maxBodyBytes', 'limits.requestsPerMinute', 'servers.team.allow'].sort(),
    );
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, big, headers)).status, 413);
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, ping(3), origin)).status, 200); // 1 of 3
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, ping(4), headers)).status, 200); // 2
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, ping(5), headers)).status, 200); // 3
    const limited = await rawPost(`${gateway.url}/mcp/team`, ping(6), headers);
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    await carol.client.close();
  });

  it('refuses a revoked key within seconds while other users carry on', TIMEOUT, async () => {
    writeFileSync(file, configText({ team: 'allow: { users: [carol, bob] }' }));
    await reloader.reload();
    const bob = await connectClient(`${gateway.url}/mcp/team`, keys.bob);
    const carol = await connectClient(`${gateway.url}/mcp/team`, keys.carol);
    const bobHeaders = {
      authorization: `Bearer ${keys.bob}`,
      'mcp-session-id': bob.transport.sessionId as string,
    };
    assert.equal((await rawPost(`${gateway.url}/mcp/team`, ping(1), bobHeaders)).status, 200);
    await revokeKey(join(dir, 'keys.yaml'), keyIds.bob as string);
    await eventually(
      async () => (await rawPost(`${gateway.url}/mcp/team`, ping(2), bobHeaders)).status === 401,
      'revocation',
    );
    assert.equal(
      textOf(await carol.client.callTool({ name: 'echo', arguments: { text: 'unaffected' } })),
      'unaffected',
    );
    await Promise.all([bob.client.close().catch(() => undefined), carol.client.close()]);
  });
});

describe('mcp-relay serve reloads on SIGHUP', () => {
  it('applies an edited allow list on SIGHUP and keeps running', TIMEOUT, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-sighup-'));
    const file = join(dir, 'relay.yaml');
    // No auth on loopback: every request is user "local".
    const write = (users: string) =>
      writeFileSync(file, configText({ team: `allow: { users: [${users}] }` }).replace(/^auth:.*\n/m, ''));
    write('local');
    const child = spawn(process.execPath, [RUN_CLI, 'serve', '--config', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await eventually(async () => /gateway at (http:\S+)/.test(stderr), 'gateway start');
      const url = `${/gateway at (http:\S+)/.exec(stderr)?.[1]}/mcp/team`;
      assert.equal((await rawPost(url, INITIALIZE)).status, 200);
      write('someone-else');
      child.kill('SIGHUP');
      await eventually(async () => (await rawPost(url, INITIALIZE)).status === 403, 'reload on SIGHUP');
      // The log is written asynchronously: the line may follow the effect by a moment.
      await eventually(async () => /config reloaded/.test(stderr), 'the reload log line');
      assert.equal(child.exitCode, null, 'SIGHUP does not stop the gateway');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
