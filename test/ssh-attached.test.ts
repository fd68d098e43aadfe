// SSH mode, attached: ssh-entry joins the running gateway over its Unix socket, so an SSH user is an
// ordinary session — sharing the `shared` 3D scene with a network user, counted by the same
// per-user limit, checked by the same allow rules — and the socket's user header means nothing over TCP.
// Without authentication the gateway serves only the socket (`listen: false`) or says so (`auth.none`).

import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { createKey } from '../src/auth/key-admin.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { createGateway, type Gateway } from '../src/gateway/create-gateway.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import { runCli } from './helpers/cli.ts';
import { connectClient, FIXTURE_SERVER, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { serveRefusal, startServe } from './helpers/serve.ts';
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
const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));
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

/** The TCP ports process `pid` listens on: its socket inodes that /proc/net/tcp{,6} lists as LISTEN. */
function listeningTcpPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const row of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      // sl local_address rem_address st … inode: st 0A is LISTEN.
      const [, local, , state, , , , , , inode] = row.trim().split(/\s+/);
      if (state === '0A' && inode !== undefined && inodes.has(inode)) {
        ports.push(Number.parseInt(local?.split(':')[1] ?? '', 16));
      }
    }
  }
  return ports;
}

describe('SSH attached mode without authentication (no sshd needed)', {
  skip: process.platform === 'linux' ? undefined : "reads the gateway's sockets from /proc (Linux)",
}, () => {
  let dir: string;

  /** relay.yaml: attached mode on gw.sock, the fixture server `who`, no auth section, and `extra`. */
  function writeConfig(extra: string): string {
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      [
        extra,
        'servers:',
        `  who: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE_SERVER)}] }`,
        'ssh: { mode: attached, socket: gw.sock }',
        '',
      ].join('\n'),
    );
    return file;
  }

  /** ssh-entry (attached) as sshd would run it for alice, with the SDK client on its stdio: whoami. */
  async function whoamiThroughEntry(file: string): Promise<string> {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [RUN_CLI, 'ssh-entry', '--config', file, '--user', 'alice'],
      env: { PATH: process.env.PATH ?? '', HOME: dir, SSH_ORIGINAL_COMMAND: 'who' },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    await client.connect(transport);
    try {
      return textOf(await client.callTool({ name: 'whoami', arguments: {} }));
    } finally {
      await client.close();
    }
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-ssh-noauth-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serve refuses to start, naming listen: false and auth: { none: true }', async () => {
    const file = writeConfig('listen: { host: 127.0.0.1, port: 0 }');
    const refused = await serveRefusal(file);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      'mcp-relay: refusing to start: ssh.mode attached without authentication would let every local account in over TCP 127.0.0.1:0 as user "local"; set listen: false to serve only the SSH socket, or auth: { none: true } to allow that on purpose\n',
    );
    assert.equal(existsSync(join(dir, 'gw.sock')), false, 'no socket was left behind');
  });

  it('with listen: false serves only the SSH socket: no TCP port', async () => {
    const serve = await startServe(writeConfig('listen: false'));
    try {
      assert.equal(serve.url, undefined);
      assert.match(
        serve.stderr(),
        /^mcp-relay gateway on \S+gw\.sock only \(listen: false\) \(servers: who\)$/m,
      );
      assert.deepEqual(listeningTcpPorts(serve.pid), [], 'the gateway listens on no TCP port');
      assert.equal(await whoamiThroughEntry(join(dir, 'relay.yaml')), 'alice');
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });

  it('with auth: { none: true } starts, and every TCP request is user "local"', async () => {
    const serve = await startServe(writeConfig('listen: { host: 127.0.0.1, port: 0 }\nauth: { none: true }'));
    try {
      const url = serve.url as string;
      assert.deepEqual(listeningTcpPorts(serve.pid), [Number(new URL(url).port)]);
      const { client } = await connectClient(`${url}/mcp/who`, undefined);
      assert.equal(textOf(await client.callTool({ name: 'whoami', arguments: {} })), 'local');
      await client.close();
      // The socket still names its user.
      assert.equal(await whoamiThroughEntry(join(dir, 'relay.yaml')), 'alice');
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });
});
