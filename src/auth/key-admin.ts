// What `mcp-relay keys` does, as library calls: create a key (returned once), list (with last uses),
// revoke one key or a user's keys.

import { RelayError } from '../errors.ts';
import { type KeyRecord, readKeysFile, updateKeysFile } from './key-file.ts';
import { generateApiKey, generateKeyId, hashApiKey } from './key-material.ts';
import { readKeyUsage } from './key-usage.ts';
import { isPrincipalName, PRINCIPAL_NAME_RULE } from './principal-name.ts';

export interface CreateKeyOptions {
  user: string;
  groups?: readonly string[];
  /** Lifetime in ms; omitted = never expires. */
  expiresInMs?: number;
  /** The clock, for tests. */
  now?: Date;
}

export interface CreatedKey {
  /** The key itself: shown to the user once, stored nowhere. */
  key: string;
  record: KeyRecord;
}

/** A key as lists show it: everything but the hash. */
export interface KeySummary {
  id: string;
  user: string;
  groups: readonly string[];
  created: string;
  expires: string | null;
  expired: boolean;
  /** When a gateway last accepted the key (to about a minute), or null when never. */
  lastUsed: string | null;
}

export async function createKey(file: string, options: CreateKeyOptions): Promise<CreatedKey> {
  assertPrincipalName('user', options.user);
  const groups = [...new Set(options.groups ?? [])];
  for (const group of groups) assertPrincipalName('group', group);
  if (options.expiresInMs !== undefined && !(options.expiresInMs > 0)) {
    throw new RelayError('USAGE', 'the expiry must be a positive duration such as 90d');
  }
  const now = options.now ?? new Date();
  const key = generateApiKey();
  return updateKeysFile(file, (records) => {
    const taken = new Set(records.map((record) => record.id));
    let id = generateKeyId();
    while (taken.has(id)) id = generateKeyId();
    const record: KeyRecord = {
      id,
      user: options.user,
      groups,
      created: now.toISOString(),
      ...(options.expiresInMs === undefined
        ? {}
        : { expires: new Date(now.getTime() + options.expiresInMs).toISOString() }),
      sha256: hashApiKey(key),
    };
    return { records: [...records, record], result: { key, record } };
  });
}

/** Removes the key with `id`; an unknown id is an error (exit code 1), not a silent no-op. */
export async function revokeKey(file: string, id: string): Promise<KeyRecord> {
  return updateKeysFile(file, (records) => {
    const found = records.find((record) => record.id === id);
    if (!found) {
      // The id is user input: shown escaped and bounded.
      const shown = JSON.stringify(id.slice(0, 40));
      throw new RelayError('KEY_NOT_FOUND', `no key with id ${shown} in ${file} (see "mcp-relay keys list")`);
    }
    return { records: records.filter((record) => record !== found), result: found };
  });
}

/**
 * Removes every key of `user` that `ids` names (the list the admin confirmed); a key created since is
 * kept. None left to remove is an error.
 */
export async function revokeUserKeys(
  file: string,
  user: string,
  ids: readonly string[],
): Promise<KeyRecord[]> {
  return updateKeysFile(file, (records) => {
    const chosen = records.filter((record) => record.user === user && ids.includes(record.id));
    if (chosen.length === 0)
      throw new RelayError('KEY_NOT_FOUND', `no key of user ${JSON.stringify(user.slice(0, 40))} in ${file}`);
    return { records: records.filter((record) => !chosen.includes(record)), result: chosen };
  });
}

export async function listKeys(file: string, now: Date = new Date()): Promise<KeySummary[]> {
  const records = await readKeysFile(file);
  const usage = readKeyUsage(file);
  return records.map((record) => ({
    id: record.id,
    user: record.user,
    groups: record.groups,
    created: record.created,
    expires: record.expires ?? null,
    expired: isExpired(record, now.getTime()),
    lastUsed: lastUse(usage, record.id),
  }));
}

function lastUse(usage: ReadonlyMap<string, number>, id: string): string | null {
  const time = usage.get(id);
  return time === undefined ? null : new Date(time).toISOString();
}

export function isExpired(record: KeyRecord, nowMs: number): boolean {
  return record.expires !== undefined && Date.parse(record.expires) <= nowMs;
}

function assertPrincipalName(what: 'user' | 'group', name: string): void {
  if (!isPrincipalName(name)) {
    throw new RelayError('USAGE', `invalid ${what} name: use ${PRINCIPAL_NAME_RULE}`);
  }
}
