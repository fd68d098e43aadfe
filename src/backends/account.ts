// Which account a backend runs as (servers.<name>.user and .group): names or ids resolved from
// /etc/passwd and /etc/group without a native addon (so accounts only NSS knows, e.g. from LDAP, are
// not found), checked when the gateway starts, so a wrong one stops it with the key in the message.

import { readFileSync } from 'node:fs';
import type { ServerConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';

/** How a backend is spawned for its account: the ids (undefined when nothing switches) and its HOME, USER, LOGNAME. */
export interface BackendAccount {
  uid: number | undefined;
  gid: number | undefined;
  env: Readonly<Record<string, string>>;
}

/** What accounts are resolved against: the account files' text and whom the gateway runs as. */
export interface AccountSystem {
  passwd: string;
  group: string;
  /** The gateway's effective uid and gid; undefined where the platform has none (Windows). */
  uid: number | undefined;
  gid: number | undefined;
}

/** This machine's /etc/passwd and /etc/group and the gateway's own ids. */
export function thisSystem(): AccountSystem {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  return {
    passwd: read('/etc/passwd'),
    group: read('/etc/group'),
    uid: process.geteuid?.(),
    gid: process.getegid?.(),
  };
}

/**
 * The account of every server that names a user or group; throws a config error naming the key when
 * one does not exist, or differs from the gateway's own while the gateway is not root.
 */
export function resolveAccounts(
  servers: Readonly<Record<string, ServerConfig>>,
  system: () => AccountSystem = thisSystem,
): Map<string, BackendAccount> {
  const accounts = new Map<string, BackendAccount>();
  let known: AccountSystem | undefined;
  for (const [name, server] of Object.entries(servers)) {
    if (server.user === undefined && server.group === undefined) continue;
    known ??= system();
    accounts.set(name, resolveAccount(name, server, known));
  }
  return accounts;
}

interface Entry {
  name: string;
  id: number;
  /** passwd only: the primary group and the home folder. */
  gid?: number;
  home?: string;
}

function resolveAccount(
  server: string,
  wanted: Pick<ServerConfig, 'user' | 'group'>,
  system: AccountSystem,
): BackendAccount {
  const key = `servers.${server}.${wanted.user !== undefined ? 'user' : 'group'}`;
  const fail = (message: string) => new RelayError('CONFIG_INVALID', message);
  if (system.uid === undefined || system.gid === undefined) {
    throw fail(`${key}: running servers as another account needs a POSIX system (uids and gids)`);
  }
  const user = wanted.user === undefined ? undefined : find(passwdEntries(system.passwd), wanted.user);
  if (wanted.user !== undefined && !user) {
    throw fail(`servers.${server}.user: no account ${describe(wanted.user, 'uid')} in /etc/passwd`);
  }
  const group = wanted.group === undefined ? undefined : find(groupEntries(system.group), wanted.group);
  if (wanted.group !== undefined && !group) {
    throw fail(`servers.${server}.group: no group ${describe(wanted.group, 'gid')} in /etc/group`);
  }
  const uid = user?.id ?? system.uid;
  const gid = group?.id ?? user?.gid ?? system.gid;
  const env: Record<string, string> = user
    ? { HOME: user.home || '/', USER: user.name, LOGNAME: user.name }
    : {};
  if (uid === system.uid && gid === system.gid) return { uid: undefined, gid: undefined, env };
  if (system.uid !== 0) {
    throw fail(
      `${key}: mcp-relay runs as uid ${system.uid}, not root, so it cannot start servers as uid ${uid} gid ${gid}; start mcp-relay as root, or drop servers.${server}.user and .group`,
    );
  }
  return { uid, gid, env };
}

/** By name first, then (for a number or an all-digit name) by id, as chown does. */
function find(entries: Entry[], wanted: string | number): Entry | undefined {
  if (typeof wanted === 'string') {
    const named = entries.find((entry) => entry.name === wanted);
    if (named || !/^\d+$/.test(wanted)) return named;
  }
  return entries.find((entry) => entry.id === Number(wanted));
}

function describe(wanted: string | number, idName: string): string {
  return typeof wanted === 'number' ? `with ${idName} ${wanted}` : JSON.stringify(wanted);
}

/** name:password:uid:gid:gecos:home:shell */
function passwdEntries(text: string): Entry[] {
  return lines(text, 7)
    .filter(([, , uid, gid]) => isId(uid) && isId(gid))
    .map(([name, , uid, gid, , home]) => ({
      name: name ?? '',
      id: Number(uid),
      gid: Number(gid),
      home: home ?? '',
    }));
}

/** name:password:gid:members */
function groupEntries(text: string): Entry[] {
  return lines(text, 4)
    .filter(([, , gid]) => isId(gid))
    .map(([name, , gid]) => ({ name: name ?? '', id: Number(gid) }));
}

/** The colon-separated lines with at least `count` fields; comments and NIS `+`/`-` lines left out. */
function lines(text: string, count: number): string[][] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !/^[#+-]/.test(line))
    .map((line) => line.split(':'))
    .filter((parts) => parts.length >= count);
}

function isId(text: string | undefined): boolean {
  return text !== undefined && /^\d+$/.test(text);
}
