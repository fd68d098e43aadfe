// SSH mode, standalone: a real sshd with keys written by `mcp-relay ssh authorize`, the official SDK
// client driving `ssh` exactly as the printed Claude Desktop entry says, the connection log, the
// per-user limit across connections, and what `restrict` and the forced command refuse.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from './helpers/cli.ts';
import { FIXTURE_SERVER, textOf } from './helpers/gateway.ts';
import {
  connectThroughEntry,
  type EntryClient,
  makeClientKey,
  printedSshEntry,
  runSsh,
  sshArgs,
  sshdUnavailable,
  startSshd,
  type TestSshd,
} from './helpers/sshd.ts';
import { unicodeLines } from './helpers/unicode-lines.ts';
import { eventually } from './helpers/wait.ts';

const SCENE = fileURLToPath(new URL('../examples/3d-scene/server.js', import.meta.url));
const unavailable = sshdUnavailable();

/** What a client sends along (ssh -o SetEnv): sshd takes the names its AcceptEnv lists. */
const CLIENT_ENV = {
  LANG: 'xx_CLIENT.UTF-8',
  LC_ALL: 'xx_CLIENT.UTF-8',
  LC_MESSAGES: 'xx_CLIENT.UTF-8',
  LC_TIME: 'xx_CLIENT.UTF-8',
  TZ: 'Client/Zone',
  COLORTERM: 'client-truecolor',
  TMPDIR: '/client/tmp',
};
/** sshd as distributions ship it (LANG LC_*), widened the way an admin might. */
const ACCEPT_ENV = 'AcceptEnv LANG LC_* TZ COLORTERM TMPDIR';

