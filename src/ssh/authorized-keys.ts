// authorized_keys as `mcp-relay ssh authorize|revoke|list` edit it: one `restrict,command="…"` line
// per key, marked `mcp-relay:<user>` in its comment. Every other line is left byte for byte; edits
// are locked, atomic, and keep the file's mode and owner (sshd reads the file as its owner).

import { chmod, chown, lstat, mkdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { RelayError } from '../errors.ts';
import { type FileOwner, writeFileAtomic } from '../util/atomic-write.ts';
import { withFileLock } from '../util/file-lock.ts';
import { type ForcedCommand, parseForcedCommand, renderForcedCommand } from './forced-command.ts';
import { KEY_TYPES, keyFromFields, type PublicKey } from './public-key.ts';

const MARKER = 'mcp-relay:';

/** One key line written by `ssh authorize`, as `ssh list` shows it. */
export interface AuthorizedEntry {
  readonly user: string;
  readonly groups: readonly string[];
  readonly configPath: string;
  readonly key: PublicKey;
}

export type AuthorizeOutcome = 'added' | 'replaced' | 'unchanged';

/** Adds (or updates) the line for `key`; refuses a key that already belongs to someone else. */
export async function authorizeKey(
  file: string,
  key: PublicKey,
  command: ForcedCommand,
): Promise<AuthorizeOutcome> {
  const line = renderLine(key, command);
  let outcome: AuthorizeOutcome = 'added';
  await editFile(file, (lines) => {
    const index = lines.findIndex((existing) => parseLine(existing)?.key.blob === key.blob);
    if (index === -1) return [...lines, line];
    const existing = parseLine(lines[index] ?? '');
    if (existing?.entry?.user !== command.user) {
      const owner = existing?.entry ? `user ${existing.entry.user}` : 'a line mcp-relay did not write';
      throw new RelayError(
        'AUTHORIZED_KEYS',
        `this key (${key.fingerprint}) is already in ${file} for ${owner}; revoke or remove that line first`,
      );
    }
    if (lines[index] === line) {
      outcome = 'unchanged';
      return undefined;
    }
    outcome = 'replaced';
    return lines.map((existingLine, at) => (at === index ? line : existingLine));
  });
  return outcome;
}

/** Removes the user's lines (only the one with `fingerprint` when given); resolves with how many went. */
export async function revokeKeys(file: string, user: string, fingerprint?: string): Promise<number> {
  let removed = 0;
  await editFile(file, (lines) => {
    const kept = lines.filter((line) => {
      const entry = parseLine(line)?.entry;
      const match =
        entry?.user === user && (fingerprint === undefined || entry.key.fingerprint === fingerprint);
      if (match) removed++;
      return !match;
    });
    return removed > 0 ? kept : undefined;
  });
  return removed;
}

export async function listAuthorized(file: string): Promise<AuthorizedEntry[]> {
  const text = await readIfExists(file);
  if (text === undefined) return [];
  return splitLines(text).flatMap((line) => {
    const entry = parseLine(line)?.entry;
    return entry ? [entry] : [];
  });
}

function renderLine(key: PublicKey, command: ForcedCommand): string {
  // sshd takes `\"` as a quote inside command="…"; renderForcedCommand refuses quotes, so none is needed.
  const comment = [`${MARKER}${command.user}`, key.comment].filter(Boolean).join(' ');
  return `restrict,command="${renderForcedCommand(command)}" ${key.type} ${key.blob} ${comment}`;
}

interface ParsedLine {
  key: PublicKey;
  /** Set for lines this module wrote. */
  entry: AuthorizedEntry | undefined;
}

/** Reads one authorized_keys line: `[options] type base64 [comment]`, where options may hold quoted spaces. */
export function parseLine(line: string): ParsedLine | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const optionsEnd = KEY_TYPES.has(text.split(/\s+/)[0] ?? '') ? 0 : endOfOptions(text);
  const options = text.slice(0, optionsEnd);
  const [type = '', blob, ...comment] = text.slice(optionsEnd).trim().split(/\s+/);
  const key = keyFromFields(type, blob, comment.join(' '));
  if (!key) return undefined;
  const marker = comment[0]?.startsWith(MARKER) ? comment[0].slice(MARKER.length) : undefined;
  const commandText = /(?:^|,)command="((?:[^"\\]|\\.)*)"/.exec(options)?.[1];
  const command =
    commandText === undefined ? undefined : parseForcedCommand(commandText.replace(/\\"/g, '"'));
  const entry =
    marker !== undefined && command !== undefined && command.user === marker
      ? {
          user: command.user,
          groups: command.groups,
          configPath: command.configPath,
          key: { ...key, comment: comment.slice(1).join(' ') },
        }
      : undefined;
  return { key, entry };
}

/** Index just past the options field: the first blank outside double quotes (`\"` does not end a quote). */
function endOfOptions(text: string): number {
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (char === '\\' && quoted) index++;
    else if (char === '"') quoted = !quoted;
    else if (!quoted && (char === ' ' || char === '\t')) return index;
  }
  return text.length;
}

