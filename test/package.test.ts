// The built package as a user imports it (`import … from 'mcp-relay'`, resolved through its own
// `exports`): the same names as the source entry, and a gateway it creates answers /healthz. And the
// package as a colleague installs it (`npm pack`, `npm install -g <tarball>`): without the demo's
// packages, its `keys`, `serve` and `connect` work together with the official SDK client, the bundle its
// `claude bundle` writes reaches its gateway, and `demo` says where the demo lives instead of failing.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as source from '../src/index.ts';
import { connectOverStdio, runProcess } from './helpers/cli.ts';
import { FIXTURE_SERVER, textOf } from './helpers/gateway.ts';
import { launchAsClaudeDesktop, unpackBundle } from './helpers/mcpb.ts';
import { npmEnv, type Packed, packAndInstall } from './helpers/package.ts';
import { startServe } from './helpers/serve.ts';

describe('the built package', () => {
  it('resolves by its name to the built entry, with the source entry names', async () => {
    // A name in a variable: the type check runs before the build, when there is nothing to resolve yet.
    const name = 'mcp-relay';
    const built = (await import(name)) as typeof source;
    assert.deepEqual(Object.keys(built).sort(), Object.keys(source).sort());
    const config = built.buildConfig({
      listen: { host: '127.0.0.1', port: 0 },
      servers: { idle: { command: process.execPath, args: ['-e', ''] } },
    });
    const gateway = built.createGateway({ config, log: built.createLogger('silent') });
    await gateway.listen();
    try {
      const health = (await (await fetch(`${gateway.url}/healthz`)).json()) as {
        status: string;
        version: string;
      };
      assert.equal(health.status, 'ok');
      assert.equal(health.version, built.VERSION);
    } finally {
      await gateway.close();
    }
  });
});

describe('the npm package, packed and installed globally', () => {
  let dir: string;
  let bin: string;
  let packed: Packed;
  let installMs: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-package-'));
    ({ packed, bin, installMs } = await packAndInstall(dir));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("ships the built code, not the sources, tests or the demo, and installs none of the demo's packages", (t) => {
    t.diagnostic(`${packed.filename}: ${packed.size} bytes, npm install -g took ${installMs} ms`);
    const paths = packed.files.map((file) => file.path);
    assert.ok(paths.includes('bin/mcp-relay.js'));
    assert.ok(paths.includes('dist/cli/main.js'));
    for (const folder of ['examples/', 'src/', 'test/', 'bench/'])
      assert.deepEqual(
        paths.filter((path) => path.startsWith(folder)),
        [],
        `no ${folder} in the tarball`,
      );
    const installed = readdirSync(join(dir, 'prefix', 'lib', 'node_modules', 'mcp-relay', 'node_modules'));
    for (const demoOnly of ['three', '@modelcontextprotocol'])
      assert.ok(!installed.includes(demoOnly), `${demoOnly} is not installed`);
    assert.ok(installed.includes('undici') && installed.includes('pino'), 'runtime dependencies are');
    assert.ok(installed.includes('ws'), 'ws is, for the bridge’s WebSocket transport');
  });

  it('runs the installed gateway and bridge: a key from its keys command, a tool called through its connect and its bundle', async () => {
    const config = join(dir, 'relay.yaml');
    writeFileSync(
      config,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        `servers: { echo: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE_SERVER)}] } }`,
        'auth: { apiKeys: { file: keys.yaml } }',
        '',
      ].join('\n'),
    );
    const created = await runProcess(bin, ['keys', 'create', 'alice', '--config', config], {
      cwd: dir,
      env: npmEnv,
    });
    assert.equal(created.code, 0, created.stderr);
    const key = /mcpr_\S+/.exec(created.stdout)?.[0];
    assert.ok(key, created.stdout);
    const serve = await startServe(config, npmEnv, [bin]);
    try {
      const bridged = await connectOverStdio({
        command: bin,
        args: ['connect', `${serve.url}/mcp/echo`],
        env: { PATH: process.env.PATH ?? '', MCP_RELAY_TOKEN: key },
        cwd: dir,
      });
      try {
        const echoed = await bridged.client.callTool({ name: 'echo', arguments: { text: 'installed' } });
        assert.equal(textOf(echoed), 'installed');
        assert.equal(textOf(await bridged.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
      } finally {
        await bridged.close();
      }

      // The office server's install makes the extension colleagues open in Claude Desktop.
      const made = await runProcess(
        bin,
        ['claude', 'bundle', '--url', `${serve.url}/mcp/echo`, '--name', 'office-echo', '--out', dir],
        { cwd: dir, env: npmEnv },
      );
      assert.equal(made.code, 0, made.stderr);
      const unpacked = join(dir, 'office-echo');
      const manifest = await unpackBundle(join(dir, 'office-echo.mcpb'), unpacked);
      const extension = await launchAsClaudeDesktop(unpacked, manifest, { api_key: key });
      try {
        assert.equal(textOf(await extension.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
      } finally {
        await extension.close();
      }
      assert.equal(await serve.stop(), 0, serve.stderr());
    } finally {
      await serve.stop();
    }
  });

  it('answers `demo` with where to run the demo, not a stack trace', async () => {
    const demo = await runProcess(bin, ['demo', '--dir', join(dir, 'demo')], { cwd: dir, env: npmEnv });
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /not part of an npm install.*clone of the repository: bash scripts\/start\.sh/);
    assert.doesNotMatch(demo.stderr, /\n\s+at /, 'no stack');
    assert.ok(!existsSync(join(dir, 'demo')), 'nothing written');
  });
});
