// servers.<name>.watch's watcher on real files in a temp folder: a folder with what is in it, a file
// replaced the way editors and installs do it (rename over it), debounced to one restart per burst.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CodeWatch } from '../src/gateway/code-watch.ts';
import { silentLogger } from '../src/log.ts';

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let tries = 0; !condition(); tries++) {
    assert.ok(tries < 100, what);
    await sleep(20);
  }
}

describe('CodeWatch', () => {
  it('restarts once per burst of changes in a watched folder, and for a file replaced by rename', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-watch-'));
    mkdirSync(join(dir, 'lib', 'deep'), { recursive: true });
    writeFileSync(join(dir, 'server.js'), 'v1');
    writeFileSync(join(dir, 'other.txt'), 'x');
    const restarts: string[] = [];
    const watch = new CodeWatch({
      paths: { a: [join(dir, 'lib')], b: [join(dir, 'server.js')] },
      restart: async (server) => {
        restarts.push(server);
      },
      log: silentLogger,
      debounceMs: 100,
    });
    try {
      for (let n = 0; n < 5; n++) writeFileSync(join(dir, 'lib', 'deep', `f${n}.js`), 'x');
      await until(() => restarts.length > 0, 'a change in the folder restarts');
      await sleep(300);
      assert.deepEqual(restarts, ['a'], 'one restart for the burst');
      // A file next to the watched one restarts nothing.
      writeFileSync(join(dir, 'other.txt'), 'y');
      await sleep(300);
      assert.deepEqual(restarts, ['a']);
      writeFileSync(join(dir, 'server.js.tmp'), 'v2');
      renameSync(join(dir, 'server.js.tmp'), join(dir, 'server.js'));
      await until(() => restarts.includes('b'), 'the replaced file restarts its server');
      // Watching goes on after a replace (the folder is watched, not the old file).
      await sleep(200);
      writeFileSync(join(dir, 'server.js'), 'v3');
      await until(() => restarts.filter((server) => server === 'b').length === 2, 'and again');
    } finally {
      watch.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a change during a restart brings one more restart after it, not one each', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-watch-'));
    writeFileSync(join(dir, 'server.js'), 'v1');
    let running = 0;
    let release: () => void = () => {};
    const restarts: number[] = [];
    const watch = new CodeWatch({
      paths: { a: [join(dir, 'server.js')] },
      restart: async () => {
        running++;
        restarts.push(running);
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        running--;
      },
      log: silentLogger,
      debounceMs: 30,
    });
    try {
      writeFileSync(join(dir, 'server.js'), 'v2');
      await until(() => restarts.length === 1, 'restarted');
      for (const version of ['v3', 'v4']) {
        writeFileSync(join(dir, 'server.js'), version);
        await sleep(100);
      }
      assert.equal(restarts.length, 1, 'not while one runs');
      release();
      await until(() => restarts.length === 2, 'once more after it');
      release();
      await sleep(150);
      assert.deepEqual(restarts, [1, 1], 'never two at once, and only one more');
    } finally {
      watch.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
