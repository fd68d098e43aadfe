// `mcp-relay claude bundle`: the .mcpb the real CLI writes passes the official `mcpb validate`, unpacks
// with the official `mcpb unpack`, carries the bridge and nothing of the gateway, and, launched as Claude
// Desktop launches it (node, ${__dirname}, the user's URL and key), reaches a real gateway, over TLS
// with a private CA too, from a folder where no other node_modules is in reach.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type IssuedCert, type TestCa, TestPki } from './helpers/certs.ts';
import { runCli } from './helpers/cli.ts';
import { fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { DIRNAME, launchAsClaudeDesktop, type Manifest, unpackBundle } from './helpers/mcpb.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
// biome-ignore lint/suspicious/noTemplateCurlyInString: the manifest's placeholder, literally.
const API_KEY = '${user_config.api_key}';

let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-bundle-'));
  // The bundle carries dist/: build once if this checkout has not been built.
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT });
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the real CLI's `claude bundle`, then the official tools on its output; returns the unpacked folder. */
async function bundle(
  name: string,
  args: readonly string[],
): Promise<{ file: string; unpacked: string; manifest: Manifest }> {
  const out = join(dir, name);
  const made = await runCli(['claude', 'bundle', '--name', name, '--out', out, ...args], { cwd: dir });
  assert.equal(made.code, 0, made.stderr);
  const file = join(out, `${name}.mcpb`);
  assert.match(made.stdout, new RegExp(`wrote ${file.replaceAll('.', '\\.')} \\(\\d+ KiB`));
  const unpacked = join(dir, `${name}-unpacked`);
  return { file, unpacked, manifest: await unpackBundle(file, unpacked) };
}

describe('mcp-relay claude bundle', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ servers: { echo: fixtureServer() } }, { users: ['alice'] });
  });
  after(() => gw.close());

  it('writes a valid .mcpb whose bridge, started as Claude Desktop starts it, calls a tool as its user', async (t) => {
    const url = `${gw.url}/mcp/echo`;
    const { file, unpacked, manifest } = await bundle('office-echo', ['--url', url]);
    t.diagnostic(`office-echo.mcpb: ${statSync(file).size} bytes`);

    assert.equal(manifest.server.type, 'node');
    assert.ok(existsSync(join(unpacked, manifest.server.entry_point)));
    assert.equal(manifest.user_config.gateway_url?.default, url);
    assert.equal(manifest.user_config.api_key?.sensitive, true, 'the key goes to the OS keychain');
    assert.equal(manifest.server.mcp_config.env.MCP_RELAY_TOKEN, API_KEY);
    assert.ok(!readFileSync(file).includes(gw.keys.alice as string), 'no key inside');

    // The bridge and what it imports, not the gateway nor the demo.
    const packages = readdirSync(join(unpacked, 'node_modules'));
    assert.ok(packages.includes('undici'));
    assert.ok(packages.includes('ws'), 'the bridge speaks WebSocket with ws');
    for (const gatewayOnly of [
      'three',
      'pino',
      'jose',
      'yaml',
      'zod',
      'rate-limiter-flexible',
      '@modelcontextprotocol',
    ])
      assert.ok(!packages.includes(gatewayOnly), `${gatewayOnly} is not in the bundle`);
    for (const folder of ['gateway', 'http', 'mux', 'sessions', 'backends', 'ssh'])
      assert.ok(!existsSync(join(unpacked, 'dist', folder)), `dist/${folder} is not in the bundle`);

    const bridged = await launchAsClaudeDesktop(unpacked, manifest, { api_key: gw.keys.alice as string });
    try {
      const echoed = await bridged.client.callTool({ name: 'echo', arguments: { text: 'from the bundle' } });
      assert.equal(textOf(echoed), 'from the bundle');
      assert.equal(textOf(await bridged.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    } finally {
      await bridged.close();
    }
  });

  it('refuses a --ca file that holds no certificate, and writes nothing', async () => {
    const notPem = join(dir, 'not-a-ca.txt');
    writeFileSync(notPem, 'hello');
    const out = join(dir, 'refused');
    const made = await runCli([
      'claude',
      'bundle',
      '--url',
      `${gw.url}/mcp/echo`,
      '--ca',
      notPem,
      '--out',
      out,
    ]);
    assert.equal(made.code, 2);
    assert.match(made.stderr, /no PEM certificate/);
    assert.ok(!existsSync(out));
  });
});

describe('mcp-relay claude bundle --ca', () => {
  let pki: TestPki;
  let ca: TestCa;
  let server: IssuedCert;
  let gw: TestGateway;
  before(async () => {
    pki = new TestPki();
    ca = pki.createCa('office-ca');
    server = pki.serverCert(ca);
    gw = await startGateway(
      {
        listen: { host: '127.0.0.1', port: 0, tls: { cert: server.cert, key: server.key } },
        servers: { echo: fixtureServer() },
      },
      { users: ['bob'] },
    );
  });
  after(async () => {
    await gw.close();
    pki.close();
  });

  it('carries the office CA and points the bridge at it, so a TLS gateway with a private CA is reached', async () => {
    assert.match(gw.url, /^https:/);
    const { unpacked, manifest } = await bundle('office-tls', [
      '--url',
      `${gw.url}/mcp/echo`,
      '--ca',
      ca.cert,
    ]);
    const at = manifest.server.mcp_config.args.indexOf('--ca');
    assert.ok(at > 0, 'connect gets --ca');
    const caInBundle = (manifest.server.mcp_config.args[at + 1] as string).replace(DIRNAME, unpacked);
    assert.deepEqual(readFileSync(caInBundle), readFileSync(ca.cert));

    // node trusts no such CA by itself: the call goes through only with the bundled one.
    const bridged = await launchAsClaudeDesktop(unpacked, manifest, { api_key: gw.keys.bob as string });
    try {
      assert.equal(textOf(await bridged.client.callTool({ name: 'whoami', arguments: {} })), 'bob');
    } finally {
      await bridged.close();
    }
  });
});
