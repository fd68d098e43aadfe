// The audit log: one JSON line per session start/end and per tools/call, appended to a file that is
// rotated by size (audit.jsonl → audit.jsonl.1 → …), or written to stderr. Identities and outcomes
// only: never tokens or keys, and a call's arguments only when the config opts in.

import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { AuditConfig } from '../config/policy-schema.ts';
import { errorText, RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { jsonLine } from '../util/json-lines.ts';

export type AuditEventName =
  | 'session.start'
  | 'session.end'
  | 'tools.call'
  | 'app.sign-in'
  | 'app.open'
  | 'app.close';
export type AuditOutcome = 'ok' | 'error' | 'refused' | 'timeout' | 'cancelled';

/** One line of the audit log, before `time` is added. Absent fields are left out of the line. */
export interface AuditRecord {
  event: AuditEventName;
  /** The replica that wrote the line, in a cluster (each keeps its own log). */
  replica?: string;
  user: string;
  /** How the user authenticated (api-key, oidc, mtls, ssh, none). */
  auth: string;
  server: string;
  /** The client's address as the gateway saw it (the TCP peer: a proxy's when behind one). */
  address?: string;
  session?: string;
  groups?: readonly string[];
  tool?: string;
  outcome?: AuditOutcome;
  /** Why a session ended or a request was refused or failed (one line, no secrets). */
  reason?: string;
  durationMs?: number;
  requestBytes?: number;
  responseBytes?: number;
  requests?: number;
  arguments?: unknown;
}

/** Errors writing the log are reported at most this often, so a full disk does not flood the logs. */
const ERROR_REPORT_INTERVAL_MS = 60_000;

export class AuditLog {
  readonly #log: Logger;
  #config: AuditConfig;
  #fd: number | undefined;
  #size = 0;
  #lastErrorReport = 0;
  #closed = false;

  /** Opens the file (creating its folder) at once, so a path that cannot be written fails at start. */
  constructor(config: AuditConfig, log: Logger) {
    this.#log = log;
    this.#config = config;
    if (this.#file) this.#open(this.#file);
  }

  get includeArguments(): boolean {
    return this.#config.includeArguments;
  }

  /** The file written, or undefined for stderr. */
  get #file(): string | undefined {
    const file = this.#config.file;
    return this.#config.stderr || file === undefined || file === '-' ? undefined : file;
  }

  /** Whether `next` writes to the same place (then `update` applies it; otherwise open a new log). */
  sameDestination(next: AuditConfig): boolean {
    const file = next.stderr || next.file === undefined || next.file === '-' ? undefined : next.file;
    return file === this.#file;
  }

  /** Applies new size, rotation and argument settings for the same destination. */
  update(next: AuditConfig): void {
    this.#config = next;
  }

  write(record: AuditRecord): void {
    if (this.#closed) return;
    const line = jsonLine({ time: new Date().toISOString(), ...record });
    if (this.#file === undefined) {
      process.stderr.write(line);
      return;
    }
    try {
      const bytes = Buffer.byteLength(line);
      if (this.#size > 0 && this.#size + bytes > this.#config.maxSize) this.#tryRotate();
      // Synchronous appends keep the lines whole and in order; they are one per call, not per byte.
      if (this.#fd === undefined) this.#open(this.#file);
      writeSync(this.#fd as number, line);
      this.#size += bytes;
    } catch (error) {
      this.#reportError(error);
    }
  }

  /** Closes the file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeFd();
  }

  #open(file: string): void {
    try {
      mkdirSync(dirname(file), { recursive: true });
      this.#fd = openSync(file, 'a', 0o600);
      this.#size = fstatSync(this.#fd).size;
    } catch (cause) {
      throw new RelayError(
        'CONFIG_INVALID',
        `cannot open the audit log ${file}: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
  }

  /** Rotates; a rotation that fails is reported and the line still written (to the reopened file). */
  #tryRotate(): void {
    try {
      this.#rotate();
    } catch (error) {
      this.#reportError(error);
      this.#closeFd();
      this.#size = 0;
    }
  }

  /** audit.jsonl.(keep-1) → .keep, …, audit.jsonl → .1; with keep 0 the old file is dropped. */
  #rotate(): void {
    const file = this.#file;
    if (!file) return;
    this.#closeFd();
    const keep = this.#config.keep;
    // Files beyond `keep` (left after keep was lowered) go first.
    for (let index = keep + 1; existsSync(`${file}.${index}`); index++)
      rmSync(`${file}.${index}`, { force: true });
    for (let index = keep - 1; index >= 1; index--) {
      if (existsSync(`${file}.${index}`)) renameSync(`${file}.${index}`, `${file}.${index + 1}`);
    }
    // The file may be gone (moved or deleted by hand or by logrotate): then there is nothing to rename,
    // and throwing here would lose this line and, as the size never reset, every line after it.
    if (keep > 0 && existsSync(file)) renameSync(file, `${file}.1`);
    else rmSync(file, { force: true });
    this.#open(file);
  }

  #closeFd(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
    } catch {
      // Already closed by a failed rotation: nothing left to release.
    }
    this.#fd = undefined;
  }

  #reportError(error: unknown): void {
    const now = Date.now();
    if (now - this.#lastErrorReport < ERROR_REPORT_INTERVAL_MS) return;
    this.#lastErrorReport = now;
    this.#log.error({ err: errorText(error), file: this.#file }, 'cannot write the audit log');
  }
}