/**
 * The locked read-modify-write. `edit` returns the new lines, or undefined to leave the file alone.
 * A symlinked file is edited at its target, so the link stays a link.
 */
async function editFile(
  file: string,
  edit: (lines: readonly string[]) => readonly string[] | undefined,
): Promise<void> {
  const target = await editTarget(file);
  await refuseForeignTarget(file, target);
  // The lock file goes beside the target, so its folder must exist first (an account with no ~/.ssh).
  await makeSshFolder(dirname(target));
  await withFileLock(target, async () => {
    const text = await readIfExists(target);
    const next = edit(text === undefined ? [] : splitLines(text));
    if (next === undefined) return;
    const { mode, owner } = await keepAttributes(target, text !== undefined);
    await writeFileAtomic(target, next.length > 0 ? `${next.join('\n')}\n` : '', mode, owner);
  });
}

/** The file a symlink points to (even when that does not exist yet), so the link stays a link. */
async function editTarget(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch {
    const link = await readlink(file).catch(() => undefined);
    return link === undefined ? file : resolve(dirname(file), link);
  }
}

/**
 * Run as root, a link must not lead the edit into another account's file: the account that owns the
 * folder of the path given (and so could have planted the link) must own what it points to, else a
 * key meant for it would be added to, say, /root/.ssh/authorized_keys.
 */
async function refuseForeignTarget(file: string, target: string): Promise<void> {
  if (process.getuid?.() !== 0 || target === resolve(file)) return;
  const planter = (await lstat(dirname(resolve(file)))).uid;
  const owner = (await stat(target).catch(() => stat(dirname(target)))).uid;
  if (owner !== planter) {
    throw new RelayError(
      'USAGE',
      `${file} leads through a link to ${target}, owned by uid ${owner}, not by uid ${planter} who owns ${dirname(resolve(file))}; refusing to edit it as root`,
    );
  }
}

/**
 * Creates ~/.ssh when the account has none: mode 0700 whatever the umask, and, when root creates it,
 * owned by the owner of the folder it is in (the home), since sshd ignores a ~/.ssh its user cannot read.
 */
async function makeSshFolder(folder: string): Promise<void> {
  const created = await mkdir(folder, { recursive: true, mode: 0o700 });
  if (created === undefined) return;
  await chmod(folder, 0o700);
  if (process.getuid?.() !== 0) return;
  const home = await stat(dirname(folder));
  if (home.uid !== 0 || home.gid !== 0) await chown(folder, home.uid, home.gid);
}

/** The existing file's mode and owner; for a new file 0600 and the owner of its folder (~/.ssh). */
async function keepAttributes(file: string, exists: boolean): Promise<{ mode: number; owner?: FileOwner }> {
  const folder = dirname(file);
  const info = exists ? await stat(file) : await stat(folder);
  const mode = exists ? info.mode & 0o7777 : 0o600;
  // Only root can give a file away; any other writer owns what it writes, as before.
  const asRoot = process.getuid?.() === 0;
  const differs = info.uid !== process.getuid?.() || info.gid !== process.getgid?.();
  return asRoot && differs ? { mode, owner: { uid: info.uid, gid: info.gid } } : { mode };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    const info = await lstat(file);
    if (info.isDirectory())
      throw new RelayError('AUTHORIZED_KEYS', `${file} is a folder, not an authorized_keys file`);
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof RelayError) throw error;
    throw new RelayError(
      'AUTHORIZED_KEYS',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}
