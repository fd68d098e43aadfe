// Who is calling: a decision over the Authorization header and the configured credential stores.
// An `mcpr_` bearer token is an API key; any other is a JWT access token when OAuth (auth.oidc) is
// configured. The answer on failure is complete (status, message, WWW-Authenticate per RFC 6750 and
// RFC 9728), so the HTTP layer only sends it. No sockets here: stores are passed in.

import type { Identity } from '../sessions/types.ts';
import { looksLikeApiKey } from './key-material.ts';
import type { TokenCheck } from './oidc.ts';
import { isPrincipalName, PRINCIPAL_NAME_RULE } from './principal-name.ts';
import type { ProtectedResource } from './protected-resource.ts';

/** A store that maps an API key to its owner (the KeyStore). */
export interface TokenVerifier {
  authenticate(
    token: string,
  ): { user: string; groups: readonly string[]; keyId: string; expiresAt?: number } | undefined;
}

/** Verifies a JWT access token for an endpoint that accepts the given audiences (the OidcVerifier). */
export interface JwtVerifier {
  verify(token: string, audiences: ReadonlySet<string>): Promise<TokenCheck>;
}

/** The credential stores in use; none at all means no authentication (loopback only). */
export interface AuthMethods {
  keys?: TokenVerifier | undefined;
  oidc?: { verifier: JwtVerifier; resource: ProtectedResource } | undefined;
  /** A credential is needed even without keys or OAuth (client certificates are configured). */
  required?: boolean;
}

export interface AuthRequest {
  authorization: string | undefined;
  /** The server the request is for; null when the path names none (scopes and audience of the gateway). */
  server: string | null;
  /** The endpoint path (`/mcp/<name>` or `/mcp`), for the resource metadata URL in challenges. */
  path: string;
}

/** Why, in a word of ours for counting (never the credential or the message). */
export type AuthFailureReason = 'missing' | 'invalid' | 'insufficient-scope' | 'unavailable' | 'certificate';

export type AuthFailure = {
  ok: false;
  status: 401 | 403 | 503;
  message: string;
  headers: Readonly<Record<string, string>>;
  reason?: AuthFailureReason;
};

export type AuthResult = { ok: true; identity: Identity } | AuthFailure;

/** Used when no authentication is configured (allowed on loopback only). */
export const LOCAL_IDENTITY: Identity = Object.freeze({
  user: 'local',
  groups: [],
  method: 'none',
  credential: 'none',
});

export async function authenticate(request: AuthRequest, methods: AuthMethods): Promise<AuthResult> {
  const { keys, oidc } = methods;
  const challenge = new Challenge(request, methods);
  if (!keys && !oidc) return methods.required ? challenge.missing() : { ok: true, identity: LOCAL_IDENTITY };
  const { authorization } = request;
  const token = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1] : undefined;
  if (!token) {
    return authorization
      ? challenge.invalid('the Authorization header is not "Bearer <token>"')
      : challenge.missing();
  }
  if (looksLikeApiKey(token) || !oidc) {
    const found = keys?.authenticate(token);
    // A keys file from before the name rule may hold a key for `..`: refused here, as any other source.
    if (found && !isPrincipalName(found.user)) {
      return challenge.invalid(
        `the API key belongs to a user name that is no longer accepted (${PRINCIPAL_NAME_RULE}); revoke it and create a new key`,
      );
    }
    if (found) {
      const groups = found.groups.filter(isPrincipalName);
      const credential = `key:${found.keyId}`;
      const expiry = found.expiresAt === undefined ? {} : { expiresAt: found.expiresAt };
      return { ok: true, identity: { user: found.user, groups, method: 'api-key', credential, ...expiry } };
    }
    return challenge.invalid(
      keys ? 'the API key is unknown, revoked or expired' : 'API keys are not accepted by this gateway',
    );
  }
  const checked = await oidc.verifier.verify(token, oidc.resource.audiencesFor(request.server));
  if (!checked.ok) {
    return checked.reason === 'unavailable'
      ? challenge.unavailable()
      : challenge.invalid(checked.description);
  }
  const { principal } = checked;
  const required = oidc.resource.requiredScopes(request.server);
  const missing = required.filter((scope) => !principal.scopes.has(scope));
  if (missing.length > 0) return challenge.insufficientScope(missing);
  const { user, groups, subject, expiresAt } = principal;
  return { ok: true, identity: { user, groups, method: 'oidc', credential: `oidc:${subject}`, expiresAt } };
}

/** Builds the failure answers for one request. */
class Challenge {
  readonly #request: AuthRequest;
  readonly #methods: AuthMethods;

  constructor(request: AuthRequest, methods: AuthMethods) {
    this.#request = request;
    this.#methods = methods;
  }

  missing(): AuthFailure {
    const { keys, oidc } = this.#methods;
    const message =
      oidc && keys
        ? 'authentication required: send Authorization: Bearer with an OAuth access token or an API key'
        : oidc
          ? 'authentication required: send Authorization: Bearer with an OAuth access token (see resource_metadata in WWW-Authenticate)'
          : keys
            ? 'authentication required: send Authorization: Bearer <API key>'
            : 'authentication required: present a client certificate';
    return this.#fail(401, message, {}, 'missing');
  }

  invalid(description: string): AuthFailure {
    return this.#fail(
      401,
      description,
      { error: 'invalid_token', error_description: description },
      'invalid',
    );
  }

  insufficientScope(missing: readonly string[]): AuthFailure {
    const description = `the access token lacks the scope(s) this server requires: ${missing.join(' ')}`;
    return this.#fail(
      403,
      description,
      { error: 'insufficient_scope', error_description: description },
      'insufficient-scope',
    );
  }

  unavailable(): AuthFailure {
    const message = 'the identity provider cannot be reached to check the token; try again shortly';
    const result = this.#fail(503, message, {}, 'unavailable');
    return { ...result, headers: { ...result.headers, 'retry-after': '5' } };
  }

  #fail(
    status: 401 | 403 | 503,
    message: string,
    params: Record<string, string>,
    reason: AuthFailureReason,
  ): AuthFailure {
    const parts = [`realm="mcp-relay"`];
    for (const [name, value] of Object.entries(params)) parts.push(`${name}="${quoted(value)}"`);
    const oidc = this.#methods.oidc;
    if (oidc) {
      // RFC 9728 §5.1: where the client learns which authorization server to ask, and for what scopes.
      const { server, path } = this.#request;
      const endpoint = server === null ? '/' : /^\/mcp\/?$/.test(path) ? '/mcp' : `/mcp/${server}`;
      parts.push(`resource_metadata="${oidc.resource.metadataUrlFor(endpoint)}"`);
      const scopes = oidc.resource.requiredScopes(server);
      if (scopes.length > 0) parts.push(`scope="${scopes.join(' ')}"`);
    }
    const headers = { 'www-authenticate': `Bearer ${parts.join(', ')}` };
    return { ok: false, status, message, headers, reason };
  }
}

/** RFC 7230 quoted-string content: our own fixed words, but never let a quote or control end it early. */
function quoted(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strip control characters from header values.
  return value.replace(/["\\\u0000-\u001f\u007f]/g, '');
}
