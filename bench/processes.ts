// Processes the benchmark starts, and what /proc says about them: CPU time and RSS of a process tree.
// Every child is registered so that it (and whatever it started) is ended by pid, even when the run fails.

import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';

/** Clock ticks per second of utime/stime in /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

const started = new Set<ChildProcess>();

/** Spawns a process that `stopProcess`/`stopAll` will end, with its descendants. */
export function startProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options, shell: false });
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

/** Registers a process started elsewhere (the forked driver) for the same cleanup. */
export function trackProcess(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
}

/** SIGTERM, then SIGKILL after `graceMs`; then SIGKILL whatever it had started and left behind. */
export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  const pid = child.pid;
  const family = pid ? descendants(pid) : [];
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
  started.delete(child);
  // Some targets start their backends in process groups of their own, which outlive a killed parent.
  for (const orphan of family) killQuietly(orphan);
}

/** Ends every registered process at once (used on failure and on signals); synchronous so `exit` can call it. */
export function killAllNow(): void {
  for (const child of started) {
    const family = child.pid ? descendants(child.pid) : [];
    child.kill('SIGKILL');
    for (const pid of family) killQuietly(pid);
  }
  started.clear();
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

interface StatFields {
  ppid: number;
  /** utime + stime, in ticks. */
  cpuTicks: number;
}

function readStat(pid: number): StatFields | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: count fields from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `root`, found through the parent pids in /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) > 57) continue;
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0 && found.length < 100_000) {
    const pid = queue.shift() as number;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** CPU seconds (user + system) a process has used so far; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  return (readStat(pid)?.cpuTicks ?? 0) / TICKS_PER_SECOND;
}

/** Resident set size of one process in bytes; 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU of a target: its main process (the gateway) apart from everything under it (the backends). */
export interface TreeCpu {
  main: number;
  rest: number;
}

export function treeCpu(mainPid: number | undefined, otherPids: readonly number[]): TreeCpu {
  const main = mainPid === undefined ? 0 : cpuSeconds(mainPid);
  const rest = otherPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  return { main, rest };
}

/** RSS of a whole process tree: the root and every live descendant. */
export function treeRss(root: number): { bytes: number; processes: number } {
  const pids = [root, ...descendants(root)];
  return { bytes: pids.reduce((sum, pid) => sum + rssBytes(pid), 0), processes: pids.length };
}

/** A port that was free a moment ago on 127.0.0.1, for programs that cannot be told to use port 0. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`; bounded by `timeoutMs`. */
export async function waitForPort(port: number, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`exited (${child.exitCode}) before listening`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1');
  });
}

/** Text a child wrote to stdout and stderr (the last 8 KiB), for error messages when it fails to start. */
export function captureOutput(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-8_192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}
