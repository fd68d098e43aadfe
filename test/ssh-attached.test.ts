// SSH mode, attached: ssh-entry joins the running gateway over its Unix socket, so an SSH user is an
// ordinary session — sharing the `shared` 3D scene with a network user, counted by the same
// per-user limit, checked by the same allow rules — and the socket's user header means nothing over TCP.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createKey } from '../src/auth/key-admin.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { createGateway, type Gateway } from '../src/http/gateway.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import { runCli } from './helpers/cli.ts';
import { connectClient, FIXTURE_SERVER, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import {
  connectThroughEntry,
  type EntryClient,
  makeClientKey,
  printedSshEntry,
  sshdUnavailable,
  startSshd,
  type TestSshd,
} from './helpers/sshd.ts';
import { eventually } from './helpers/wait.ts';

const SCENE = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));
const unavailable = sshdUnavailable();

describe('SSH mode, attached to the gateway', { skip: unavailable }, () => {
  let dir: string;
  let sshd: TestSshd;
  let configPath: string;
  let socketPath: string;
  let logFile: string;
  let gateway: Gateway;
  let aliceKey: string;
  const apiKeys: Record<string, string> = {};

  /** The SDK client on the stdio of ssh, started exactly as alice's printed entry says. */
  async function sshClient(server: string): Promise<EntryClient> {
    return connectThroughEntry(await printedSshEntry(sshd, aliceKey, server));
  }

  async function health(): Promise<{
    sessions: number;
    servers: Record<string, { backends: number; sessions: number }>;
  }> {
    return (await fetch(`${gateway.url}/healthz`)).json() as Promise<{
      sessions: number;
      servers: Record<string, { backends: number; sessions: number }>;
    }>;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-ssh-att-'));
    sshd = await startSshd(dir);
    socketPath = join(dir, 'gw.sock');
    logFile = join(dir, 'ssh.jsonl');
    configPath = join(dir, 'relay.yaml');
    writeFileSync(
      configPath,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        'servers:',
        '  3d:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(SCENE)}]`,
        '    isolation: shared',
        '  who:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(FIXTURE_SERVER)}]`,
        '    isolation: per-user',
        '    allow: { groups: [design] }',
        'auth: { apiKeys: { file: keys.yaml } }',
        'limits: { sessionsPerUser: 2 }',
        "ssh: { mode: attached, socket: gw.sock, socketMode: '0660', logFile: ssh.jsonl }",
        '',
      ].join('\n'),
    );
    for (const user of ['alice', 'carol']) {
      apiKeys[user] = (await createKey(join(dir, 'keys.yaml'), { user })).key;
    }
    const log = process.env.MCP_RELAY_TEST_LOG ? createLogger('debug') : silentLogger;
    gateway = createGateway({ config: loadConfigFile(configPath).config, log });
    await gateway.listen();
    aliceKey = makeClientKey(dir, 'alice');
    const added = await runCli([
      'ssh',
      'authorize',
      '--user',
      'alice',
      '--group',
      'design',
      '--key-file',
      `${aliceKey}.pub`,
      '--config',
      configPath,
      '--authorized-keys',
      sshd.authorizedKeys,
    ]);
    assert.equal(added.code, 0, added.stderr);
  });

  after(async () => {
    await gateway?.close();
    await sshd?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('listens on the socket with its mode and refuses a second gateway on the same socket', async () => {
    const info = statSync(socketPath);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o660);
    const second = createGateway({ config: loadConfigFile(configPath).config, log: silentLogger });
    await assert.rejects(second.listen(), /another gateway is already listening on .*gw\.sock/);
    await second.close();
    assert.ok(statSync(socketPath).isSocket(), 'the refused gateway left our socket alone');
  });

  it('lets an SSH user and a network user see each other’s objects in the shared 3D scene', async () => {
    const ssh = await sshClient('3d');
    const network = await connectClient(`${gateway.url}/mcp/3d`, apiKeys.carol);
    try {
      await ssh.client.callTool({ name: 'add_object', arguments: { shape: 'box', name: 'ssh-cube' } });
      assert.match(
        textOf(await network.client.callTool({ name: 'list_objects', arguments: {} })),
        /ssh-cube/,
      );
      await network.client.callTool({ name: 'add_object', arguments: { shape: 'sphere', name: 'net-ball' } });
      const seen = textOf(await ssh.client.callTool({ name: 'list_objects', arguments: {} }));
      assert.match(seen, /ssh-cube/);
      assert.match(seen, /net-ball/);
      const stats = await health();
      assert.equal(stats.servers['3d']?.backends, 1, 'one process serves both');
      assert.equal(stats.servers['3d']?.sessions, 2);
    } finally {
      await ssh.client.close();
      await network.transport.terminateSession();
      await network.client.close();
    }
    // The SSH session ends with the connection, not at the idle timeout.
    await eventually(async () => (await health()).sessions === 0, 'the sessions to end');
    const records = readFileSync(logFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const end = records.find((record) => record.event === 'end' && record.server === '3d');
    assert.equal(end?.mode, 'attached');
    assert.equal(end?.user, 'alice');
    assert.equal(end?.reason, 'client closed the connection');
    assert.equal(typeof end?.durationMs, 'number');
  });

  it("runs as alice with her groups from the forced command (the server's allow names a group)", async () => {
    const ssh = await sshClient('who');
    try {
      assert.equal(textOf(await ssh.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    } finally {
      await ssh.client.close();
    }
    // Over TCP, alice's API key carries no groups: the same server refuses her there.
    const refused = await connectClient(`${gateway.url}/mcp/who`, apiKeys.alice).catch(
      (error: Error) => error,
    );
    assert.ok(refused instanceof Error, 'alice without the design group is refused over the network');
  });

  it('holds limits.sessionsPerUser across SSH and network sessions of one user', async () => {
    const network = await connectClient(`${gateway.url}/mcp/3d`, apiKeys.alice);
    const ssh = await sshClient('3d');
    try {
      const refused = await sshClient('3d').then(
        async (extra) => {
          await extra.client.close();
          assert.fail('a third session was let in');
        },
        (error: Error & { stderr: () => string }) => error,
      );
      // The answer to initialize says why; so does a line on ssh's stderr (Claude Desktop's log).
      assert.match(refused.message, /too many sessions: at most 2 per user/);
      await eventually(
        async () => /too many sessions: at most 2 per user/.test(refused.stderr()),
        'the refusal on stderr',
      );
      await eventually(
        async () => readFileSync(logFile, 'utf8').includes('refused by the gateway: '),
        'the refused connection in the log',
      );
      const record = readFileSync(logFile, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((record) => String(record.reason).startsWith('refused by the gateway'));
      assert.equal(record?.exitCode, 1);
      assert.match(String(record?.reason), /too many sessions/);
    } finally {
      await ssh.client.close();
      await network.transport.terminateSession();
      await network.client.close();
    }
  });

  it('ignores the socket’s user header on TCP', async () => {
    const forged = await rawPost(`${gateway.url}/mcp/3d`, INITIALIZE, { 'mcp-relay-user': 'alice' });
    assert.equal(forged.status, 401);
  });

  it('carries the SSH connection over a gateway restart (a new session on the new socket)', async () => {
    const ssh = await sshClient('who');
    try {
      assert.equal(textOf(await ssh.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
      await gateway.close();
      gateway = createGateway({ config: loadConfigFile(configPath).config, log: silentLogger });
      await gateway.listen();
      assert.equal(textOf(await ssh.client.callTool({ name: 'whoami', arguments: {} })), 'alice');
    } finally {
      await ssh.client.close();
    }
  });

  it('removes its socket when the gateway stops', async () => {
    await gateway.close();
    assert.equal(existsSync(socketPath), false);
  });
});
