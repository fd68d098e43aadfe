// Watches relay.yaml of a running gateway (polling, and on demand for SIGHUP) and hands each valid
// new version to the gateway; an invalid edit is logged with its line and the running config kept.

import { unwatchFile, watchFile } from 'node:fs';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ConfigChange } from './live.ts';
import type { RelayConfig } from './schema.ts';

export interface ConfigReloaderOptions {
  /** The config file (absolute). */
  file: string;
  /** Reads and validates the file (with the command line's overrides); throws a RelayError when invalid. */
  load: () => RelayConfig;
  /** Applies a valid config to the running gateway. */
  apply: (config: RelayConfig) => ConfigChange;
  log: Logger;
  /** How often the file is stat'ed (ms). Default 1000: an edit applies within about two seconds. */
  pollIntervalMs?: number;
}

export class ConfigReloader {
  readonly #options: ConfigReloaderOptions;
  #reloads: Promise<ConfigChange | undefined> = Promise.resolve(undefined);
  #closed = false;
  // Polling survives editors that replace the file (a new inode) and network filesystems, like KeyStore.
  readonly #onStat = (): void => {
    void this.reload();
  };

  constructor(options: ConfigReloaderOptions) {
    this.#options = options;
    watchFile(options.file, { interval: options.pollIntervalMs ?? 1_000, persistent: false }, this.#onStat);
  }

  /**
   * Reads the file now and applies it. Never rejects: resolves with what changed, or undefined when
   * the file is invalid (logged; the running config stays). Reloads run one at a time, in order.
   */
  reload(): Promise<ConfigChange | undefined> {
    this.#reloads = this.#reloads.then(() => this.#reloadOnce());
    return this.#reloads;
  }

  /** Stops watching. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unwatchFile(this.#options.file, this.#onStat);
  }

  #reloadOnce(): ConfigChange | undefined {
    if (this.#closed) return undefined;
    const { file, log } = this.#options;
    let change: ConfigChange;
    try {
      change = this.#options.apply(this.#options.load());
    } catch (error) {
      // The message names the file, line and key, as at start.
      log.error({ file, err: errorText(error) }, 'config not reloaded; the running config stays');
      return undefined;
    }
    if (change.applied.length > 0) log.info({ file, applied: change.applied }, 'config reloaded');
    if (change.restartNeeded.length > 0) {
      log.warn({ file, restartNeeded: change.restartNeeded }, 'restart needed for some config changes');
    }
    return change;
  }
}
