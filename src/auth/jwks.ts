// The issuer's signing keys for JWT verification: where they are (the configured jwksUri, or
// `jwks_uri` from the issuer's discovery document), fetched and cached by jose's remote key set
// (which refetches for an unknown key id, so key rotation needs no restart), and kept in use while
// the identity provider is unreachable.

import {
  type CryptoKey,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type FlattenedJWSInput,
  type JWSHeaderParameters,
  type RemoteJWKSet,
} from 'jose';
import type { Logger } from '../log.ts';

export interface SigningKeysOptions {
  issuer: string;
  jwksUri: string | undefined;
  /** After a fetch, wait this long (ms) before fetching again for an unknown key id. */
  cooldownMs: number;
  log: Logger;
  /** Bound on each discovery or key-set request (ms). Default 5 s. */
  timeoutMs?: number;
}

/** The keys cannot be had: the provider is down, or its discovery document is unusable. */
export class KeysUnavailableError extends Error {
  override readonly name = 'KeysUnavailableError';
}

/** A failed discovery is retried on a later request, but not more often than this. */
const DISCOVERY_RETRY_MS = 5_000;
/** Warnings about an unreachable provider are logged at most this often. */
const WARN_EVERY_MS = 60_000;

export class SigningKeys {
  readonly #options: SigningKeysOptions;
  readonly #timeoutMs: number;
  #remote: Promise<RemoteJWKSet> | undefined;
  #failedAt = 0;
  #warnedAt = 0;

  constructor(options: SigningKeysOptions) {
    this.#options = options;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** jose's key-resolver signature: picks the key for a token's header, fetching keys as needed. */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const remote = await this.#keySet();
    try {
      return await remote(header, token);
    } catch (error) {
      if (!isFetchFailure(error)) throw error;
      // The provider is unreachable or answers nonsense: the last keys it published are still its keys.
      const cached = remote.jwks();
      if (!cached)
        throw new KeysUnavailableError(`the OpenID provider's keys cannot be fetched: ${describe(error)}`);
      this.#warn(`cannot refresh the OpenID provider's keys (${describe(error)}); using the cached keys`);
      return createLocalJWKSet(cached)(header, token);
    }
  };

  #keySet(): Promise<RemoteJWKSet> {
    if (this.#remote) return this.#remote;
    if (Date.now() - this.#failedAt < DISCOVERY_RETRY_MS) {
      return Promise.reject(
        new KeysUnavailableError('the OpenID provider could not be reached a moment ago'),
      );
    }
    const attempt = this.#discover().then((uri) =>
      createRemoteJWKSet(new URL(uri), {
        cooldownDuration: this.#options.cooldownMs,
        timeoutDuration: this.#timeoutMs,
      }),
    );
    this.#remote = attempt;
    attempt.catch((error: unknown) => {
      this.#remote = undefined;
      this.#failedAt = Date.now();
      this.#warn(describe(error));
    });
    return attempt;
  }

  /** The JWKS URL: configured, or from the issuer's OpenID / RFC 8414 metadata (whose issuer must match). */
  async #discover(): Promise<string> {
    if (this.#options.jwksUri) return this.#options.jwksUri;
    const issuer = this.#options.issuer;
    const failures: string[] = [];
    for (const url of discoveryUrls(issuer)) {
      let metadata: { issuer?: unknown; jwks_uri?: unknown };
      try {
        const response = await fetch(url, {
          headers: { accept: 'application/json' },
          signal: AbortSignal.timeout(this.#timeoutMs),
          redirect: 'error',
        });
        if (!response.ok) {
          failures.push(`${url}: ${response.status}`);
          await response.body?.cancel();
          continue;
        }
        metadata = (await response.json()) as typeof metadata;
      } catch (error) {
        failures.push(`${url}: ${describe(error)}`);
        continue;
      }
      if (metadata.issuer !== issuer) {
        throw new KeysUnavailableError(
          `${url} names issuer ${JSON.stringify(metadata.issuer)}, not ${issuer} (check auth.oidc.issuer)`,
        );
      }
      if (typeof metadata.jwks_uri !== 'string') {
        throw new KeysUnavailableError(`${url} has no jwks_uri; set auth.oidc.jwksUri`);
      }
      this.#options.log.info({ issuer, jwksUri: metadata.jwks_uri }, 'OpenID provider discovered');
      return metadata.jwks_uri;
    }
    throw new KeysUnavailableError(`OpenID provider discovery failed (${failures.join('; ')})`);
  }

  #warn(message: string): void {
    if (Date.now() - this.#warnedAt < WARN_EVERY_MS) return;
    this.#warnedAt = Date.now();
    this.#options.log.warn({ issuer: this.#options.issuer }, message);
  }
}

/** OpenID Connect discovery (appended, as most providers serve it), then RFC 8414 (path inserted). */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    `${url.origin}${path}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
  ];
}

/**
 * A failure to get the key set (network, timeout, non-200, not a JWKS), as opposed to a key set that
 * was fetched and simply has no key for this token.
 */
function isFetchFailure(error: unknown): boolean {
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys)
    return false;
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return true;
  if (error instanceof errors.JOSEError) return error.code === 'ERR_JOSE_GENERIC';
  return error instanceof TypeError; // fetch() failed: refused, DNS, TLS
}

function describe(error: unknown): string {
  if (error instanceof KeysUnavailableError) return error.message;
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  return error instanceof Error ? error.message.slice(0, 200) : 'unknown error';
}
