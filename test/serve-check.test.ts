// Misconfiguration caught at start: `serve --check` on real configs in temp folders (a missing command,
// arguments in `command`, a missing script, a backend that exits at once, no keys file, a good config),
// a normal start that reports a broken server before it says it is ready and serves the others, and a
// crash-looped server that is tried again at once after it is fixed (on disk, or by a reload).

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createKey } from '../src/auth/key-admin.ts';
import { buildConfig } from '../src/config/load.ts';
import { runCliInProcess } from './helpers/cli.ts';
import { answerOf, FIXTURE_SERVER, INITIALIZE, rawPost, startGateway } from './helpers/gateway.ts';
import { startServe } from './helpers/serve.ts';
import { eventually } from './helpers/wait.ts';

const NODE = JSON.stringify(process.execPath);
const GOOD = `{ command: ${NODE}, args: [${JSON.stringify(FIXTURE_SERVER)}] }`;
/** A backend that says why on stderr and exits before reading anything, as one missing its settings does. */
const EXITS_AT_ONCE =
  "console.error('loading settings'); console.error('Error: DATABASE_URL is not set'); process.exit(3);\n";

describe('mcp-relay serve --check', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-check-'));
    await createKey(join(dir, 'keys.yaml'), { user: 'alice' });
    writeFileSync(join(dir, 'exits.mjs'), EXITS_AT_ONCE);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const check = (servers: string, extra = '', flags: string[] = []) => {
    const file = join(dir, `relay-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `auth: { apiKeys: { file: keys.yaml } }\n${extra}servers:\n${servers}`);
    return runCliInProcess(['serve', '--check', '--config', file, ...flags]);
  };

  it('passes a good config: each server started and answered initialize, exit 0, nothing listening', async () => {
    const result = await check(`  good: ${GOOD}\n`, 'listen: { host: 127.0.0.1, port: 1 }\n');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /ok +good +answered initialize in \d+ ms \(fixture 1\.0\.0\)/);
    assert.match(result.stdout, /all 1 servers passed/);
    assert.doesNotMatch(result.stdout, /warning/);
  });

  it('names a command that is not on PATH', async () => {
    const result = await check('  gone: { command: no-such-mcp-server-here }\n');
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /FAIL +gone +command "no-such-mcp-server-here" is not found on the backend's PATH/,
    );
  });

  it('catches arguments written into `command` and says to use args', async () => {
    const result = await check(`  inline: { command: "node server.js --port 3" }\n`);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /FAIL +inline +command "node server\.js --port 3" has its arguments in it; .* write command: node and args: \["server\.js","--port","3"\]/,
    );
  });

  it('names a script the args point to that does not exist, relative to the cwd', async () => {
    const result = await check(
      `  script: { command: ${NODE}, args: [--no-warnings, dist/server.js], cwd: app }\n`,
    );
    assert.equal(result.code, 1);
    // The cwd itself is missing first; with it there, the script.
    assert.match(result.stdout, /FAIL +script +cwd .*\/app is not a directory/);
    const withCwd = await check(`  script: { command: ${NODE}, args: [--no-warnings, dist/server.js] }\n`);
    assert.match(
      withCwd.stdout,
      new RegExp(
        `FAIL +script +script ${dir}/dist/server\\.js \\(from args, relative to cwd\\) does not exist`,
      ),
    );
  });

  it("shows a backend's stderr when it exits before answering initialize, beside a server that is fine", async () => {
    const result = await check(`  good: ${GOOD}\n  exits: { command: ${NODE}, args: [exits.mjs] }\n`);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /ok +good /);
    assert.match(
      result.stdout,
      /FAIL +exits +exited \(code 3\) before answering initialize\n.*its last stderr lines:\n +loading settings\n +Error: DATABASE_URL is not set/,
    );
    assert.match(result.stdout, /1 of 2 servers failed the check/);
  });

  it('gives up on a backend that never answers after --check-timeout', async () => {
    const result = await check(
      `  mute: { command: ${NODE}, args: [-e, "setInterval(() => {}, 1000)"] }\n`,
      '',
      ['--check-timeout', '500ms'],
    );
    assert.equal(result.code, 1);
    assert.match(result.stdout, /FAIL +mute +did not answer initialize within 0\.5 s/);
  });

  it('fails on a keys file the gateway could not read, and warns about one with no key', async () => {
    const broken = join(dir, 'broken-keys.yaml');
    writeFileSync(broken, 'keys: [ {');
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, `auth: { apiKeys: { file: broken-keys.yaml } }\nservers:\n  good: ${GOOD}\n`);
    const result = await runCliInProcess(['serve', '--check', '--config', file]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /FAIL +.*broken-keys\.yaml/);
    assert.match(result.stdout, /the config cannot be served/);
    writeFileSync(join(dir, 'empty-keys.yaml'), '');
    const emptyConfig = join(dir, 'empty.yaml');
    writeFileSync(emptyConfig, `auth: { apiKeys: { file: empty-keys.yaml } }\nservers:\n  good: ${GOOD}\n`);
    const empty = await runCliInProcess(['serve', '--check', '--config', emptyConfig]);
    assert.equal(empty.code, 0);
    assert.match(empty.stdout, /warning: the keys file .*empty-keys\.yaml holds no key that is not expired/);
  });

  it('warns of servers.<name>.watch paths that do not exist (a warning: exit 0)', async () => {
    const result = await check(
      `  good: { command: ${NODE}, args: [${JSON.stringify(FIXTURE_SERVER)}], watch: [missing.js, nowhere/x.js, keys.yaml] }\n`,
      '',
      ['--check-timeout', '0'],
    );
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /warning: servers\.good\.watch: .*missing\.js does not exist \(yet\)/);
    assert.match(
      result.stdout,
      /warning: servers\.good\.watch: neither .*nowhere\/x\.js nor its folder exists/,
    );
    assert.doesNotMatch(result.stdout, /keys\.yaml does not exist/);
  });

  it('warns that no one can sign in when the keys file does not exist (a warning: exit 0)', async () => {
    const file = join(dir, 'nokeys.yaml');
    writeFileSync(file, `auth: { apiKeys: { file: missing-keys.yaml } }\nservers:\n  good: ${GOOD}\n`);
    const result = await runCliInProcess(['serve', '--check', '--config', file]);
    assert.equal(result.code, 0);
    assert.match(
      result.stdout,
      /warning: the keys file .*missing-keys\.yaml does not exist: no one can sign in with an API key until `mcp-relay keys create NAME --keys-file .*` creates it/,
    );
  });
});

describe('serve: a server that fails its start check', () => {
  it('is logged at error with its stderr before the ready line, and the other servers are served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-start-'));
    try {
      writeFileSync(join(dir, 'exits.mjs'), EXITS_AT_ONCE);
      const file = join(dir, 'relay.yaml');
      writeFileSync(
        file,
        `listen: { host: 127.0.0.1, port: 0 }\nservers:\n  good: ${GOOD}\n  exits: { command: ${NODE}, args: [exits.mjs] }\n`,
      );
      const serve = await startServe(file);
      try {
        const stderr = serve.stderr();
        const ready = stderr.indexOf('mcp-relay gateway at');
        assert.match(
          stderr,
          /mcp-relay gateway at \S+ \(servers: good, exits; failing their start check: exits\)/,
        );
        const report = stderr.indexOf(
          'mcp-relay: server "exits" failed its start check: exited (code 3) before answering initialize\n  its last stderr lines:\n    loading settings\n    Error: DATABASE_URL is not set\n',
        );
        assert.ok(
          report !== -1 && report < ready,
          `reported before the gateway says it is ready:\n${stderr}`,
        );
        // And in the JSON log, at error, for whatever reads it (written asynchronously, so maybe a little later).
        const logged = () =>
          serve
            .stderr()
            .split('\n')
            .filter((line) => line.startsWith('{'))
            .map((line) => JSON.parse(line) as Record<string, unknown>)
            .find((line) => line.level === 50 && line.server === 'exits');
        await eventually(() => logged() !== undefined, 'the error log line');
        assert.deepEqual(logged()?.problems, ['exited (code 3) before answering initialize']);
        assert.deepEqual(logged()?.stderr, ['loading settings', 'Error: DATABASE_URL is not set']);
        const reply = await rawPost(`${serve.url}/mcp/good`, INITIALIZE);
        assert.equal(reply.status, 200);
        assert.equal(
          (answerOf(reply) as { result: { serverInfo: { name: string } } }).result.serverInfo.name,
          'fixture',
        );
      } finally {
        await serve.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a crash-looped server after the admin fixes it', () => {
  const initialize = async (url: string, key: string) => {
    const reply = await rawPost(url, INITIALIZE, { authorization: `Bearer ${key}` });
    return answerOf(reply) as { result?: { serverInfo: { name: string } }; error?: { message: string } };
  };

  it('is tried at the next request once its script exists, well before the 60 s cool-down', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-fixed-'));
    const script = join(dir, 'server.mjs');
    const gw = await startGateway(
      { servers: { late: { command: process.execPath, args: [script], cwd: dir, isolation: 'shared' } } },
      { users: ['alice'] },
    );
    try {
      const url = `${gw.url}/mcp/late`;
      const broken = await initialize(url, gw.keys.alice as string);
      assert.match(broken.error?.message ?? '', /crashed 5 times .*next attempt in \d+s/);
      const locked = await initialize(url, gw.keys.alice as string);
      assert.match(locked.error?.message ?? '', /next attempt in/, 'still cooling down: nothing changed');
      copyFileSync(FIXTURE_SERVER, script);
      const started = Date.now();
      const fixed = await initialize(url, gw.keys.alice as string);
      assert.equal(fixed.result?.serverInfo.name, 'fixture', JSON.stringify(fixed));
      assert.ok(Date.now() - started < 10_000);
      const health = (await (await fetch(`${gw.url}/healthz`)).json()) as { status: string };
      assert.equal(health.status, 'ok', 'healthy again once a backend answered initialize');
    } finally {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is tried at the next request after a config reload, when what was fixed is not its command or script', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-reload-'));
    const script = join(dir, 'server.mjs');
    // Starts the fixture only once a settings file exists: a fix the launch fingerprint cannot see.
    writeFileSync(
      script,
      `import { existsSync } from 'node:fs';\nif (!existsSync(${JSON.stringify(join(dir, 'settings'))})) { console.error('no settings'); process.exit(1); }\nawait import(${JSON.stringify(FIXTURE_SERVER)});\n`,
    );
    const input = {
      servers: { late: { command: process.execPath, args: [script], isolation: 'shared' } },
    };
    const gw = await startGateway(input, { users: ['alice'] });
    try {
      const url = `${gw.url}/mcp/late`;
      assert.match((await initialize(url, gw.keys.alice as string)).error?.message ?? '', /crashed 5 times/);
      writeFileSync(join(dir, 'settings'), 'ok');
      assert.match((await initialize(url, gw.keys.alice as string)).error?.message ?? '', /next attempt in/);
      gw.gateway.reload(
        buildConfig(
          { listen: { host: '127.0.0.1', port: 0 }, auth: { apiKeys: { file: gw.keysFile } }, ...input },
          gw.dir,
        ),
      );
      const fixed = await initialize(url, gw.keys.alice as string);
      assert.equal(fixed.result?.serverInfo.name, 'fixture', JSON.stringify(fixed));
    } finally {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
