// Who is calling on the gateway's Unix socket (SSH attached mode): the user named in a header by
// ssh-entry, which sshd started for an authorized key. The socket's file permissions are the
// authentication, so these headers are read on the socket listener only, never over TCP.

import type { Identity } from '../sessions/types.ts';
import type { AuthResult } from './authenticate.ts';
import { isPrincipalName, PRINCIPAL_NAME_RULE } from './principal-name.ts';

export const SOCKET_USER_HEADER = 'mcp-relay-user';
/** Comma-separated group names. */
export const SOCKET_GROUPS_HEADER = 'mcp-relay-groups';

/** Request headers as node parses them (a repeated header may come as a list). */
export type HeaderValues = Readonly<Record<string, string | string[] | undefined>>;

/** The identity the socket caller names; undefined when the header is missing or malformed. */
export function socketIdentity(headers: HeaderValues): Identity | undefined {
  const user = single(headers[SOCKET_USER_HEADER]);
  if (user === undefined || !isPrincipalName(user)) return undefined;
  const groupsHeader = single(headers[SOCKET_GROUPS_HEADER]) ?? '';
  const groups = groupsHeader === '' ? [] : groupsHeader.split(',').map((group) => group.trim());
  if (!groups.every(isPrincipalName)) return undefined;
  // The socket's permissions are the credential: every ssh-entry connection of the user presents the same.
  return { user, groups: [...new Set(groups)], method: 'ssh', credential: 'ssh-socket' };
}

/** A request that came in on the socket: the user its headers name, or 401 when they name none validly. */
export function socketCaller(headers: HeaderValues): AuthResult {
  const identity = socketIdentity(headers);
  return identity ? { ok: true, identity } : SOCKET_REFUSAL;
}

const SOCKET_REFUSAL: AuthResult = Object.freeze({
  ok: false,
  status: 401,
  message: `the gateway socket needs a valid ${SOCKET_USER_HEADER} header (${PRINCIPAL_NAME_RULE})`,
  headers: Object.freeze({}),
  reason: 'missing',
});

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}
