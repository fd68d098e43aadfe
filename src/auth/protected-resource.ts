// The gateway as an OAuth protected resource (RFC 9728, RFC 8707): the resource URL of each MCP
// endpoint, the audiences a token may carry there, the scopes it needs, and the metadata documents.
//
// Resource identifiers. Every endpoint is its own resource: `<base>/mcp/<name>` (the MCP spec asks
// clients for the most specific URI, and a token for one server then opens no other). `<base>` itself
// names the whole gateway: its metadata sits at the root well-known URI, and a token for it is
// accepted by every server. With a single server, `<base>/mcp` names that server too. `<base>` is
// `publicUrl` (what users type) or, without one, the URL the gateway listens on.

import type { RelayConfig } from '../config/schema.ts';

export const PRM_PATH = '/.well-known/oauth-protected-resource';

type OidcConfig = NonNullable<RelayConfig['auth']['oidc']>;

/** RFC 9728 §2: what a client learns about this resource before it asks for a token. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  bearer_methods_supported: string[];
  scopes_supported?: string[];
  resource_name: string;
}

export class ProtectedResource {
  readonly #config: RelayConfig;
  readonly #oidc: OidcConfig;
  readonly #base: () => string;
  readonly #servers: readonly string[];

  /** `base` is read per request: without publicUrl the listening address is known only after listen(). */
  constructor(config: RelayConfig, oidc: OidcConfig, base: () => string) {
    this.#config = config;
    this.#oidc = oidc;
    this.#base = () => withoutTrailingSlash(base());
    this.#servers = Object.keys(config.servers);
  }

  get issuer(): string {
    return this.#oidc.issuer;
  }

  /** The resource URL of an endpoint path (`/mcp/<name>`, `/mcp`) or of the gateway (`/`). */
  resourceFor(endpointPath: string): string {
    const path = withoutTrailingSlash(endpointPath);
    return `${this.#base()}${path === '/' ? '' : path}`;
  }

  /** Where the metadata of that endpoint is: the well-known URI with the resource's path inserted (RFC 9728 §3.1). */
  metadataUrlFor(endpointPath: string): string {
    const resource = new URL(this.resourceFor(endpointPath));
    const path = resource.pathname === '/' ? '' : resource.pathname;
    return `${resource.origin}${PRM_PATH}${path}`;
  }

  /** The `aud` values accepted at `server`'s endpoint (normalized: no trailing slash, lower-case origin). */
  audiencesFor(server: string | null): ReadonlySet<string> {
    const configured = this.#oidc.audience;
    if (configured !== undefined) {
      return new Set((typeof configured === 'string' ? [configured] : configured).map(normalizeAudience));
    }
    const base = this.#base();
    const accepted = [base];
    if (server !== null) accepted.push(`${base}/mcp/${server}`);
    if (server !== null && this.#servers.length === 1) accepted.push(`${base}/mcp`);
    return new Set(accepted.map(normalizeAudience));
  }

  /** The scopes a token needs at `server` (null: an unknown server or the gateway as a whole). */
  requiredScopes(server: string | null): readonly string[] {
    const own = server === null ? undefined : this.#config.servers[server]?.scopes;
    return own ?? this.#oidc.scopes;
  }

  /**
   * The metadata document for a request path under the well-known prefix, or undefined when that
   * path names no resource here. The path may carry publicUrl's own path prefix or not (a reverse
   * proxy may or may not strip it).
   */
  metadataFor(requestPath: string): ProtectedResourceMetadata | undefined {
    if (requestPath !== PRM_PATH && !requestPath.startsWith(`${PRM_PATH}/`)) return undefined;
    let suffix = withoutTrailingSlash(requestPath.slice(PRM_PATH.length) || '/');
    const prefix = new URL(this.#base()).pathname.replace(/\/$/, '');
    if (prefix && (suffix === prefix || suffix.startsWith(`${prefix}/`)))
      suffix = suffix.slice(prefix.length) || '/';
    const server = this.#serverAt(suffix);
    if (server === undefined) return undefined;
    const scopes = this.requiredScopes(server);
    return {
      resource: this.resourceFor(suffix),
      authorization_servers: [this.#oidc.issuer],
      bearer_methods_supported: ['header'],
      ...(scopes.length > 0 ? { scopes_supported: [...scopes] } : {}),
      resource_name: server === null ? 'mcp-relay gateway' : `mcp-relay: ${server}`,
    };
  }

  /** `/` → null (the gateway), `/mcp/<name>` or the single server's `/mcp` → its name, else undefined. */
  #serverAt(path: string): string | null | undefined {
    if (path === '/') return null;
    if (path === '/mcp') return this.#servers.length === 1 ? (this.#servers[0] ?? undefined) : undefined;
    if (!path.startsWith('/mcp/')) return undefined;
    const name = safeDecode(path.slice('/mcp/'.length));
    return name !== undefined && this.#servers.includes(name) ? name : undefined;
  }
}

/** RFC 8707 canonical form for comparison: lower-case scheme and host, no trailing slash. */
export function normalizeAudience(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === 'https:' || url.protocol === 'http:') {
      return withoutTrailingSlash(`${url.origin}${url.pathname}${url.search}`);
    }
  } catch {
    // Not a URL (e.g. "api://mcp-relay" parses; a bare client id does not): compare as given.
  }
  return value;
}

function withoutTrailingSlash(value: string): string {
  return value.length > 1 && value.endsWith('/') ? value.replace(/\/+$/, '') || '/' : value;
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
