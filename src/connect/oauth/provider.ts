// The bridge's OAuth AuthProvider: sends the cached access token, refreshes it shortly before it
// expires, and on a 401 (or a 403 insufficient_scope) discovers the server's authorization server
// and signs the user in. All of it under a per-server lock across processes, so several bridges
// started together (Claude Desktop does that) share one sign-in, and one refresh at a time.

import type { Dispatcher } from 'undici';
import { errorText } from '../../errors.ts';
import { sanitize } from '../../util/sanitize.ts';
import type { AuthChallenge, AuthProvider, UnauthorizedOutcome } from '../auth.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { type BearerChallenge, parseBearerChallenge } from './challenge.ts';
import { refreshTokens } from './client.ts';
import { OAuthError, OAuthHttp } from './http.ts';
import { interactiveLogin } from './login.ts';
import { discoverResource, discoverServer, type ResourceMetadata, type ServerMetadata } from './metadata.ts';
import { LoginStore, type StoredLogin, type StoredTokens } from './store.ts';

export interface OAuthOptions {
  /** The MCP endpoint. */
  url: URL;
  /** How to reach the resource and authorization servers (the bridge's TLS and proxy settings). */
  dispatcher: Dispatcher;
  /** The user's mcp-relay config folder; logins are cached under `oauth/`. */
  configDir: string;
  clientId?: string | undefined;
  clientMetadataUrl?: string | undefined;
  /** Scopes to ask for instead of those the server names. */
  scope?: string | undefined;
  callbackPort?: number | undefined;
  browser?: string | undefined;
  loginTimeoutMs: number;
  log: BridgeLog;
  userAgent: string;
  /** Answers a 401 from a server that offers no OAuth (says which token to set). */
  fallback: AuthProvider;
}

/** A refresh is not worth a lock wait longer than this; the current token is sent meanwhile. */
const REFRESH_LOCK_WAIT_MS = 30_000;

export function oauthAuth(options: OAuthOptions): AuthProvider & { close(): Promise<void> } {
  return new OAuthAuth(options);
}

