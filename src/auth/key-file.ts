// The API-key file: YAML holding one record per key with its SHA-256, never the key. Parsing,
// serializing, and the locked read-modify-write that `mcp-relay keys` does; the gateway only reads.

import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Document, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { errorText, RelayError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic-write.ts';
import { withFileLock } from '../util/file-lock.ts';
import { hasPrincipalNameCharacters } from './principal-name.ts';

const HEADER =
  ' written by mcp-relay keys; holds only hashes (SHA-256) of API keys, never the keys.\n Edit with `mcp-relay keys create|list|revoke`.';

// Only the characters: a record an older version wrote for a name now refused (`..`) still loads, so
// the file stays manageable; the gateway refuses that key when it is used (auth/authenticate.ts).
const principalName = z.string().refine(hasPrincipalNameCharacters, 'must be 1-64 letters, digits or ._@-');

// Revoking deletes the record rather than flagging it: a revoked key then has nothing left to match.
const recordSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{4,32}$/, 'must be lowercase hex'),
  user: principalName,
  groups: z.array(principalName).default([]),
  created: z.iso.datetime(),
  expires: z.iso.datetime().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
});

const fileSchema = z
  .strictObject({
    version: z.literal(1),
    keys: z.array(recordSchema).default([]),
  })
  .superRefine((file, ctx) => {
    const ids = new Set<string>();
    const hashes = new Set<string>();
    file.keys.forEach((record, index) => {
      if (ids.has(record.id))
        ctx.addIssue({ code: 'custom', path: ['keys', index, 'id'], message: 'duplicate id' });
      if (hashes.has(record.sha256)) {
        ctx.addIssue({ code: 'custom', path: ['keys', index, 'sha256'], message: 'duplicate key hash' });
      }
      ids.add(record.id);
      hashes.add(record.sha256);
    });
  });

export type KeyRecord = Readonly<z.output<typeof recordSchema>>;

/** Parses the file's text. Empty text is an empty list. Errors name the line, never a hash. */
export function parseKeysText(text: string, file: string): readonly KeyRecord[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError) {
    const line = lineCounter.linePos(firstError.pos[0]).line;
    throw new RelayError('KEYS_FILE', `${file}:${line}: invalid YAML: ${firstError.message}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return [];
  const result = fileSchema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 5).map((issue) => {
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
      return `${where}: ${issue.message}`;
    });
    throw new RelayError('KEYS_FILE', `invalid keys file ${file}: ${issues.join('; ')}`);
  }
  return result.data.keys;
}

export function serializeKeys(records: readonly KeyRecord[]): string {
  const doc = new Document({ version: 1, keys: records });
  doc.commentBefore = HEADER;
  return doc.toString();
}

/** Reads and parses the file; a missing file holds no keys. */
export async function readKeysFile(file: string): Promise<readonly KeyRecord[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new RelayError('KEYS_FILE', `cannot read keys file ${file}: ${errorText(error)}`, {
      cause: error,
    });
  }
  return parseKeysText(text, file);
}

/**
 * Read-modify-write under a lock file: `change` gets the current records and returns the new ones
 * plus a result for the caller. The file is replaced atomically (mode 0600), so a gateway reading
 * it at any moment sees either the old or the new list.
 */
export async function updateKeysFile<T>(
  file: string,
  change: (records: readonly KeyRecord[]) => { records: readonly KeyRecord[]; result: T },
): Promise<T> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  return withFileLock(file, async () => {
    const { records, result } = change(await readKeysFile(file));
    await writeFileAtomic(file, serializeKeys(records), 0o600);
    return result;
  });
}
