// SSH mode without sshd, through real processes: ssh-entry's refusals before it serves anything (and
// `ssh authorize` in a child process), and the gateway's socket listener.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listenOnUnixSocket } from '../src/http/unix-listener.ts';
import { runCli } from './helpers/cli.ts';
import { fixtureServer, INITIALIZE, startGateway } from './helpers/gateway.ts';
import { makeClientKey } from './helpers/sshd.ts';

const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));

let dir: string;
let configPath: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-ssh-keys-'));
  configPath = join(dir, 'relay.yaml');
  writeFileSync(configPath, 'servers:\n  3d: { command: node, args: [server.js] }\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A config whose server needs ${SCENE_TOKEN}, which sshd's minimal environment does not have. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: the literal ${VAR} syntax of relay.yaml.
const NEEDS_TOKEN = 'servers:\n  3d: { command: node, env: { TOKEN: "${SCENE_TOKEN}" } }\n';

describe('mcp-relay ssh-entry refusals (no sshd needed)', () => {
  const entry = (config: string, env: Record<string, string>, ...extra: string[]) =>
    runCli(['ssh-entry', '--config', config, '--user', 'alice', ...extra], {
      env: { PATH: process.env.PATH ?? '', HOME: dir, ...env },
    });

  it('attached mode refuses at once when the gateway is not running', async () => {
    const config = join(dir, 'attached.yaml');
    writeFileSync(config, `${NEEDS_TOKEN}ssh: { mode: attached, socket: gw.sock }\n`);
    const result = await entry(config, { SSH_ORIGINAL_COMMAND: '3d' });
    assert.equal(result.code, 1);
    // The unset ${SCENE_TOKEN} is the gateway's business: attached mode does not trip over it.
    assert.equal(
      result.stderr,
      `mcp-relay: the gateway is not running (nothing listens on ${join(dir, 'gw.sock')}); start "mcp-relay serve" or use ssh.mode standalone\n`,
    );
    assert.equal(result.stdout, '');
  });

  it('standalone mode names an unset variable; a bad user name in the forced command is refused', async () => {
    const config = join(dir, 'standalone.yaml');
    writeFileSync(config, NEEDS_TOKEN);
    const unset = await entry(config, { SSH_ORIGINAL_COMMAND: '3d' });
    assert.equal(unset.code, 2);
    assert.match(unset.stderr, /environment variable SCENE_TOKEN is not set/);
    // The admin's shell may lack the service's variables too: authorize still takes the config.
    const key = makeClientKey(dir, 'token-user');
    const added = await runCli(
      [
        'ssh',
        'authorize',
        '--user',
        'alice',
        '--key-file',
        `${key}.pub`,
        '--config',
        config,
        '--authorized-keys',
        join(dir, 'ak-token'),
      ],
      { env: { PATH: process.env.PATH ?? '', HOME: dir } },
    );
    assert.equal(added.code, 0, added.stderr);
    const badUser = await runCli(['ssh-entry', '--config', configPath, '--user', 'a b']);
    assert.equal(badUser.code, 2);
    assert.match(badUser.stderr, /^mcp-relay: the user name must be/);
    // A forced command written before names made only of dots were refused.
    const dots = await runCli(['ssh-entry', '--config', configPath, '--user', '..'], {
      env: { PATH: process.env.PATH ?? '', HOME: dir, SSH_ORIGINAL_COMMAND: '3d' },
    });
    assert.equal(dots.code, 2);
    assert.match(dots.stderr, /^mcp-relay: the user name must be .*not only dots/);
    assert.equal(dots.stdout, '');
  });
});

describe('the gateway socket listener', () => {
  const handler = (_req: IncomingMessage, res: ServerResponse) => res.end('ok');

  it('answers a user header made only of dots with 401 and the reason', async () => {
    const socket = join(dir, 'names.sock');
    const gw = await startGateway(
      { servers: { echo: fixtureServer() }, ssh: { mode: 'attached', socket }, auth: { none: true } },
      { auth: false },
    );
    const post = (user: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = httpRequest(
          {
            socketPath: socket,
            path: '/mcp/echo',
            method: 'POST',
            headers: {
              accept: 'application/json, text/event-stream',
              'content-type': 'application/json',
              'mcp-relay-user': user,
            },
          },
          (response) => {
            let body = '';
            response.setEncoding('utf8').on('data', (chunk: string) => {
              body += chunk;
            });
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          },
        );
        request.on('error', reject);
        request.end(INITIALIZE);
      });
    try {
      assert.equal((await post('alice')).status, 200);
      for (const user of ['..', '.']) {
        const refused = await post(user);
        assert.equal(refused.status, 401, user);
        assert.match(
          refused.body,
          /needs a valid mcp-relay-user header \(1-64 letters, digits or \._@-, not only dots\)/,
        );
      }
    } finally {
      await gw.close();
    }
  });

  it('replaces a stale socket left by a killed process, and refuses a path that is not a socket', async () => {
    const path = join(dir, 'stale.sock');
    // A process killed with SIGKILL cannot remove its socket: that is the stale case.
    const holder = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
    ]);
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    assert.ok(statSync(path).isSocket(), 'the dead socket is still there');
    const listener = await listenOnUnixSocket({ path, mode: 0o600, handler });
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const request = httpGet({ socketPath: path, path: '/' }, (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => {
            text += chunk.toString();
          });
          response.on('end', () => resolve(text));
        });
        request.on('error', reject);
      });
      assert.equal(answer, 'ok');
      assert.equal(statSync(path).mode & 0o777, 0o600);
    } finally {
      await listener.close();
    }
    assert.throws(() => statSync(path), /ENOENT/, 'close removes the socket');
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    await assert.rejects(
      listenOnUnixSocket({ path: file, mode: 0o600, handler }),
      /exists and is not a socket/,
    );
  });

  it('lets a gateway whose TCP port is taken exit, its socket closed and removed', async () => {
    const path = join(dir, 'busy.sock');
    const busy = createNetServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as AddressInfo;
    const config = join(dir, 'busy.yaml');
    writeFileSync(
      config,
      `listen: { host: 127.0.0.1, port: ${port} }\nauth: { none: true }\nservers:\n  3d: { command: node }\nssh: { mode: attached, socket: ${path} }\n`,
    );
    const serve = spawn(process.execPath, [RUN_CLI, 'serve', '--config', config], { stdio: 'pipe' });
    let stderr = '';
    serve.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // Before the fix the socket kept the failed gateway running for ever; give it ample time on a busy machine.
    const timer = setTimeout(() => serve.kill('SIGKILL'), 30_000);
    const [code, signal] = (await once(serve, 'exit')) as [number | null, string | null];
    clearTimeout(timer);
    busy.close();
    assert.equal(signal, null, `the failed gateway had to be killed: ${stderr}`);
    assert.equal(code, 1);
    assert.match(stderr, /EADDRINUSE/);
    assert.throws(() => statSync(path), /ENOENT/, 'the socket is removed');
  });
});
