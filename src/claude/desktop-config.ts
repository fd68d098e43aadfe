// Merges one entry into the user's claude_desktop_config.json: backup first, every other key and
// entry left as it was, atomic replace, and never over a file we cannot parse.

import { constants } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, posix, win32 } from 'node:path';
import { errorText, RelayError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic-write.ts';
import { type ClaudeServerEntry, checkEntryName } from './entry.ts';

const FILE_NAME = 'claude_desktop_config.json';

/** Where Claude Desktop keeps its config on `platform`. */
export function claudeDesktopConfigPath(
  platform: NodeJS.Platform = process.platform,
  env: NodeJS.ProcessEnv = process.env,
  home: string = homedir(),
): string {
  if (platform === 'win32') {
    return win32.join(env.APPDATA || win32.join(home, 'AppData', 'Roaming'), 'Claude', FILE_NAME);
  }
  if (platform === 'darwin') return posix.join(home, 'Library', 'Application Support', 'Claude', FILE_NAME);
  return posix.join(env.XDG_CONFIG_HOME || posix.join(home, '.config'), 'Claude', FILE_NAME);
}

export interface InstallResult {
  path: string;
  /** The copy of the previous file, or undefined when there was none or nothing changed. */
  backup: string | undefined;
  /** The file did not exist before. */
  created: boolean;
  /** An entry of that name existed and was replaced. */
  replaced: boolean;
  /** The same entry was already there: nothing was written. */
  unchanged: boolean;
}

export async function installClaudeEntry(
  path: string,
  name: string,
  entry: ClaudeServerEntry,
  now: Date = new Date(),
): Promise<InstallResult> {
  checkEntryName(name);
  const previous = await readIfExists(path);
  const root = previous === undefined ? {} : parseConfig(previous, path);
  const servers = root.mcpServers ?? {};
  if (!isPlainObject(servers)) {
    throw new RelayError(
      'CLAUDE_CONFIG',
      `${path}: "mcpServers" is not an object; fix it by hand, the file was left untouched`,
    );
  }
  const existing = servers[name];
  if (existing !== undefined && JSON.stringify(existing) === JSON.stringify(entry)) {
    return { path, backup: undefined, created: false, replaced: false, unchanged: true };
  }
  // Spreading keeps key order: other entries stay where they were, a replaced entry keeps its place.
  const merged = { ...root, mcpServers: { ...servers, [name]: entry } };
  let backup: string | undefined;
  if (previous === undefined) {
    await mkdir(dirname(path), { recursive: true });
  } else {
    backup = await backUp(path, now);
  }
  // 0600: the entry carries the user's API key in its env.
  await writeFileAtomic(path, `${JSON.stringify(merged, null, 2)}\n`, 0o600);
  return {
    path,
    backup,
    created: previous === undefined,
    replaced: existing !== undefined,
    unchanged: false,
  };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RelayError('CLAUDE_CONFIG', `cannot read ${path}: ${errorText(error)}`, {
      cause: error,
    });
  }
}

function parseConfig(text: string, path: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new RelayError(
      'CLAUDE_CONFIG',
      `${path} is not valid JSON (${errorText(error)}); fix or move it and run again. It was left untouched.`,
    );
  }
  if (!isPlainObject(value)) {
    throw new RelayError(
      'CLAUDE_CONFIG',
      `${path} does not hold a JSON object; fix or move it and run again. It was left untouched.`,
    );
  }
  return value;
}

/** Copies the file to `<path>.bak-<timestamp>` (no colons: Windows forbids them in names). */
async function backUp(path: string, now: Date): Promise<string> {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  for (let attempt = 0; ; attempt++) {
    const backup = `${path}.bak-${stamp}${attempt === 0 ? '' : `-${attempt}`}`;
    try {
      await copyFile(path, backup, constants.COPYFILE_EXCL);
      return backup;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 100) throw error;
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
