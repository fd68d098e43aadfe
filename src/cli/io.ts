// Where a command reads and writes: the process's own streams and environment from bin/, buffers and a
// chosen environment when a test drives main() in-process. Commands touch process.stdout only through it.

import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  /** Relative paths in flags are taken from here; absent: the process's working directory. */
  readonly cwd?: string | undefined;
  /** What `connect` and `ssh-entry` bridge; absent: the process's stdin. */
  readonly stdin?: Readable | undefined;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/**
 * The io main() handed to a command through citty's `data`, or the process's own when the command is
 * run some other way.
 */
export function ioFrom(data: unknown): CliIo {
  return isCliIo(data) ? data : processIo();
}

/** `path` as given when io has no cwd of its own (so messages show what the user typed), else under it. */
export function pathIn(io: CliIo, path: string): string {
  return io.cwd === undefined ? path : resolve(io.cwd, path);
}

/** `path` made absolute against io's working directory. */
export function absolutePathIn(io: CliIo, path: string): string {
  return io.cwd === undefined ? resolve(path) : resolve(io.cwd, path);
}

function isCliIo(data: unknown): data is CliIo {
  return typeof data === 'object' && data !== null && 'stdout' in data && 'stderr' in data && 'env' in data;
}
