// servers.<name>.watch: a change to a server's code restarts its running backends gracefully. Paths
// only (no globs): a file is watched through its folder (editors replace files rather than write them
// in place), a folder with everything in it; changes are debounced, so a save of many files is one restart.

import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';

/** Quiet time after the last change before the restart (an install or a save writes several files). */
export const WATCH_DEBOUNCE_MS = 1_000;

export interface CodeWatchOptions {
  /** Each server's watched paths (absolute). */
  paths: Readonly<Record<string, readonly string[]>>;
  /** Restarts the server's backends; resolves when done. */
  restart: (server: string) => Promise<void>;
  log: Logger;
  debounceMs?: number;
}

/** Watches each server's paths; `close` stops every watcher and timer. */
export class CodeWatch {
  readonly #watchers: FSWatcher[] = [];
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** Servers being restarted, and whether a change came meanwhile (it restarts them again after). */
  readonly #running = new Map<string, boolean>();
  readonly #options: CodeWatchOptions;
  #closed = false;

  constructor(options: CodeWatchOptions) {
    this.#options = options;
    for (const [server, paths] of Object.entries(options.paths))
      for (const path of paths) this.#watch(server, path);
  }

  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.close();
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  #watch(server: string, path: string): void {
    const { log } = this.#options;
    const folder = isDirectory(path);
    const target = folder ? path : dirname(path);
    const name = folder ? undefined : basename(path);
    try {
      const watcher = watch(target, { recursive: folder, persistent: false }, (_event, file) => {
        if (name !== undefined && file !== null && basename(String(file)) !== name) return;
        this.#changed(server, path);
      });
      watcher.on('error', (error) => log.warn({ server, path, err: errorText(error) }, 'watch failed'));
      watcher.unref();
      this.#watchers.push(watcher);
      log.info({ server, path }, 'watching the server’s code: a change restarts its backends');
    } catch (error) {
      log.warn(
        { server, path, err: errorText(error) },
        'cannot watch this path; changes to it restart nothing',
      );
    }
  }

  #changed(server: string, path: string): void {
    if (this.#closed) return;
    clearTimeout(this.#timers.get(server));
    const timer = setTimeout(() => {
      this.#timers.delete(server);
      this.#options.log.info({ server, path }, 'the server’s code changed; restarting its backends');
      void this.#restart(server);
    }, this.#options.debounceMs ?? WATCH_DEBOUNCE_MS);
    timer.unref();
    this.#timers.set(server, timer);
  }

  async #restart(server: string): Promise<void> {
    if (this.#running.has(server)) {
      this.#running.set(server, true);
      return;
    }
    this.#running.set(server, false);
    try {
      await this.#options.restart(server);
    } catch (error) {
      this.#options.log.error({ server, err: errorText(error) }, 'restart after a code change failed');
    }
    const again = this.#running.get(server) === true;
    this.#running.delete(server);
    if (again && !this.#closed) await this.#restart(server);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
