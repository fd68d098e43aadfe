// The issuer's signing keys for JWT verification: where they are (the configured jwksUri, or
// `jwks_uri` from the issuer's discovery document) and the key set fetched from there. The set is
// fetched again when it is older than `refreshMs` and a token arrives, or when a token names an
// unknown key id, so a key the provider adds works at once and a key it removes stops working
// within `refreshMs`. While the provider is unreachable the last set stays in use, but for at most
// `maxStaleMs` past its refresh; after that tokens cannot be checked (503) until it answers again.

import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from 'jose';
import type { Logger } from '../log.ts';

export interface SigningKeysOptions {
  issuer: string;
  jwksUri: string | undefined;
  /** A fetched key set is fresh this long (ms); a token arriving later waits for it to be fetched again. */
  refreshMs: number;
  /** While the provider cannot be reached, a stale key set stays in use this much longer (ms). */
  maxStaleMs: number;
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

/** A failed discovery or key-set fetch is retried on a later request, but not more often than this. */
const RETRY_MS = 5_000;
/** Warnings about an unreachable provider are logged at most this often. */
const WARN_EVERY_MS = 60_000;

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

interface FetchedKeys {
  readonly select: LocalKeySet;
  /** When the set was fetched (performance.now(): elapsed time, whatever the wall clock does). */
  readonly at: number;
}

export class SigningKeys {
  readonly #options: SigningKeysOptions;
  readonly #timeoutMs: number;
  #jwksUri: Promise<string> | undefined;
  #discoveryFailedAt = Number.NEGATIVE_INFINITY;
  #keys: FetchedKeys | undefined;
  #fetching: Promise<void> | undefined;
  #fetchFailedAt = Number.NEGATIVE_INFINITY;
  #lastFailure = '';
  #warnedAt = Number.NEGATIVE_INFINITY;

  constructor(options: SigningKeysOptions) {
    this.#options = options;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** jose's key-resolver signature: picks the key for a token's header, fetching keys as needed. */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const uri = await this.#uri();
    if (!this.#keys || performance.now() - this.#keys.at >= this.#options.refreshMs) await this.#refresh(uri);
    const keys = this.#usable();
    try {
      return await keys.select(header, token);
    } catch (error) {
      // An unknown key id may be a key published since the last fetch: fetch again, unless just done.
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (performance.now() - keys.at < this.#options.cooldownMs) throw error;
      await this.#refresh(uri);
      return this.#usable().select(header, token);
    }
  };

  /** The last fetched keys, unless there are none or they are too old to trust any longer. */
  #usable(): FetchedKeys {
    const keys = this.#keys;
    if (!keys) {
      throw new KeysUnavailableError(`the OpenID provider's keys cannot be fetched: ${this.#lastFailure}`);
    }
    const age = performance.now() - keys.at;
    if (age >= this.#options.refreshMs + this.#options.maxStaleMs) {
      throw new KeysUnavailableError(
        `the OpenID provider's keys were fetched ${Math.round(age / 1000)} s ago and cannot be refreshed: ${this.#lastFailure}`,
      );
    }
    return keys;
  }

  /** Fetches the key set, or waits for the fetch under way; skipped for a while after a failure. */
  async #refresh(uri: string): Promise<void> {
    if (!this.#fetching) {
      if (performance.now() - this.#fetchFailedAt < RETRY_MS) return;
      this.#fetching = this.#fetch(uri).finally(() => {
        this.#fetching = undefined;
      });
    }
    await this.#fetching;
  }

  /** Replaces the whole set, so a key the provider no longer publishes is gone. Never rejects. */
  async #fetch(uri: string): Promise<void> {
    try {
      const response = await fetch(uri, {
        headers: { accept: 'application/jwk-set+json, application/json' },
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new KeysUnavailableError(`${uri} answered ${response.status}`);
      }
      // createLocalJWKSet checks the shape: anything but a key set throws JWKSInvalid.
      const select = createLocalJWKSet((await response.json()) as JSONWebKeySet);
      this.#keys = { select, at: performance.now() };
    } catch (error) {
      this.#fetchFailedAt = performance.now();
      this.#lastFailure = describe(error);
      const age = this.#keys ? performance.now() - this.#keys.at : Number.POSITIVE_INFINITY;
      const keeping =
        age < this.#options.refreshMs + this.#options.maxStaleMs
          ? '; the last keys fetched stay in use for now'
          : '; tokens cannot be checked until it answers';
      this.#warn(`cannot fetch the OpenID provider's keys (${this.#lastFailure})${keeping}`);
    }
  }

  #uri(): Promise<string> {
    if (this.#jwksUri) return this.#jwksUri;
    if (performance.now() - this.#discoveryFailedAt < RETRY_MS) {
      return Promise.reject(
        new KeysUnavailableError('the OpenID provider could not be reached a moment ago'),
      );
    }
    const attempt = this.#discover();
    this.#jwksUri = attempt;
    attempt.catch((error: unknown) => {
      this.#jwksUri = undefined;
      this.#discoveryFailedAt = performance.now();
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
    if (performance.now() - this.#warnedAt < WARN_EVERY_MS) return;
    this.#warnedAt = performance.now();
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

function describe(error: unknown): string {
  if (error instanceof KeysUnavailableError) return error.message;
  if (error instanceof errors.JWKSInvalid) return 'the answer is not a JSON Web Key Set';
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  return error instanceof Error ? error.message.slice(0, 200) : 'unknown error';
}
