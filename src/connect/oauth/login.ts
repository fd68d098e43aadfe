// One interactive sign-in: the authorization code flow with PKCE (S256) and the `resource`
// parameter, through the user's browser and a loopback callback, ending in tokens.

import { createHash, randomBytes } from 'node:crypto';
import { formatDuration } from '../../config/units.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { openBrowser } from './browser.ts';
import { startCallbackServer } from './callback.ts';
import { type ClientChoice, chooseClient, exchangeCode } from './client.ts';
import { OAuthError, type OAuthHttp } from './http.ts';
import type { ServerMetadata } from './metadata.ts';
import type { StoredClient, StoredTokens } from './store.ts';

export interface LoginRequest {
  http: OAuthHttp;
  server: ServerMetadata;
  resource: string;
  /** Space-separated scopes to ask for; undefined asks for none in particular. */
  scope: string | undefined;
  choice: ClientChoice;
  /** The client from an earlier login with this server, reused when it still fits. */
  known: StoredClient | undefined;
  /** A fixed callback port (--callback-port); otherwise the known client's port when free, else any. */
  callbackPort: number | undefined;
  /** --browser / MCP_RELAY_BROWSER. */
  browser: string | undefined;
  /** What the user is signing in to, for the stderr line. */
  label: string;
  log: BridgeLog;
  timeoutMs: number;
  signal: AbortSignal;
}

export async function interactiveLogin(
  request: LoginRequest,
): Promise<{ client: StoredClient; tokens: StoredTokens }> {
  const { http, server, log } = request;
  const knownPort = request.known?.redirectUri ? Number(new URL(request.known.redirectUri).port) : 0;
  const callback = await startCallbackServer(
    request.callbackPort ?? knownPort,
    request.callbackPort === undefined,
  );
  try {
    const client = await chooseClient(http, server, callback.redirectUri, request.choice, request.known);
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(16).toString('base64url');
    const url = new URL(server.authorizationEndpoint);
    const params: Record<string, string> = {
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: callback.redirectUri,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      resource: request.resource,
      ...(request.scope ? { scope: request.scope } : {}),
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    log.info(`sign in to ${request.label} in your browser: ${url.href}`);
    openBrowser(url.href, request.browser, log);
    const timeout = AbortSignal.timeout(request.timeoutMs);
    let answer: Awaited<ReturnType<typeof callback.wait>>;
    try {
      answer = await callback.wait(state, AbortSignal.any([request.signal, timeout]));
    } catch (error) {
      if (timeout.aborted) {
        throw new OAuthError(
          `sign-in to ${request.label} was not completed within ${formatDuration(request.timeoutMs)}`,
        );
      }
      throw error;
    }
    // RFC 9207: a code from another authorization server (mix-up attack) must not be redeemed here.
    if ((answer.iss !== undefined || server.issParameterSupported) && answer.iss !== server.issuer) {
      throw new OAuthError('the sign-in answer came from another authorization server (iss mismatch)');
    }
    const tokens = await exchangeCode(http, server, client, {
      code: answer.code,
      verifier,
      redirectUri: callback.redirectUri,
      resource: request.resource,
    });
    return { client, tokens };
  } finally {
    await callback.close();
  }
}
