// Day 1 of rolling mcp-relay out to an office, played end to end with the real parts. The admin writes
// relay.yaml for the bundled 3D demo (per user), creates keys with `keys create`, runs `serve` as a
// process, and puts a real nginx with TLS (an office CA) in front from `deploy print nginx`. Alice
// gets a `.mcpb` made by `claude bundle --ca`; it is unpacked, validated and launched as Claude
// Desktop launches it. Bob installs the packed tarball with `npm install -g`, and his Claude
// Desktop runs the entry `claude config --for-colleague` printed. Both reach their own scene through
// nginx, and alice's viewer link signs her browser in on nginx's address.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Agent, fetch as undiciFetch } from 'undici';
import { TestPki } from './helpers/certs.ts';
import { connectOverStdio, runCli } from './helpers/cli.ts';
import { textOf } from './helpers/gateway.ts';
import { launchAsClaudeDesktop, unpackBundle } from './helpers/mcpb.ts';
import { siteOnLoopback, startNginxSite, type TestNginx } from './helpers/nginx.ts';
import { npmEnv, packAndInstall } from './helpers/package.ts';
import { freePort } from './helpers/ports.ts';
import { type ServeProcess, startServe } from './helpers/serve.ts';

const DEMO = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));

/** The object names in a list_objects result. */
async function objectNames(client: Client): Promise<string[]> {
  const result = await client.callTool({ name: 'list_objects', arguments: {} });
  const structured = result.structuredContent as { objects?: Array<{ name: string }> } | undefined;
  return (structured?.objects ?? []).map((object) => object.name);
}

async function addObject(client: Client, shape: string, name: string): Promise<void> {
  const result = await client.callTool({ name: 'add_object', arguments: { shape, name } });
  assert.notEqual(result.isError, true, textOf(result));
}

describe('day 1: the 3D server behind nginx, reached from colleagues’ PCs', () => {
  const pki = new TestPki();
  const closers: Array<() => Promise<unknown>> = [];
  let dir: string;
  let caFile: string;
  let publicUrl: string;
  let mcpUrl: string;
  let keys: Record<string, string>;
  let serve: ServeProcess;
  let nginx: TestNginx;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-day-one-'));
    const ca = pki.createCa('office-ca');
    caFile = ca.cert;
    const certificate = pki.serverCert(ca, 'relay');
    const nginxPort = await freePort();
    const gatewayPort = await freePort();
    // The name colleagues use; the certificate is for it.
    publicUrl = `https://localhost:${nginxPort}`;
    mcpUrl = `${publicUrl}/mcp/3d`;

    // 1. The admin's relay.yaml, and a key per colleague.
    const config = join(dir, 'relay.yaml');
    writeFileSync(
      config,
      [
        `listen: { host: 127.0.0.1, port: ${gatewayPort} }`,
        `publicUrl: ${publicUrl}`,
        'auth: { apiKeys: { file: keys.yaml } }',
        'servers:',
        `  3d: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(DEMO)}], isolation: per-user, app: { portEnv: APP_PORT } }`,
        '',
      ].join('\n'),
    );
    keys = {};
    for (const user of ['alice', 'bob']) {
      const created = await runCli(['keys', 'create', user, '--config', config]);
      assert.equal(created.code, 0, created.stderr);
      keys[user] = created.stdout.trim();
    }

    // 2. The gateway as a process, and nginx from `deploy print nginx`.
    serve = await startServe(config);
    closers.push(() => serve.stop());
    const printed = await runCli([
      'deploy',
      'print',
      'nginx',
      '--config',
      config,
      '--cert',
      certificate.cert,
      '--key',
      certificate.key,
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    const nginxDir = join(dir, 'nginx');
    mkdirSync(nginxDir);
    nginx = await startNginxSite(nginxDir, siteOnLoopback(printed.stdout, nginxPort), nginxPort);
    closers.push(() => nginx.close());
  });

  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    pki.close();
  });

  it("alice's .mcpb, launched as Claude Desktop launches it, draws in her scene; her viewer link signs her browser in through nginx", async (t) => {
    const made = await runCli([
      'claude',
      'bundle',
      '--url',
      mcpUrl,
      '--name',
      '3d-scene',
      '--ca',
      caFile,
      '--out',
      dir,
    ]);
    assert.equal(made.code, 0, made.stderr);
    const bundle = join(dir, '3d-scene.mcpb');
    t.diagnostic(`3d-scene.mcpb: ${readFileSync(bundle).length} bytes`);
    const unpacked = join(dir, 'alice-pc', '3d-scene');
    const manifest = await unpackBundle(bundle, unpacked);
    const claude = await launchAsClaudeDesktop(unpacked, manifest, { api_key: keys.alice ?? '' });
    closers.push(() => claude.close());

    await addObject(claude.client, 'box', 'alice-cube');
    assert.deepEqual(await objectNames(claude.client), ['alice-cube']);
    const viewer = await claude.client.callTool({ name: 'get_viewer_url', arguments: {} });
    const link = (viewer.structuredContent as { url: string }).url;
    assert.ok(link.startsWith(`${publicUrl}/apps/3d/alice/`), link);
    assert.match(link, /\?ticket=/);

    const trust = new Agent({ connect: { ca: readFileSync(caFile) } });
    try {
      const signIn = await undiciFetch(link, { dispatcher: trust, redirect: 'manual' });
      assert.equal(signIn.status, 303);
      const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      assert.match(signIn.headers.get('set-cookie') ?? '', /; Secure/, 'https publicUrl: a Secure cookie');
      const page = await undiciFetch(new URL(signIn.headers.get('location') ?? '', publicUrl), {
        dispatcher: trust,
        headers: { cookie },
      });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
    } finally {
      await trust.close();
    }
  });

  it("bob's npm install of the packed tarball runs the entry `claude config --for-colleague` printed, in his own scene", async (t) => {
    const bobPc = join(dir, 'bob-pc');
    mkdirSync(bobPc);
    const installed = await packAndInstall(bobPc);
    t.diagnostic(
      `${installed.packed.filename}: ${installed.packed.size} bytes, installed in ${installed.installMs} ms`,
    );

    const printed = await runCli(['claude', 'config', '--url', mcpUrl, '--for-colleague', '--ca', caFile]);
    assert.equal(printed.code, 0, printed.stderr);
    const entry = (
      JSON.parse(printed.stdout) as {
        mcpServers: Record<string, { command: string; args: string[]; env: Record<string, string> }>;
      }
    ).mcpServers['3d'];
    assert.ok(entry, printed.stdout);
    assert.equal(entry.command, 'mcp-relay', 'found on the colleague’s PATH, no path of the server');
    // Bob pastes his key over the placeholder; Claude Desktop starts the command from his PATH.
    const claude = await connectOverStdio({
      command: entry.command,
      args: entry.args,
      env: {
        ...entry.env,
        MCP_RELAY_TOKEN: keys.bob ?? '',
        PATH: `${join(bobPc, 'prefix', 'bin')}:${process.env.PATH ?? ''}`,
        HOME: npmEnv.HOME ?? '',
      },
      cwd: bobPc,
    });
    closers.push(() => claude.close());

    assert.deepEqual(
      await objectNames(claude.client),
      [],
      "bob's scene is his own: alice's cube is not in it",
    );
    await addObject(claude.client, 'sphere', 'bob-sphere');
    assert.deepEqual(await objectNames(claude.client), ['bob-sphere']);
  });
});
