// Who is calling: a pure decision over the Authorization header and the configured credential stores.

import type { Identity } from '../sessions/types.ts';

/** A store that maps a bearer token to a user (API keys now; JWTs later). */
export interface TokenVerifier {
  authenticate(token: string): { user: string; groups: readonly string[] } | undefined;
}

export type AuthResult = { ok: true; identity: Identity } | { ok: false; reason: 'missing' | 'invalid' };

/** Used when no authentication is configured (allowed on loopback only). */
export const LOCAL_IDENTITY: Identity = Object.freeze({ user: 'local', groups: [], method: 'none' });

export function authenticate(
  authorization: string | undefined,
  verifier: TokenVerifier | undefined,
): AuthResult {
  if (!verifier) return { ok: true, identity: LOCAL_IDENTITY };
  const match = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
  if (!match?.[1]) return { ok: false, reason: authorization ? 'invalid' : 'missing' };
  const found = verifier.authenticate(match[1]);
  if (!found) return { ok: false, reason: 'invalid' };
  return { ok: true, identity: { user: found.user, groups: found.groups, method: 'api-key' } };
}

/** The WWW-Authenticate challenge for a 401 (RFC 6750). */
export function bearerChallenge(reason: 'missing' | 'invalid'): string {
  return reason === 'missing'
    ? 'Bearer realm="mcp-relay"'
    : 'Bearer realm="mcp-relay", error="invalid_token", error_description="the API key is unknown, revoked or expired"';
}