class OAuthAuth implements AuthProvider {
  readonly #options: OAuthOptions;
  readonly #store: LoginStore;
  readonly #http: OAuthHttp;
  readonly #servers = new Map<string, ServerMetadata>();
  /** Scope sets a step-up sign-in was already tried for: a second 403 for them is final. */
  readonly #steppedUp = new Set<string>();
  #login: StoredLogin | undefined;
  /** The access token this process got last (sign-in or refresh), and until when a 401 for it means "misconfigured". */
  #issued: { token: string; suspectUntil: number } | undefined;
  #loaded = false;
  #renewing: Promise<UnauthorizedOutcome> | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(options: OAuthOptions) {
    this.#options = options;
    this.#store = new LoginStore(options.configDir, options.url);
    this.#http = new OAuthHttp(options.dispatcher, options.userAgent);
  }

  async headers(): Promise<Readonly<Record<string, string>>> {
    if (!this.#loaded) {
      this.#login = await this.#store.read();
      this.#loaded = true;
    }
    const tokens = this.#login?.tokens;
    if (tokens?.refreshToken && expiresSoon(tokens)) await this.#refreshSoon();
    const current = this.#login?.tokens;
    return current ? { authorization: `Bearer ${current.accessToken}` } : {};
  }

  unauthorized(challenge: AuthChallenge): Promise<UnauthorizedOutcome> {
    const bearer = parseBearerChallenge(challenge.wwwAuthenticate);
    if (!bearer) return this.#options.fallback.unauthorized(challenge);
    // Concurrent refusals (several requests in flight) share one renewal.
    this.#renewing ??= this.#renew(bearer, this.#login?.tokens?.accessToken, challenge).finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  async close(): Promise<void> {
    await this.#options.dispatcher.destroy();
  }

  async #renew(
    bearer: BearerChallenge,
    rejected: string | undefined,
    challenge: AuthChallenge,
  ): Promise<UnauthorizedOutcome> {
    try {
      return await this.#store.locked(this.#options.loginTimeoutMs + 30_000, async () => {
        const stored = await this.#store.read();
        // Another bridge signed in or refreshed while we waited for the lock: use its token.
        if (stored?.tokens && stored.tokens.accessToken !== rejected && !expiresSoon(stored.tokens)) {
          this.#login = stored;
          return { retry: true };
        }
        // A token fresh from the authorization server refused outright: signing in again would only
        // loop (typically the server ignores `resource` and the audience does not match).
        const issued = this.#issued;
        if (
          bearer.error !== 'insufficient_scope' &&
          issued !== undefined &&
          issued.token === rejected &&
          Date.now() < issued.suspectUntil
        ) {
          const why = bearer.errorDescription ? `: ${sanitize(bearer.errorDescription, 160)}` : '';
          return {
            retry: false,
            hint: `the gateway refused the token its authorization server just issued (401${why}); ask its administrator to check the audience (resource) configuration`,
          };
        }
        const resource = await discoverResource(this.#http, this.#options.url, bearer);
        if (!resource) return this.#options.fallback.unauthorized(challenge);
        const server = await this.#serverMetadata(resource.issuer);
        const same =
          stored?.issuer === resource.issuer && stored.resource === resource.resource ? stored : undefined;
        const stepUp = bearer.error === 'insufficient_scope';
        if (same?.tokens?.refreshToken && !stepUp && (await this.#refresh(server, same)))
          return { retry: true };
        const scope = this.#scopeFor(bearer, resource, server);
        if (stepUp) {
          const key = scope ?? '';
          if (this.#steppedUp.has(key)) {
            return {
              retry: false,
              hint: `the server still requires more access (403, scope "${key}") after signing in again`,
            };
          }
          this.#steppedUp.add(key);
        }
        const { client, tokens } = await interactiveLogin({
          http: this.#http,
          server,
          resource: resource.resource,
          scope,
          choice: { clientId: this.#options.clientId, clientMetadataUrl: this.#options.clientMetadataUrl },
          known: same?.client,
          callbackPort: this.#options.callbackPort,
          browser: this.#options.browser,
          label: `${this.#options.url.origin}${this.#options.url.pathname}`,
          log: this.#options.log,
          timeoutMs: this.#options.loginTimeoutMs,
          signal: AbortSignal.timeout(this.#options.loginTimeoutMs + 60_000),
        });
        await this.#save({
          version: 1,
          server: `${this.#options.url.origin}${this.#options.url.pathname}`,
          resource: resource.resource,
          issuer: resource.issuer,
          client,
          tokens,
        });
        this.#options.log.info(`signed in to ${this.#options.url.origin}${this.#options.url.pathname}`);
        return { retry: true };
      });
    } catch (error) {
      if (error instanceof OAuthError)
        return { retry: false, hint: `OAuth sign-in failed: ${error.message}` };
      throw error;
    }
  }

  /** Refreshes ahead of expiry (one at a time across bridges); failures leave the current token in use. */
  #refreshSoon(): Promise<void> {
    this.#refreshing ??= this.#store
      .locked(REFRESH_LOCK_WAIT_MS, async () => {
        const stored = await this.#store.read();
        this.#login = stored;
        // Another bridge may have refreshed already: then its fresh token is in the file.
        if (!stored?.tokens?.refreshToken || !expiresSoon(stored.tokens)) return;
        await this.#refresh(await this.#serverMetadata(stored.issuer), stored);
      })
      .catch((error: unknown) => {
        this.#options.log.warn(`could not refresh the access token: ${errorText(error)}`);
      })
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  /** True when fresh tokens are saved; false when the refresh token is no good (sign in again). */
  async #refresh(server: ServerMetadata, login: StoredLogin): Promise<boolean> {
    const tokens = login.tokens;
    if (!tokens?.refreshToken) return false;
    try {
      const fresh = await refreshTokens(
        this.#http,
        server,
        login.client,
        { ...tokens, refreshToken: tokens.refreshToken },
        login.resource,
      );
      await this.#save({ ...login, tokens: fresh });
      this.#options.log.debug('access token refreshed');
      return true;
    } catch (error) {
      if (!(error instanceof OAuthError) || error.code === undefined) throw error;
      // invalid_grant and friends: the refresh token expired or was revoked; forget it.
      this.#options.log.info(`the refresh token was refused (${error.code}); signing in again`);
      await this.#save({ ...login, tokens: undefined });
      return false;
    }
  }

  async #save(login: StoredLogin): Promise<void> {
    await this.#store.write(login);
    this.#login = login;
    const tokens = login.tokens;
    if (tokens && tokens.accessToken !== this.#issued?.token) {
      // Within its first minute (or first half of a shorter life) a refusal is not expiry.
      const life = tokens.expiresAt === undefined ? 60_000 : tokens.expiresAt - tokens.obtainedAt;
      this.#issued = { token: tokens.accessToken, suspectUntil: Date.now() + Math.min(60_000, life / 2) };
    }
  }

  async #serverMetadata(issuer: string): Promise<ServerMetadata> {
    const known = this.#servers.get(issuer);
    if (known) return known;
    const metadata = await discoverServer(this.#http, issuer);
    this.#servers.set(issuer, metadata);
    return metadata;
  }

  /**
   * MCP scope selection: --scope, else the challenge's scope, else the resource's scopes_supported;
   * plus offline_access when the server offers it, so that a refresh token comes with the login.
   */
  #scopeFor(bearer: BearerChallenge, resource: ResourceMetadata, server: ServerMetadata): string | undefined {
    // A 403 insufficient_scope names what this request needs: authoritative, so --scope only adds to it.
    const base =
      bearer.error === 'insufficient_scope' && bearer.scope
        ? `${bearer.scope} ${this.#options.scope ?? ''}`
        : (this.#options.scope ?? bearer.scope ?? resource.scopesSupported?.join(' ') ?? '');
    const scopes = [...new Set(base.split(' ').filter(Boolean))];
    if (server.scopesSupported?.includes('offline_access') && !scopes.includes('offline_access'))
      scopes.push('offline_access');
    return scopes.length > 0 ? scopes.join(' ') : undefined;
  }
}

/** Within the last quarter of its life, or the last minute: refresh now rather than fail later. */
function expiresSoon(tokens: StoredTokens, now = Date.now()): boolean {
  if (tokens.expiresAt === undefined) return false;
  const lifetime = Math.max(0, tokens.expiresAt - (tokens.obtainedAt ?? tokens.expiresAt));
  return tokens.expiresAt - now <= Math.min(60_000, lifetime / 4);
}
