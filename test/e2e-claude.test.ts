// End to end as Claude Desktop does it: the printed mcpServers entry starts `mcp-relay connect`, the
// official SDK client drives its stdio, the gateway (a real `mcp-relay serve` process) runs the 3D demo.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { createKey } from '../src/auth/key-admin.ts';
import { claudeEntryForUrl } from '../src/claude/entry.ts';
import { thisMachineLauncher } from '../src/claude/launcher.ts';
import { textOf } from './helpers/gateway.ts';
import { freePort } from './helpers/ports.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'mcp-relay.js');
const SCENE = join(ROOT, 'examples', '3d-scene', 'server.js');

/** Starts `mcp-relay serve` and resolves once /healthz answers. */
async function startServe(config: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`mcp-relay serve exited: ${stderr}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`mcp-relay serve did not start: ${stderr}`);
}

async function stopServe(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

describe('Claude Desktop → connect → serve → 3D scene', () => {
  let dir: string;
  let configPath: string;
  let port: number;
  let gateway: ChildProcess;
  let client: Client;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-e2e-'));
    port = await freePort();
    configPath = join(dir, 'relay.yaml');
    writeFileSync(
      configPath,
      [
        `listen: { host: 127.0.0.1, port: ${port} }`,
        'servers:',
        '  3d:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(SCENE)}]`,
        '    app: { portEnv: APP_PORT }',
        'auth:',
        '  apiKeys: { file: keys.yaml }',
        '',
      ].join('\n'),
    );
    const { key } = await createKey(join(dir, 'keys.yaml'), { user: 'alice' });
    gateway = await startServe(configPath, port);
    const entry = claudeEntryForUrl({
      url: `http://localhost:${port}/mcp/3d`,
      token: key,
      launcher: thisMachineLauncher(),
    });
    // Exactly what Claude Desktop does with the entry: command, args, env on top of a default env.
    const transport = new StdioClientTransport({
      command: entry.command,
      args: [...entry.args],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...entry.env },
      stderr: 'pipe',
    });
    client = new Client({ name: 'claude-desktop-stand-in', version: '1.0.0' });
    await client.connect(transport);
  });

  after(async () => {
    await client?.close();
    if (gateway) await stopServe(gateway);
    rmSync(dir, { recursive: true, force: true });
  });

  it('calls the 3D tools and reads the scene resource', async () => {
    const tools = await client.listTools();
    assert.ok(tools.tools.some((tool) => tool.name === 'add_object'));
    await client.callTool({
      name: 'add_object',
      arguments: { shape: 'box', name: 'red-cube', color: '#ff0000' },
    });
    await client.callTool({
      name: 'add_object',
      arguments: { shape: 'sphere', name: 'blue-ball', color: '#0000ff' },
    });
    const listed = textOf(await client.callTool({ name: 'list_objects', arguments: {} }));
    assert.match(listed, /red-cube/);
    assert.match(listed, /blue-ball/);
    const resource = await client.readResource({ uri: 'scene://current' });
    const scene = JSON.parse((resource.contents[0] as { text: string }).text) as {
      objects: Array<{ name: string }>;
    };
    assert.deepEqual(scene.objects.map((object) => object.name).sort(), ['blue-ball', 'red-cube']);
  });

  it('carries on when the gateway restarts between two calls', async () => {
    assert.match(textOf(await client.callTool({ name: 'list_objects', arguments: {} })), /red-cube/);
    await stopServe(gateway);
    gateway = await startServe(configPath, port);
    // The gateway forgot the session (404); the bridge re-initializes and this call just works.
    const after = await client.callTool({
      name: 'add_object',
      arguments: { shape: 'cone', name: 'after-restart' },
    });
    assert.notEqual(after.isError, true);
    assert.match(textOf(await client.callTool({ name: 'list_objects', arguments: {} })), /after-restart/);
  });
});
