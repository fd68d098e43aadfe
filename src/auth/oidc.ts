// OAuth 2.1 access tokens (JWT, RFC 9068) from the configured issuer: signature against the issuer's
// keys, `iss`, `exp`/`nbf`, `aud` (the endpoint's resource, RFC 8707), then user, groups and scopes
// from the claims the config names. Failures are described in fixed words, never with token content.

import { errors, type JWTPayload, jwtVerify } from 'jose';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { KeysUnavailableError, SigningKeys } from './jwks.ts';
import { isPrincipalName, PRINCIPAL_NAME_RULE } from './principal-name.ts';
import { normalizeAudience } from './protected-resource.ts';

type OidcConfig = NonNullable<RelayConfig['auth']['oidc']>;

/** Asymmetric algorithms only: a shared-secret (HS*) or unsigned token can never verify against a JWKS. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export interface TokenPrincipal {
  readonly user: string;
  /** The token's `sub`: with the issuer fixed, who the credential is, whatever claim names the user. */
  readonly subject: string;
  readonly groups: readonly string[];
  readonly scopes: ReadonlySet<string>;
  /** The token's `exp`, in ms since the epoch (required, so always known). */
  readonly expiresAt: number;
}

export type TokenCheck =
  | { ok: true; principal: TokenPrincipal }
  /** invalid: the token is at fault (401); unavailable: the keys cannot be had now (503). */
  | { ok: false; reason: 'invalid' | 'unavailable'; description: string };

export class OidcVerifier {
  readonly #config: OidcConfig;
  readonly #keys: SigningKeys;

  constructor(config: OidcConfig, log: Logger) {
    this.#config = config;
    this.#keys = new SigningKeys({
      issuer: config.issuer,
      jwksUri: config.jwksUri,
      cooldownMs: config.jwksCooldown,
      refreshMs: config.jwksRefresh,
      maxStaleMs: config.jwksMaxStale,
      log,
    });
  }

  /** Checks `token` for use at an endpoint that accepts the `audiences` (normalized). */
  async verify(token: string, audiences: ReadonlySet<string>): Promise<TokenCheck> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keys.getKey, {
        issuer: this.#config.issuer,
        algorithms: ALGORITHMS,
        requiredClaims: ['exp'],
        clockTolerance: Math.round(this.#config.clockTolerance / 1000),
      }));
    } catch (error) {
      if (error instanceof KeysUnavailableError)
        return { ok: false, reason: 'unavailable', description: error.message };
      return { ok: false, reason: 'invalid', description: describeJoseError(error) };
    }
    const audience = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
    if (!audience.some((value) => audiences.has(normalizeAudience(value)))) {
      return {
        ok: false,
        reason: 'invalid',
        description: 'the access token is for another resource (its audience is not this server)',
      };
    }
    const user = claim(payload, this.#config.userClaim);
    if (typeof user !== 'string' || !isPrincipalName(user)) {
      return {
        ok: false,
        reason: 'invalid',
        description:
          user === undefined
            ? `the access token has no "${this.#config.userClaim}" claim (auth.oidc.userClaim)`
            : `the "${this.#config.userClaim}" claim is not a user name (${PRINCIPAL_NAME_RULE})`,
      };
    }
    // A provider that lets anyone claim an address must not let them become its owner here. Only
    // the boolean true counts: a missing claim, or the string "false" some providers send, is not.
    if (this.#config.userClaim === 'email' && payload.email_verified !== true) {
      return {
        ok: false,
        reason: 'invalid',
        description: 'the access token names an email address the provider has not verified',
      };
    }
    return {
      ok: true,
      principal: {
        user,
        subject: typeof payload.sub === 'string' ? payload.sub : user,
        groups: groupsOf(claim(payload, this.#config.groupsClaim)),
        scopes: scopesOf(payload),
        expiresAt: (payload.exp ?? 0) * 1000,
      },
    };
  }
}

/** A claim by name; a dotted name that is not itself a claim reads nested objects (`realm_access.roles`). */
function claim(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  let value: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Groups as an array or a space/comma separated string; Keycloak's "/path/style" loses its leading slash. */
function groupsOf(value: unknown): string[] {
  const raw = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : [];
  const groups = raw
    .filter((group): group is string => typeof group === 'string')
    .map((group) => group.replace(/^\//, ''))
    .filter(isPrincipalName);
  return [...new Set(groups)];
}

/** `scope` (RFC 9068: space separated) and `scp` (array or string, as some providers send it). */
function scopesOf(payload: JWTPayload): ReadonlySet<string> {
  const scopes = new Set<string>();
  for (const value of [payload.scope, payload.scp]) {
    const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(' ') : [];
    for (const scope of list) if (typeof scope === 'string' && scope !== '') scopes.add(scope);
  }
  return scopes;
}

function describeJoseError(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the access token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return 'the access token comes from another issuer';
    if (error.claim === 'nbf' || error.claim === 'iat') return 'the access token is not valid yet';
    if (error.claim === 'exp') return 'the access token has no expiry';
    return 'the access token has an invalid claim';
  }
  if (error instanceof errors.JOSEAlgNotAllowed)
    return 'the access token uses a signing algorithm not accepted';
  if (error instanceof errors.JWKSNoMatchingKey) return 'the access token is signed with an unknown key';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the access token signature is invalid';
  return 'the access token is malformed';
}
