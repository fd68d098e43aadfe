// Who is calling on the gateway's Unix socket (SSH attached mode): the user named in a header by
// ssh-entry, which sshd started for an authorized key. The socket's file permissions are the
// authentication, so these headers are read on the socket listener only, never over TCP.

import type { IncomingHttpHeaders } from 'node:http';
import type { Identity } from '../sessions/types.ts';
import { isPrincipalName } from './principal-name.ts';

export const SOCKET_USER_HEADER = 'mcp-relay-user';
/** Comma-separated group names. */
export const SOCKET_GROUPS_HEADER = 'mcp-relay-groups';

/** The identity the socket caller names; undefined when the header is missing or malformed. */
export function socketIdentity(headers: IncomingHttpHeaders): Identity | undefined {
  const user = single(headers[SOCKET_USER_HEADER]);
  if (user === undefined || !isPrincipalName(user)) return undefined;
  const groupsHeader = single(headers[SOCKET_GROUPS_HEADER]) ?? '';
  const groups = groupsHeader === '' ? [] : groupsHeader.split(',').map((group) => group.trim());
  if (!groups.every(isPrincipalName)) return undefined;
  // The socket's permissions are the credential: every ssh-entry connection of the user presents the same.
  return { user, groups: [...new Set(groups)], method: 'ssh', credential: 'ssh-socket' };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}
