// Discovery, as the MCP authorization spec orders it: the resource's metadata (RFC 9728) from the
// 401's `resource_metadata` or the well-known URIs, then its authorization server's metadata
// (RFC 8414 and OpenID Connect Discovery, in the spec's order), checked before anything is trusted.

import { isLoopbackAddress } from '../../util/loopback.ts';
import type { BearerChallenge } from './challenge.ts';
import { displayUrl, OAuthError, type OAuthHttp } from './http.ts';

export interface ResourceMetadata {
  /** The resource identifier to ask tokens for (RFC 8707 `resource`). */
  resource: string;
  /** The authorization server chosen (the first listed). */
  issuer: string;
  scopesSupported: string[] | undefined;
}

export interface ServerMetadata {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  registrationEndpoint: string | undefined;
  scopesSupported: string[] | undefined;
  clientIdMetadataDocumentSupported: boolean;
  /** RFC 9207: the authorization response carries `iss`, which must then be checked. */
  issParameterSupported: boolean;
}

const PRM = '/.well-known/oauth-protected-resource';

/**
 * The metadata of the resource at `serverUrl`, or undefined when it publishes none (then the server
 * does not use OAuth, and a static token is the only way in).
 */
export async function discoverResource(
  http: OAuthHttp,
  serverUrl: URL,
  challenge: BearerChallenge,
): Promise<ResourceMetadata | undefined> {
  const path = serverUrl.pathname === '/' ? '' : serverUrl.pathname.replace(/\/$/, '');
  const candidates = challenge.resourceMetadata
    ? [checkedMetadataUrl(challenge.resourceMetadata, serverUrl)]
    : [`${serverUrl.origin}${PRM}${path}`, ...(path ? [`${serverUrl.origin}${PRM}`] : [])];
  for (const url of candidates) {
    const reply = await http.getJson(url);
    // Probing the well-known URIs: a server without OAuth answers them with 404 (or 401, or anything).
    if ((reply.status !== 200 || !reply.body) && !challenge.resourceMetadata) continue;
    if (reply.status !== 200 || !reply.body) {
      throw new OAuthError(`the resource metadata at ${displayUrl(url)} could not be read (${reply.status})`);
    }
    return checkResourceMetadata(reply.body, serverUrl, url);
  }
  return undefined;
}

/** The authorization server's metadata, trying RFC 8414 then OpenID discovery in the spec's order. */
export async function discoverServer(http: OAuthHttp, issuer: string): Promise<ServerMetadata> {
  const failures: string[] = [];
  for (const url of serverMetadataUrls(issuer)) {
    const reply = await http.getJson(url);
    if (reply.status !== 200 || !reply.body) {
      failures.push(`${displayUrl(url)}: ${reply.status}`);
      continue;
    }
    return checkServerMetadata(reply.body, issuer, url);
  }
  throw new OAuthError(`no metadata for the authorization server ${issuer} (${failures.join('; ')})`);
}

/** MCP spec order: RFC 8414 (path inserted), OIDC (path inserted), OIDC (path appended). */
export function serverMetadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  if (!path) {
    return [
      `${url.origin}/.well-known/oauth-authorization-server`,
      `${url.origin}/.well-known/openid-configuration`,
    ];
  }
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}/.well-known/openid-configuration${path}`,
    `${url.origin}${path}/.well-known/openid-configuration`,
  ];
}

/** A metadata URL from a 401 must be HTTP(S), and HTTPS when the server itself is. */
function checkedMetadataUrl(value: string, serverUrl: URL): string {
  let url: URL;
  try {
    url = new URL(value, serverUrl);
  } catch {
    throw new OAuthError('the server sent an invalid resource_metadata URL');
  }
  const allowed = url.protocol === 'https:' || (url.protocol === 'http:' && serverUrl.protocol === 'http:');
  if (!allowed) throw new OAuthError(`the server sent a resource_metadata URL with scheme ${url.protocol}`);
  return url.href;
}

/**
 * RFC 9728 §3.3 and §7.3: the document must name this server (its origin, and a path that is the
 * server's or a parent of it), or a hostile server could send us to sign in for another resource.
 */
function checkResourceMetadata(
  body: Record<string, unknown>,
  serverUrl: URL,
  from: string,
): ResourceMetadata {
  const resource = typeof body.resource === 'string' ? body.resource : undefined;
  let resourceUrl: URL | undefined;
  try {
    resourceUrl = resource === undefined ? undefined : new URL(resource);
  } catch {
    resourceUrl = undefined;
  }
  if (!resource || !resourceUrl)
    throw new OAuthError(`the resource metadata at ${displayUrl(from)} names no resource`);
  const resourcePath = resourceUrl.pathname.replace(/\/$/, '');
  const serverPath = serverUrl.pathname.replace(/\/$/, '');
  const covers =
    resourceUrl.origin === serverUrl.origin &&
    (resourcePath === '' || serverPath === resourcePath || serverPath.startsWith(`${resourcePath}/`));
  if (!covers) {
    throw new OAuthError(
      `the resource metadata names ${displayUrl(resource)}, which is not ${displayUrl(serverUrl.href)}: refusing to sign in for it`,
    );
  }
  const servers = body.authorization_servers;
  const issuer = Array.isArray(servers)
    ? servers.find((item): item is string => typeof item === 'string')
    : undefined;
  if (!issuer)
    throw new OAuthError(`the resource metadata at ${displayUrl(from)} lists no authorization server`);
  // The code, the PKCE verifier and refresh tokens go there: never in clear text beyond this machine.
  if (!secureUrl(issuer)) {
    throw new OAuthError(
      `the resource metadata names the authorization server ${displayUrl(issuer)}, which is not https://: refusing to sign in there`,
    );
  }
  return { resource, issuer, scopesSupported: stringList(body.scopes_supported) };
}

function checkServerMetadata(body: Record<string, unknown>, issuer: string, from: string): ServerMetadata {
  if (body.issuer !== issuer) {
    throw new OAuthError(`${displayUrl(from)} describes issuer ${String(body.issuer)}, not ${issuer}`);
  }
  const authorizationEndpoint = httpUrl(body.authorization_endpoint);
  const tokenEndpoint = httpUrl(body.token_endpoint);
  if (!authorizationEndpoint || !tokenEndpoint) {
    throw new OAuthError(
      `the authorization server ${issuer} publishes no authorization or token endpoint (https://, or http:// on this machine)`,
    );
  }
  // MCP spec: without advertised S256 support, PKCE cannot be relied on and the client must stop.
  if (!stringList(body.code_challenge_methods_supported)?.includes('S256')) {
    throw new OAuthError(
      `the authorization server ${issuer} does not advertise PKCE (S256); refusing to sign in`,
    );
  }
  return {
    issuer,
    authorizationEndpoint,
    tokenEndpoint,
    registrationEndpoint: httpUrl(body.registration_endpoint),
    scopesSupported: stringList(body.scopes_supported),
    clientIdMetadataDocumentSupported: body.client_id_metadata_document_supported === true,
    issParameterSupported: body.authorization_response_iss_parameter_supported === true,
  };
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : undefined;
}

/** An endpoint URL that is https, or http on this machine only (OAuth 2.1 §1.5: TLS everywhere else). */
function httpUrl(value: unknown): string | undefined {
  return typeof value === 'string' ? secureUrl(value)?.href : undefined;
}

function secureUrl(value: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol === 'https:') return url;
  return url.protocol === 'http:' && isLoopbackAddress(url.hostname) ? url : undefined;
}
