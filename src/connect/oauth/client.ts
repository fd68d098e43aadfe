// Who the bridge is to the authorization server, in the MCP spec's order: a configured client id
// (--client-id), a client ID metadata document URL (--client-metadata-url, when the server supports
// them), or dynamic client registration (RFC 7591) as a public native client. And the token
// endpoint: the code exchange and refreshes, always with the `resource` (RFC 8707).

import { VERSION } from '../../version.ts';
import { displayUrl, OAuthError, type OAuthHttp, oauthErrorOf } from './http.ts';
import type { ServerMetadata } from './metadata.ts';
import type { StoredClient, StoredTokens } from './store.ts';

export interface ClientChoice {
  /** --client-id: registered with the provider by an administrator. */
  clientId: string | undefined;
  /** --client-metadata-url: an HTTPS URL serving this client's metadata document. */
  clientMetadataUrl: string | undefined;
}

/** A client for `server` that can use `redirectUri`, reusing `known` when it still fits. */
export async function chooseClient(
  http: OAuthHttp,
  server: ServerMetadata,
  redirectUri: string,
  choice: ClientChoice,
  known: StoredClient | undefined,
): Promise<StoredClient> {
  if (choice.clientId) return { clientId: choice.clientId, authMethod: 'none', how: 'configured' };
  if (choice.clientMetadataUrl && server.clientIdMetadataDocumentSupported) {
    return { clientId: choice.clientMetadataUrl, authMethod: 'none', how: 'metadata-document' };
  }
  // A registered native client may use any loopback port (RFC 8252 §7.3), but not every server
  // implements that: register again when the port changed.
  if (known?.how === 'registered' && known.redirectUri === redirectUri) return known;
  if (!server.registrationEndpoint) {
    throw new OAuthError(
      `the authorization server ${server.issuer} offers no dynamic client registration: register mcp-relay ` +
        `there as a public client with redirect URI ${redirectUri} (or pick the port with --callback-port) and pass --client-id`,
    );
  }
  const reply = await http.postJson(server.registrationEndpoint, {
    client_name: 'mcp-relay connect',
    software_id: 'mcp-relay',
    software_version: VERSION,
    application_type: 'native',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  });
  const body = reply.body;
  if ((reply.status !== 201 && reply.status !== 200) || typeof body?.client_id !== 'string') {
    const { text } = oauthErrorOf(body);
    throw new OAuthError(
      `client registration at ${displayUrl(server.registrationEndpoint)} failed (${reply.status}${text ? `, ${text}` : ''})`,
    );
  }
  return {
    clientId: body.client_id,
    clientSecret: typeof body.client_secret === 'string' ? body.client_secret : undefined,
    authMethod:
      typeof body.token_endpoint_auth_method === 'string' ? body.token_endpoint_auth_method : 'none',
    redirectUri,
    how: 'registered',
  };
}

/** Exchanges an authorization code (with its PKCE verifier) for tokens. */
export function exchangeCode(
  http: OAuthHttp,
  server: ServerMetadata,
  client: StoredClient,
  grant: { code: string; verifier: string; redirectUri: string; resource: string },
): Promise<StoredTokens> {
  return tokenRequest(http, server, client, {
    grant_type: 'authorization_code',
    code: grant.code,
    code_verifier: grant.verifier,
    redirect_uri: grant.redirectUri,
    resource: grant.resource,
  });
}

/** Trades a refresh token for fresh tokens; the server may rotate the refresh token too. */
export async function refreshTokens(
  http: OAuthHttp,
  server: ServerMetadata,
  client: StoredClient,
  tokens: StoredTokens & { refreshToken: string },
  resource: string,
): Promise<StoredTokens> {
  const fresh = await tokenRequest(http, server, client, {
    grant_type: 'refresh_token',
    refresh_token: tokens.refreshToken,
    resource,
  });
  return { ...fresh, refreshToken: fresh.refreshToken ?? tokens.refreshToken };
}

async function tokenRequest(
  http: OAuthHttp,
  server: ServerMetadata,
  client: StoredClient,
  form: Record<string, string>,
): Promise<StoredTokens> {
  const headers: Record<string, string> = {};
  const body = { ...form };
  if (client.clientSecret && client.authMethod === 'client_secret_basic') {
    const pair = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  } else {
    body.client_id = client.clientId;
    if (client.clientSecret) body.client_secret = client.clientSecret;
  }
  const started = Date.now();
  const reply = await http.postForm(server.tokenEndpoint, body, headers);
  const answer = reply.body;
  if (reply.status !== 200 || typeof answer?.access_token !== 'string') {
    const { code, text } = oauthErrorOf(answer);
    throw new OAuthError(`the token request failed (${reply.status}${text ? `, ${text}` : ''})`, {
      ...(code === undefined ? {} : { code }),
    });
  }
  if (typeof answer.token_type === 'string' && answer.token_type.toLowerCase() !== 'bearer') {
    throw new OAuthError(
      `the authorization server issued a ${answer.token_type} token; only Bearer tokens are supported`,
    );
  }
  const expiresIn = typeof answer.expires_in === 'number' ? answer.expires_in : Number(answer.expires_in);
  return {
    accessToken: answer.access_token,
    refreshToken: typeof answer.refresh_token === 'string' ? answer.refresh_token : undefined,
    obtainedAt: started,
    // Counted from when the request was sent, so a slow answer errs on the early side.
    expiresAt: Number.isFinite(expiresIn) && expiresIn > 0 ? started + expiresIn * 1000 : undefined,
    scope: typeof answer.scope === 'string' ? answer.scope : undefined,
  };
}
