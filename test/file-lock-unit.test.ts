// The advisory file lock: one holder at a time, also when many runs find a crashed run's stale lock
// at once (each used to remove it, the later ones removing the fresh lock of the first).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { withFileLock } from '../src/util/file-lock.ts';

describe('withFileLock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function contend(file: string, runs: number): Promise<{ maxHolders: number; done: number }> {
    let holders = 0;
    let maxHolders = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: runs }, async (_, i) => {
        // Staggered starts: some runs find the stale lock while another is already replacing it.
        await sleep(i % 4);
        return withFileLock(
          file,
          async () => {
            holders++;
            maxHolders = Math.max(maxHolders, holders);
            await sleep(5);
            holders--;
            done++;
          },
          { timeoutMs: 20_000, staleMs: 1_000 },
        );
      }),
    );
    return { maxHolders, done };
  }

  it('lets one run at a time hold the lock', async () => {
    const result = await contend(join(dir, 'plain'), 20);
    assert.deepEqual(result, { maxHolders: 1, done: 20 });
  });

  it('lets exactly one of many runs take over a stale lock, and the rest wait their turn', async () => {
    for (let round = 0; round < 12; round++) {
      const file = join(dir, `stale-${round}`);
      writeFileSync(`${file}.lock`, '999999\n');
      const old = new Date(Date.now() - 60_000);
      utimesSync(`${file}.lock`, old, old);
      const result = await contend(file, 8);
      assert.deepEqual(result, { maxHolders: 1, done: 8 }, `round ${round}`);
    }
  });
});
