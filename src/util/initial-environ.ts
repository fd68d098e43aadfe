// Wipes variables from the process's initial environment block. Linux shows that block, not the live
// environment, as /proc/<pid>/environ to every process of the same account: `delete process.env.X`
// (unsetenv) only drops the pointer to `X=value`, the bytes stay. The block is this process's own
// stack memory, so it is overwritten through /proc/self/mem (always open to the process itself).

import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';

/**
 * Overwrites with NUL bytes each `NAME=value` of the initial environment whose NAME is in `names`,
 * and says how many. Call it only after deleting those names from process.env, so nothing points
 * at the bytes any more. Linux only (elsewhere 0); throws when /proc/self/mem cannot be written.
 */
export function eraseFromInitialEnvironment(names: ReadonlySet<string>): number {
  if (process.platform !== 'linux' || names.size === 0) return 0;
  const { start, end } = environmentBounds();
  const fd = openSync('/proc/self/mem', 'r+');
  try {
    const block = Buffer.alloc(end - start);
    readSync(fd, block, 0, block.length, start);
    let erased = 0;
    for (let offset = 0; offset < block.length; ) {
      const nul = block.indexOf(0, offset);
      const stop = nul === -1 ? block.length : nul;
      const equals = block.indexOf(0x3d, offset);
      if (equals !== -1 && equals < stop && names.has(block.toString('utf8', offset, equals))) {
        // A number position (user-space addresses fit in 53 bits): a bigint one failed here with EIO.
        writeSync(fd, Buffer.alloc(stop - offset), 0, stop - offset, start + offset);
        erased++;
      }
      offset = stop + 1;
    }
    return erased;
  } finally {
    closeSync(fd);
  }
}

/** Where the initial environment lies in memory: env_start and env_end, fields 50 and 51 of /proc/self/stat. */
function environmentBounds(): { start: number; end: number } {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // The command name (field 2, in parentheses) may hold spaces and parentheses: count from its end.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[50 - 3]);
  const end = Number(fields[51 - 3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start <= 0 || end < start) {
    throw new Error('/proc/self/stat does not give the environment bounds');
  }
  return { start, end };
}
