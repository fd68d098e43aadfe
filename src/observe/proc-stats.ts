// A process's CPU time and resident memory, read from /proc at the moment someone asks (a scrape, the
// admin page): nothing is sampled in the background. Linux only; elsewhere every answer is undefined.

import { readFile } from 'node:fs/promises';

/** Clock ticks per second of /proc/<pid>/stat times: USER_HZ, 100 on every Linux ABI Node runs on. */
const TICKS_PER_SECOND = 100;

export interface ProcessUsage {
  /** User plus system CPU time since the process started, in seconds. */
  readonly cpuSeconds: number;
  /** Resident set size (VmRSS), in bytes. */
  readonly rssBytes: number;
}

/** `pid`'s CPU time and RSS, or undefined when it is gone (or this is not Linux). */
export async function processUsage(pid: number): Promise<ProcessUsage | undefined> {
  if (process.platform !== 'linux' || !Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const [stat, status] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/status`, 'utf8'),
    ]);
    const cpuSeconds = cpuSecondsOf(stat);
    const rssBytes = rssBytesOf(status);
    if (cpuSeconds === undefined || rssBytes === undefined) return undefined;
    return { cpuSeconds, rssBytes };
  } catch {
    return undefined;
  }
}

/**
 * utime + stime (fields 14 and 15) of a /proc/<pid>/stat line, in seconds. The command name (field 2)
 * is in parentheses and may itself hold spaces and parentheses, so fields are counted after the last ")".
 */
export function cpuSecondsOf(stat: string): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name, the state is field 3: utime (14) and stime (15) are at offsets 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / TICKS_PER_SECOND : undefined;
}

/** VmRSS of a /proc/<pid>/status text, in bytes (the kernel writes it in kB). */
export function rssBytesOf(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}
