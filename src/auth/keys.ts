// The gateway's view of the API-key file: O(1) authentication by key hash, reloaded when
// `mcp-relay keys create|revoke` rewrites the file, so keys change without a restart.

import { unwatchFile, watchFile } from 'node:fs';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type KeyRecord, readKeysFile } from './key-file.ts';
import { hashApiKey, looksLikeApiKey } from './key-material.ts';
import { KeyUsage } from './key-usage.ts';
import { isPrincipalName } from './principal-name.ts';

/** Who a valid key belongs to. */
export interface KeyPrincipal {
  readonly user: string;
  readonly keyId: string;
  readonly groups: readonly string[];
  /** When the key expires (epoch ms), when it does: a WebSocket opened with it is closed then. */
  readonly expiresAt?: number;
}

/**
 * Key ids revoked elsewhere (several replicas: cluster/revocations.ts): refused though this machine's
 * file still lists them; `onChange` after new ones, so their sessions end as after a reload.
 */
export interface RevokedKeys {
  isRevoked(keyId: string): boolean;
  onChange(listener: () => void): void;
}

export interface KeyStoreOptions {
  /** How often the file is stat'ed for changes (ms). Default 500: changes apply within about a second. */
  pollIntervalMs?: number;
  /** The clock used for expiry, for tests. */
  now?: () => number;
  /** How often last uses are written beside the file (key-usage.ts); default USAGE_FLUSH_MS. */
  usageFlushMs?: number;
  /** Revocations shared by the replicas of a cluster. */
  revocations?: RevokedKeys;
}

interface Entry {
  readonly principal: KeyPrincipal;
  /** Epoch ms; undefined = never expires. */
  readonly expiresAt: number | undefined;
}

export class KeyStore {
  readonly file: string;
  #log: Logger;
  #now: () => number;
  #byHash: ReadonlyMap<string, Entry> = new Map();
  #byId: ReadonlyMap<string, Entry> = new Map();
  readonly #onReload: Array<() => void> = [];
  #reloads: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #usage: KeyUsage;
  readonly #revocations: RevokedKeys | undefined;
  // Polling (stat every interval) rather than fs.watch: it survives the atomic rename that replaces
  // the file's inode, a file that does not exist yet, and network filesystems where fs.watch is silent.
  #onStat = (): void => {
    void this.reload();
  };

  private constructor(file: string, log: Logger, options: KeyStoreOptions) {
    this.file = file;
    this.#log = log;
    this.#now = options.now ?? Date.now;
    this.#usage = new KeyUsage(file, log, options.usageFlushMs);
    this.#revocations = options.revocations;
    // A key revoked on another machine: its sessions here end, as after this file changed.
    this.#revocations?.onChange(() => {
      if (!this.#closed) for (const listener of this.#onReload) listener();
    });
    // Watch before the first read, so a change that lands in between is not missed.
    watchFile(file, { interval: options.pollIntervalMs ?? 500, persistent: false }, this.#onStat);
  }

  /**
   * Loads `file` (absolute) and starts watching it. A missing file means no keys yet; a malformed
   * one rejects with a RelayError('KEYS_FILE') naming the line.
   */
  static async open(file: string, log: Logger, options: KeyStoreOptions = {}): Promise<KeyStore> {
    const store = new KeyStore(file, log, options);
    try {
      store.#install(await readKeysFile(file));
    } catch (error) {
      store.close();
      throw error;
    }
    return store;
  }

  /** The key's owner, or undefined for an unknown, revoked or expired key. */
  authenticate(token: string): KeyPrincipal | undefined {
    if (!looksLikeApiKey(token)) return undefined;
    const entry = this.#byHash.get(hashApiKey(token));
    if (!entry || this.#revocations?.isRevoked(entry.principal.keyId)) return undefined;
    const now = this.#now();
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) return undefined;
    this.#usage.note(entry.principal.keyId, now);
    return entry.principal;
  }

  /** The owner of the key with this id while it is valid: undefined once revoked or expired. */
  principalOf(keyId: string): KeyPrincipal | undefined {
    const entry = this.#byId.get(keyId);
    if (
      !entry ||
      this.#revocations?.isRevoked(keyId) ||
      (entry.expiresAt !== undefined && entry.expiresAt <= this.#now())
    )
      return undefined;
    return entry.principal;
  }

  /** Calls `listener` after each reload that installed a new set of keys, and after keys were revoked elsewhere. */
  onReload(listener: () => void): void {
    this.#onReload.push(listener);
  }

  /** How many keys are loaded (expired ones included). */
  get size(): number {
    return this.#byHash.size;
  }

  /**
   * Re-reads the file now (the watcher calls this; so may a SIGHUP handler). Never rejects: a
   * malformed file keeps the last good keys and logs an error. Reloads run one at a time, in order.
   */
  reload(): Promise<void> {
    this.#reloads = this.#reloads.then(() => this.#reloadOnce());
    return this.#reloads;
  }

  /** Stops watching and writes the last uses. Idempotent; leaves no timers behind. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unwatchFile(this.file, this.#onStat);
    this.#usage.close();
  }

  async #reloadOnce(): Promise<void> {
    if (this.#closed) return;
    let records: readonly KeyRecord[];
    try {
      records = await readKeysFile(this.file);
    } catch (error) {
      // The message names the file and line only; it never carries key material.
      this.#log.error(
        { file: this.file, err: errorText(error) },
        'API keys file is invalid; keeping the last good keys',
      );
      return;
    }
    if (this.#closed) return;
    const before = this.#byHash.size;
    this.#install(records);
    this.#log.info({ file: this.file, keys: records.length, before }, 'API keys reloaded');
    for (const listener of this.#onReload) listener();
  }

  #install(records: readonly KeyRecord[]): void {
    const byHash = new Map<string, Entry>();
    const byId = new Map<string, Entry>();
    for (const record of records) {
      if (!isPrincipalName(record.user)) {
        // Written before names made only of dots were refused; authenticate.ts refuses the key.
        this.#log.warn(
          { file: this.file, id: record.id },
          'API key belongs to a user name that is not accepted (only dots); it is refused until revoked',
        );
      }
      const expiresAt = record.expires === undefined ? undefined : Date.parse(record.expires);
      const entry: Entry = {
        principal: Object.freeze({
          user: record.user,
          keyId: record.id,
          groups: Object.freeze([...record.groups]),
          ...(expiresAt === undefined ? {} : { expiresAt }),
        }),
        expiresAt,
      };
      byHash.set(record.sha256, entry);
      byId.set(record.id, entry);
    }
    this.#byHash = byHash;
    this.#byId = byId;
  }
}
