// When each API key was last used: the gateway notes it in memory at each authentication and writes it
// beside the keys file (`<keys file>.last-used.json`, key id → time, nothing secret) at most once per
// interval and when it stops; `mcp-relay keys list` reads it. Several gateways on one keys file merge:
// each write keeps the later time of what is on disk and what it saw.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';

/** How often noted uses are written (a list is exact to about this much). */
export const USAGE_FLUSH_MS = 60_000;

/** The file the last uses of the keys in `keysFile` are kept in. */
export function usageFile(keysFile: string): string {
  return `${keysFile}.last-used.json`;
}

/** Key id → last use (ms since the epoch), as written; empty when there is no file or it is unreadable. */
export function readKeyUsage(keysFile: string): Map<string, number> {
  const usage = new Map<string, number>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(usageFile(keysFile), 'utf8'));
  } catch {
    return usage;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return usage;
  for (const [id, time] of Object.entries(parsed)) {
    const ms = typeof time === 'string' ? Date.parse(time) : Number.NaN;
    if (Number.isFinite(ms)) usage.set(id, ms);
  }
  return usage;
}

export class KeyUsage {
  readonly #keysFile: string;
  readonly #log: Logger;
  /** Uses noted since the last write. */
  #pending = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #failed = false;

  constructor(keysFile: string, log: Logger, flushMs: number = USAGE_FLUSH_MS) {
    this.#keysFile = keysFile;
    this.#log = log;
    this.#timer = setInterval(() => this.flush(), flushMs).unref();
  }

  /** Notes a use of key `id` now: one map write, nothing else on the request's path. */
  note(id: string, now: number): void {
    this.#pending.set(id, now);
  }

  /** Writes what was noted, merged with the file; a failure is logged once and the uses are dropped. */
  flush(): void {
    if (this.#pending.size === 0) return;
    const merged = readKeyUsage(this.#keysFile);
    for (const [id, time] of this.#pending) merged.set(id, Math.max(time, merged.get(id) ?? 0));
    this.#pending = new Map();
    const body: Record<string, string> = {};
    for (const [id, time] of merged) body[id] = new Date(time).toISOString();
    const file = usageFile(this.#keysFile);
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
      renameSync(temporary, file);
    } catch (error) {
      if (!this.#failed)
        this.#log.warn(
          { file, err: errorText(error) },
          'cannot record when API keys were last used; "keys list" will not show it',
        );
      this.#failed = true;
    }
  }

  /** Writes what is left and stops the timer. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
