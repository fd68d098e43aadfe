// The gateway's authentication as one object: the API-key store (opened from its file) and the OAuth
// resource server (auth.oidc), built from the config, asked once per request, closed with the gateway.

import { listenTls, type RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Identity } from '../sessions/types.ts';
import { isLoopbackAddress } from '../util/loopback.ts';
import { type AuthMethods, type AuthRequest, type AuthResult, authenticate } from './authenticate.ts';
import { KeyStore, type RevokedKeys } from './keys.ts';
import { OidcVerifier } from './oidc.ts';
import { isPrincipalName } from './principal-name.ts';
import { ProtectedResource } from './protected-resource.ts';

export class GatewayAuth {
  readonly #config: RelayConfig;
  readonly #log: Logger;
  /** The OAuth side of the gateway (metadata documents, audiences, scopes); undefined without auth.oidc. */
  readonly resource: ProtectedResource | undefined;
  readonly #verifier: OidcVerifier | undefined;
  #keys: KeyStore | undefined;
  readonly #onKeysChanged: Array<() => void> = [];
  readonly #revocations: RevokedKeys | undefined;
  #opened = false;
  #closed = false;

  /**
   * `baseUrl` is the gateway's public base (publicUrl, else the listening URL once known);
   * `revocations`, API keys revoked on any replica of a cluster (cluster/revocations.ts).
   */
  constructor(config: RelayConfig, log: Logger, baseUrl: () => string, revocations?: RevokedKeys) {
    this.#config = config;
    this.#log = log;
    this.#revocations = revocations;
    const oidc = config.auth.oidc;
    if (oidc && !config.publicUrl && config.listen !== false && !isLoopbackAddress(config.listen.host)) {
      // The listening address (0.0.0.0, an interface IP) is not what clients reach: tokens and
      // resource metadata would name the wrong resource.
      throw new RelayError(
        'CONFIG_INVALID',
        'auth.oidc needs publicUrl (the URL users reach the gateway at) when listening beyond loopback',
      );
    }
    this.resource = oidc ? new ProtectedResource(config, oidc, baseUrl) : undefined;
    this.#verifier = oidc ? new OidcVerifier(oidc, log) : undefined;
  }

  /** Whether any token method is configured (API keys or OAuth). */
  get configured(): boolean {
    return this.#config.auth.apiKeys !== undefined || this.#config.auth.oidc !== undefined;
  }

  /** The methods' names, for the startup log line. */
  get describe(): string {
    const { auth } = this.#config;
    const clientCa = listenTls(this.#config)?.clientCa;
    const names = [auth.apiKeys && 'api-keys', auth.oidc && 'oidc', clientCa && 'client-cert'];
    return names.filter(Boolean).join('+') || 'none';
  }

  /** Opens the keys file (async: nothing authenticates before listen()). */
  async open(): Promise<void> {
    if (this.#opened) return;
    this.#opened = true;
    if (this.#config.auth.apiKeys)
      this.#keys = await KeyStore.open(
        this.#config.auth.apiKeys.file,
        this.#log,
        this.#revocations ? { revocations: this.#revocations } : {},
      );
    if (this.#closed) this.#keys?.close();
    for (const listener of this.#onKeysChanged) this.#keys?.onReload(listener);
  }

  /** Calls `listener` whenever the keys file changed (a key created, revoked or edited). */
  onKeysChanged(listener: () => void): void {
    this.#onKeysChanged.push(listener);
    this.#keys?.onReload(listener);
  }

  /**
   * Whether the credential of an identity established earlier still stands as it was: an API key that
   * was revoked, expired, or now names other groups does not (its sessions must end).
   */
  stillValid(identity: Identity): boolean {
    if (identity.method !== 'api-key' || !this.#keys) return true;
    const principal = this.#keys.principalOf(identity.credential.slice('key:'.length));
    return (
      principal !== undefined &&
      principal.user === identity.user &&
      principal.groups.filter(isPrincipalName).join('\n') === identity.groups.join('\n')
    );
  }

  authenticate(request: AuthRequest): Promise<AuthResult> {
    const methods: AuthMethods = {
      // Configured but not open yet (never after listen()): a store that knows no key refuses all.
      keys: this.#config.auth.apiKeys ? (this.#keys ?? NO_KEYS) : undefined,
      oidc:
        this.#verifier && this.resource ? { verifier: this.#verifier, resource: this.resource } : undefined,
      required: listenTls(this.#config)?.clientCa !== undefined,
    };
    return authenticate(request, methods);
  }

  /** Stops watching the keys file. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#keys?.close();
  }
}

const NO_KEYS = { authenticate: () => undefined };
