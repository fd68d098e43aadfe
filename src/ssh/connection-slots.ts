// Per-user connection limits across standalone ssh-entry processes, which share nothing but the disk:
// one small file per live connection in a state folder, counted under a lock. A file whose process
// is gone (killed, crashed, machine restarted) is stale: it is ignored and removed.

import { readFileSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withFileLock } from '../util/file-lock.ts';

export interface ConnectionSlot {
  /** Frees the slot; synchronous so it also works on the way out of a dying process. Idempotent. */
  release(): void;
}

export type ClaimResult = { ok: true; slot: ConnectionSlot } | { ok: false; live: number };

interface SlotRecord {
  pid: number;
  /** The process's start time (Linux), so a recycled pid does not keep a dead connection's slot. */
  started: string | undefined;
  server: string;
  since: string;
}

/**
 * Takes one of `limit` slots of `user` for this process. User names have no `+` (auth/principal-name.ts), so
 * `<user>+<pid>.conn` never mixes two users up.
 */
export async function claimConnectionSlot(
  stateDir: string,
  user: string,
  server: string,
  limit: number,
): Promise<ClaimResult> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const prefix = `${user}+`;
  return withFileLock(join(stateDir, prefix), async () => {
    let live = 0;
    for (const name of await readdir(stateDir)) {
      if (!name.startsWith(prefix) || !name.endsWith('.conn')) continue;
      const path = join(stateDir, name);
      if (await isLive(path)) live++;
      else await rm(path, { force: true });
    }
    if (live >= limit) return { ok: false, live };
    const path = join(stateDir, `${prefix}${process.pid}.conn`);
    const record: SlotRecord = {
      pid: process.pid,
      started: processStart(process.pid),
      server,
      since: new Date().toISOString(),
    };
    await writeFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    let released = false;
    return {
      ok: true,
      slot: {
        release() {
          if (released) return;
          released = true;
          try {
            // Synchronous: release() runs on exit paths where a promise would never settle.
            unlinkSync(path);
          } catch {
            // already gone (an admin cleaned up)
          }
        },
      },
    };
  });
}

async function isLive(path: string): Promise<boolean> {
  let record: Partial<SlotRecord>;
  try {
    record = JSON.parse(await readFile(path, 'utf8')) as Partial<SlotRecord>;
  } catch {
    return false; // unreadable or half-written by a process that died mid-write
  }
  if (typeof record.pid !== 'number' || !processExists(record.pid)) return false;
  const started = processStart(record.pid);
  return record.started === undefined || started === undefined || started === record.started;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks); undefined where /proc is not there. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