describe('SSH mode, standalone', { skip: unavailable }, () => {
  let dir: string;
  let sshd: TestSshd;
  let configPath: string;
  let logFile: string;
  const keys: Record<string, string> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-ssh-'));
    sshd = await startSshd(dir, [ACCEPT_ENV]);
    logFile = join(dir, 'ssh-connections.jsonl');
    configPath = join(dir, 'relay.yaml');
    writeFileSync(
      configPath,
      [
        'servers:',
        '  3d:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(SCENE)}]`,
        '    env: { SCENE_TITLE: Office }',
        '  private:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(SCENE)}]`,
        '    allow: { users: [carol] }',
        '  env-report:',
        `    command: ${JSON.stringify(process.execPath)}`,
        `    args: [${JSON.stringify(FIXTURE_SERVER)}]`,
        '    env: { LC_TIME: C.UTF-8 }',
        '    allow: { users: [erin] }',
        'limits: { sessionsPerUser: 2 }',
        `ssh: { mode: standalone, logFile: ssh-connections.jsonl, stateDir: ssh-state }`,
        '',
      ].join('\n'),
    );
    for (const user of ['alice', 'bob']) {
      keys[user] = makeClientKey(dir, user);
      const added = await runCli([
        'ssh',
        'authorize',
        '--user',
        user,
        '--key-file',
        `${keys[user]}.pub`,
        '--config',
        configPath,
        '--authorized-keys',
        sshd.authorizedKeys,
      ]);
      assert.equal(added.code, 0, added.stderr);
    }
  });

  after(async () => {
    await sshd?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the 3D scene to the SDK client through the printed Claude Desktop entry, and logs the connection', async () => {
    const entry = await printedSshEntry(sshd, keys.alice ?? '', '3d');
    assert.equal(entry.command, 'ssh');
    for (const option of ['BatchMode=yes', 'ServerAliveInterval=15', 'ServerAliveCountMax=3']) {
      assert.ok(entry.args.includes(option), `the entry sets ${option}`);
    }
    assert.ok(entry.args.includes('-T'), 'no TTY');
    const { client } = await connectThroughEntry(entry);
    try {
      assert.equal(client.getServerVersion()?.name, '3d-scene');
      const tools = await client.listTools();
      assert.ok(tools.tools.some((tool) => tool.name === 'add_object'));
      await client.callTool({ name: 'add_object', arguments: { shape: 'box', name: 'ssh-cube' } });
      assert.match(textOf(await client.callTool({ name: 'list_objects', arguments: {} })), /ssh-cube/);
    } finally {
      await client.close();
    }
    const records = () =>
      readFileSync(logFile, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    await eventually(async () => records().some((record) => record.event === 'end'), 'the end record');
    const start = records().find((record) => record.event === 'start');
    const end = records().find((record) => record.event === 'end' && record.connection === start?.connection);
    assert.equal(start?.user, 'alice');
    assert.equal(start?.server, '3d');
    assert.equal(start?.mode, 'standalone');
    assert.match(String(start?.client), /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof end?.durationMs, 'number');
    assert.equal(end?.reason, 'client closed the connection');
    assert.equal(statSync(logFile).mode & 0o777, 0o640);
  });

  it('keeps a refused name with Unicode line separators to one connection-log line', async () => {
    const asked = 'bad\u2028name\u0085with\u2029breaks';
    const refused = await runSsh(sshd, keys.alice ?? '', ['-T', `${sshd.login}@127.0.0.1`, asked]);
    assert.equal(refused.code, 1);
    const text = readFileSync(logFile, 'utf8');
    // Every piece a Unicode-aware reader sees is one whole record.
    const records = unicodeLines(text).map((line) => JSON.parse(line) as Record<string, unknown>);
    const record = records.find((entry) => entry.event === 'refused' && String(entry.reason).includes(asked));
    assert.ok(record, 'the refusal quotes the name exactly as asked');
    assert.doesNotMatch(text, /[\u0085\u2028\u2029]/);
  });

  it('refuses an unknown server, a server the user may not use, and a missing server name', async () => {
    const key = keys.alice ?? '';
    const unknown = await runSsh(sshd, key, ['-T', `${sshd.login}@127.0.0.1`, 'nope']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.trim(), 'mcp-relay: unknown server "nope" (servers: 3d)');
    const forbidden = await runSsh(sshd, key, ['-T', `${sshd.login}@127.0.0.1`, 'private']);
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /^mcp-relay: alice may not use server private/);
    const command = await runSsh(sshd, key, ['-T', `${sshd.login}@127.0.0.1`, 'cat /etc/passwd; id']);
    assert.equal(command.code, 1);
    assert.match(command.stderr, /^mcp-relay: unknown server "cat \/etc\/passwd; id"/);
    assert.doesNotMatch(command.stdout, /root:/);
    const refused = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"refused"'));
    assert.ok(refused.length >= 3, 'refusals are logged');
  });

  it('keeps the per-user limit across connections, and frees a slot when a connection ends', async () => {
    const entry = await printedSshEntry(sshd, keys.alice ?? '', '3d');
    const first = await connectThroughEntry(entry);
    const second = await connectThroughEntry(entry);
    try {
      const refused = await connectThroughEntry(entry).then(
        async (extra) => {
          await extra.client.close();
          assert.fail('a third connection was let in');
        },
        (error: Error & { stderr: () => string }) => error,
      );
      await eventually(
        async () => /mcp-relay: too many connections for alice: at most 2 at once/.test(refused.stderr()),
        'the refusal on stderr',
      );
      // Another user has slots of their own.
      const bob = await connectThroughEntry(await printedSshEntry(sshd, keys.bob ?? '', '3d'));
      await bob.client.close();
    } finally {
      await first.client.close();
    }
    try {
      // The slot of the closed connection comes back once its ssh-entry has ended.
      let third: EntryClient | undefined;
      await eventually(async () => {
        third = await connectThroughEntry(entry).catch(() => undefined);
        return third !== undefined;
      }, 'a free slot');
      assert.ok((await third?.client.listTools())?.tools.length);
      await third?.client.close();
    } finally {
      await second.client.close();
    }
  });

  it('refuses port forwarding and interactive shells on authorized keys (restrict)', async () => {
    const key = keys.alice ?? '';
    const login = `${sshd.login}@127.0.0.1`;
    // A remote forward is a global request sshd refuses outright for a restricted key.
    const remote = await runSsh(sshd, key, [
      '-N',
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '0:127.0.0.1:9',
      login,
    ]);
    assert.equal(remote.code, 255);
    assert.match(remote.stderr, /remote port forwarding failed/);
    // A local forward opens a channel per connection: the channel is refused, nothing gets through.
    const target: Server = createServer((socket) => socket.end('reached-the-target\n'));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetPort = (target.address() as { port: number }).port;
    const localPort = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const port = (probe.address() as { port: number }).port;
        probe.close(() => resolve(port));
      });
    });
    const forward = spawn(
      'ssh',
      [...sshArgs(sshd, key), '-N', '-L', `${localPort}:127.0.0.1:${targetPort}`, login],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let forwardErr = '';
    forward.stderr.on('data', (chunk: Buffer) => {
      forwardErr += chunk.toString();
    });
    try {
      let received = '';
      await eventually(async () => {
        received = await new Promise<string>((resolve) => {
          const socket = netConnect(localPort, '127.0.0.1');
          let data = '';
          socket.on('data', (chunk) => {
            data += chunk.toString();
          });
          socket.on('close', () => resolve(data));
          socket.on('error', () => resolve('(not listening yet)'));
        });
        return received !== '(not listening yet)';
      }, 'the local forward to listen');
      assert.equal(received, '', 'nothing came through the forward');
      await eventually(async () => /administratively prohibited|open failed/.test(forwardErr), 'the refusal');
    } finally {
      forward.kill('SIGTERM');
      target.close();
    }
    // A terminal is refused (ssh -tt gives up on it), and a shell request runs the forced command,
    // which asks for a server name instead of starting a shell.
    const tty = await runSsh(sshd, key, ['-tt', login]);
    assert.equal(tty.code, 255);
    assert.match(tty.stderr, /PTY allocation request failed/);
    const shell = await runSsh(sshd, key, [login]);
    assert.equal(shell.code, 1);
    assert.match(shell.stderr, /^mcp-relay: name the server after the host/m);
    assert.equal(shell.stdout, '');
  });

  it('forwards for a key without restrict (the control: sshd itself allows it)', async () => {
    const carol = makeClientKey(dir, 'carol');
    const line = `command="cat" ${readFileSync(`${carol}.pub`, 'utf8').trim()}\n`;
    writeFileSync(sshd.authorizedKeys, readFileSync(sshd.authorizedKeys, 'utf8') + line);
    const forward = spawn(
      'ssh',
      [
        ...sshArgs(sshd, carol),
        '-N',
        '-o',
        'ExitOnForwardFailure=yes',
        '-R',
        '0:127.0.0.1:9',
        `${sshd.login}@127.0.0.1`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    forward.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    try {
      await eventually(async () => /Allocated port \d+ for remote forward/.test(stderr), 'the forward');
    } finally {
      forward.kill('SIGTERM');
    }
  });

  it("gives the server none of the variables the SSH client sent, only the config's", async () => {
    const setEnv = `SetEnv=${Object.entries(CLIENT_ENV)
      .map(([name, value]) => `${name}=${value}`)
      .join(' ')}`;
    const login = `${sshd.login}@127.0.0.1`;
    // The control: sshd hands the client's variables to a forced command, so ssh-entry receives them.
    const dave = makeClientKey(dir, 'dave');
    const line = `restrict,command="/usr/bin/env" ${readFileSync(`${dave}.pub`, 'utf8').trim()}\n`;
    writeFileSync(sshd.authorizedKeys, readFileSync(sshd.authorizedKeys, 'utf8') + line);
    const control = await runSsh(sshd, dave, ['-o', setEnv, '-T', login]);
    assert.equal(control.code, 0, control.stderr);
    for (const [name, value] of Object.entries(CLIENT_ENV))
      assert.ok(control.stdout.includes(`${name}=${value}\n`), `sshd accepted ${name}`);

    const erin = makeClientKey(dir, 'erin');
    const added = await runCli([
      'ssh',
      'authorize',
      '--user',
      'erin',
      '--key-file',
      `${erin}.pub`,
      '--config',
      configPath,
      '--authorized-keys',
      sshd.authorizedKeys,
    ]);
    assert.equal(added.code, 0, added.stderr);
    const entry = await printedSshEntry(sshd, erin, 'env-report');
    const { client } = await connectThroughEntry({ ...entry, args: ['-o', setEnv, ...entry.args] });
    try {
      const env = async (name: string) => textOf(await client.callTool({ name: 'env', arguments: { name } }));
      assert.deepEqual(
        {
          LANG: await env('LANG'),
          LC_ALL: await env('LC_ALL'),
          LC_MESSAGES: await env('LC_MESSAGES'),
          LC_TIME: await env('LC_TIME'),
          TZ: await env('TZ'),
          COLORTERM: await env('COLORTERM'),
          TMPDIR: await env('TMPDIR'),
          MCP_RELAY_USER: await env('MCP_RELAY_USER'),
        },
        {
          LANG: 'C.UTF-8',
          LC_ALL: '<unset>',
          LC_MESSAGES: '<unset>',
          LC_TIME: 'C.UTF-8',
          TZ: '<unset>',
          COLORTERM: '<unset>',
          TMPDIR: '<unset>',
          MCP_RELAY_USER: 'erin',
        },
        "a fixed locale, the config's LC_TIME, and nothing the client chose",
      );
      assert.notEqual(await env('PATH'), '<unset>', 'PATH comes from sshd, which the client cannot set');
    } finally {
      await client.close();
    }
  });

  it('refuses a revoked key', async () => {
    const key = keys.bob ?? '';
    const before = await runSsh(sshd, key, ['-T', `${sshd.login}@127.0.0.1`, 'nope']);
    assert.equal(before.code, 1, 'bob is let in (and refused by ssh-entry for the unknown server)');
    const revoked = await runCli([
      'ssh',
      'revoke',
      '--user',
      'bob',
      '--authorized-keys',
      sshd.authorizedKeys,
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /removed 1 key\(s\) of bob/);
    const after = await runSsh(sshd, key, ['-T', `${sshd.login}@127.0.0.1`, '3d']);
    assert.equal(after.code, 255);
    assert.match(after.stderr, /Permission denied \(publickey\)/);
    // alice is untouched.
    const alice = await runSsh(sshd, keys.alice ?? '', ['-T', `${sshd.login}@127.0.0.1`, 'nope']);
    assert.equal(alice.code, 1);
  });
});
