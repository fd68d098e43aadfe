// An advisory lock file (`<file>.lock`, created exclusively) so two CLI runs that read-modify-write
// the same file do not lose each other's change. Readers never need it: writes are atomic renames.

import { open, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { RelayError } from '../errors.ts';

export interface FileLockOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** A lock older than this (ms) was left by a crashed run and is taken over. */
  staleMs?: number;
}

export async function withFileLock<T>(
  file: string,
  work: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const lockPath = `${file}.lock`;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const staleMs = options.staleMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if ((await isStale(lockPath, staleMs)) && (await removeStale(lockPath, staleMs))) continue;
      if (Date.now() >= deadline) {
        throw new RelayError(
          'KEYS_FILE',
          `${lockPath} is held by another run; if none is running, delete that file and try again`,
        );
      }
      await sleep(50);
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/**
 * Removes a stale lock under a takeover guard. Without it, two runs that both saw the stale lock could
 * each remove it, the second removing the fresh lock the first had just created, and both would hold it.
 */
async function removeStale(lockPath: string, staleMs: number): Promise<boolean> {
  const guard = `${lockPath}.takeover`;
  try {
    await (await open(guard, 'wx', 0o600)).close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Another run is taking over: wait for it. A guard left by a crash in its few milliseconds goes stale.
    if (await isStale(guard, staleMs)) await rm(guard, { force: true });
    return false;
  }
  try {
    // Checked again under the guard: the lock may have been taken over and re-created meanwhile.
    if (await isStale(lockPath, staleMs)) await rm(lockPath, { force: true });
    return true;
  } finally {
    await rm(guard, { force: true });
  }
}

async function isStale(lockPath: string, staleMs: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(lockPath)).mtimeMs > staleMs;
  } catch {
    return false; // gone already: the next attempt takes it
  }
}
