// `mcp-relay demo` as a user runs it: its API key is the same after a restart (kept owner-only in the
// demo's folder, only its hash in the keys file), and a taken port is reported before anything changes:
// no config written, no key made or revoked (a second start used to revoke the running demo's key first),
// and scripts/start.sh stops at a taken port before it reinstalls anything.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli, runProcess } from './helpers/cli.ts';
import { answerOf, INITIALIZE, rawPost } from './helpers/gateway.ts';

const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));
const START_SH = fileURLToPath(new URL('../scripts/start.sh', import.meta.url));

/** Starts the demo and resolves once it printed its endpoint and key; `stop` is SIGTERM and its exit. */
async function startDemo(dir: string) {
  const child = spawn(process.execPath, [RUN_CLI, 'demo', '--dir', dir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = once(child, 'close');
  const printed = await new Promise<{ url: string; key: string }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the demo did not start:\n${stdout}\n${stderr}`)),
      20_000,
    );
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const url = /MCP endpoint +(\S+)/.exec(stdout)?.[1];
      const key = /API key +(\S+)/.exec(stdout)?.[1];
      if (url && key) {
        clearTimeout(timer);
        resolve({ url, key });
      }
    });
    void exited.then(() => reject(new Error(`the demo exited:\n${stdout}\n${stderr}`)));
  });
  return {
    ...printed,
    stdout: () => stdout,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('mcp-relay demo', () => {
  let dir: string;
  before(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'mcp-relay-demo-')), 'state');
  });
  after(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

  it('keeps its API key across restarts: kept 0600 in its folder, only a hash in the keys file', async () => {
    const first = await startDemo(dir);
    let key: string;
    try {
      key = first.key;
      assert.match(first.stdout(), /user "demo", new; kept for the next run in .*demo-key, mode 0600/);
      const reply = await rawPost(first.url, INITIALIZE, { authorization: `Bearer ${key}` });
      assert.equal(reply.status, 200, reply.text);
      assert.ok((answerOf(reply) as { result?: unknown }).result);
    } finally {
      await first.stop();
    }
    assert.equal(statSync(join(dir, 'demo-key')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, 'demo-key'), 'utf8').trim(), key);
    assert.ok(
      !readFileSync(join(dir, 'keys.yaml'), 'utf8').includes(key),
      'the keys file holds no plaintext',
    );

    const second = await startDemo(dir);
    try {
      assert.equal(second.key, key, 'the same key after a restart');
      assert.match(second.stdout(), /user "demo", the same as last run/);
      const reply = await rawPost(second.url, INITIALIZE, { authorization: `Bearer ${key}` });
      assert.equal(reply.status, 200, reply.text);
    } finally {
      await second.stop();
    }
  });

  it('says a taken port is taken before it changes anything: the running demo keeps its key', async () => {
    const running = await startDemo(dir);
    const busy = createServer();
    try {
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      const { port } = busy.address() as AddressInfo;
      const keysBefore = readFileSync(join(dir, 'keys.yaml'), 'utf8');
      const started = Date.now();
      const result = await runCli(['demo', '--dir', dir, '--port', String(port)]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `^mcp-relay: port ${port} on 127\\.0\\.0\\.1 is already taken, perhaps by a demo still running .*--port N`,
        ),
      );
      assert.ok(Date.now() - started < 10_000);
      assert.equal(readFileSync(join(dir, 'keys.yaml'), 'utf8'), keysBefore, 'no key made or revoked');
      const reply = await rawPost(running.url, INITIALIZE, { authorization: `Bearer ${running.key}` });
      assert.equal(reply.status, 200, "the running demo's key still works");
      // In a fresh folder nothing is written either.
      const fresh = join(dir, '..', 'fresh');
      const again = await runCli(['demo', '--dir', fresh, '--port', String(port)]);
      assert.equal(again.code, 1);
      assert.ok(!existsSync(fresh), 'no folder, config or key for a demo that could not start');
    } finally {
      busy.close();
      await running.stop();
    }
  });
});

describe('scripts/start.sh', () => {
  /**
   * A copy of the script in a temp folder whose ensure-node.sh, npm and bin/mcp-relay.js only record
   * that they ran: the real ones would reinstall this checkout's node_modules.
   */
  function stagedScript() {
    const root = mkdtempSync(join(tmpdir(), 'mcp-relay-start-'));
    const log = join(root, 'ran.log');
    mkdirSync(join(root, 'scripts'));
    mkdirSync(join(root, 'bin'));
    mkdirSync(join(root, 'stub'));
    copyFileSync(START_SH, join(root, 'scripts', 'start.sh'));
    writeFileSync(join(root, 'scripts', 'ensure-node.sh'), `echo ensure-node >> ${JSON.stringify(log)}\n`);
    writeFileSync(join(root, 'stub', 'npm'), `#!/bin/sh\necho "npm $*" >> ${JSON.stringify(log)}\n`, {
      mode: 0o755,
    });
    writeFileSync(
      join(root, 'bin', 'mcp-relay.js'),
      `require('node:fs').appendFileSync(${JSON.stringify(log)}, 'mcp-relay ' + process.argv.slice(2).join(' ') + '\\n');\n`,
    );
    const run = (args: string[]) =>
      runProcess('bash', [join(root, 'scripts', 'start.sh'), ...args], {
        env: { ...process.env, PATH: `${join(root, 'stub')}:${process.env.PATH}` },
      });
    const ran = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    return { root, run, ran };
  }

  it('stops at a taken port before installing anything, and otherwise passes --port on to the demo', async () => {
    const staged = stagedScript();
    const busy = createServer();
    try {
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      const { port } = busy.address() as AddressInfo;
      const taken = await staged.run(['--port', String(port)]);
      assert.equal(taken.code, 1);
      assert.match(taken.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already taken`));
      assert.equal(staged.ran(), '', 'neither Node setup, npm ci nor the demo ran');
      busy.close();
      await once(busy, 'close');
      const free = await staged.run([`--port=${port}`]);
      assert.equal(free.code, 0, free.stderr);
      assert.equal(staged.ran(), `ensure-node\nnpm ci --no-audit --no-fund\nmcp-relay demo --port=${port}\n`);
      assert.match(free.stderr, /alias mcp-relay='\S+ \S+\/bin\/mcp-relay\.js'/);
    } finally {
      busy.close();
      rmSync(staged.root, { recursive: true, force: true });
    }
  });
});
