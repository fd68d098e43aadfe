// A real OpenID provider (the `oidc-provider` package) on 127.0.0.1 for OAuth tests: JWT access
// tokens whose `aud` is the requested resource (RFC 8707), dynamic client registration, PKCE, refresh
// tokens, its dev login form (any login and password), short token lifetimes on demand, and signing
// key rotation. `authorize()` walks the login and consent forms over plain HTTP (no browser) for
// tests that only need real tokens; the connect tests drive the same forms with Chromium.

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

/** The scopes the test resource servers know. */
export const TEST_SCOPES = ['mcp', 'mcp:admin'];
/** A client every test may use without registering: public (PKCE), native (any loopback port). */
export const TEST_CLIENT_ID = 'mcp-relay-test';
export const TEST_REDIRECT_URI = 'http://127.0.0.1/callback';

export interface TestIdpOptions {
  /** Signing keys (private JWKs, the first signs). Default: one fresh RSA key. Share to forge issuers. */
  keys?: JWK[];
  /** Access token lifetime in seconds (changeable later through `settings`). Default 300. */
  accessTokenTTL?: number;
  /** Groups per login name, put into the `groups` claim. */
  groups?: Record<string, string[]>;
  /**
   * The `email_verified` claim per login name (default `true`): `false` as with open sign-up, the
   * string `"false"` as some providers send it, `undefined` to leave the claim out.
   */
  emailVerified?: Record<string, unknown>;
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  expires_in: number;
  scope?: string;
  token_type: string;
}

export interface TestIdp {
  /** The issuer URL (also the provider's base URL). */
  readonly issuer: string;
  /** Current signing keys (private JWKs); the first one signs. */
  readonly keys: readonly JWK[];
  /** Mutable: applies to tokens issued from now on. */
  readonly settings: { accessTokenTTL: number };
  /** Grant types of successful token requests, in order (`authorization_code`, `refresh_token`). */
  readonly grants: string[];
  /** Successful dynamic client registrations. */
  readonly registrations: number;
  /** Requests for the key set (`/jwks`) so far. */
  readonly jwksRequests: number;
  /** Logs `user` in and consents over HTTP, then exchanges the code: real tokens without a browser. */
  authorize(options: {
    user: string;
    resource: string;
    scope?: string;
    clientId?: string;
  }): Promise<TokenSet>;
  /**
   * Signs with a new key from now on. The old keys stay published (as a provider does while
   * rotating), unless `retire`: then the key set holds only the new key (a key removed, e.g. leaked).
   */
  rotateSigningKey(options?: { retire?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: randomBytes(6).toString('hex'), alg: 'RS256', use: 'sig' };
}

export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  let keys: JWK[] = options.keys ? [...options.keys] : [await newSigningKey()];
  const settings = { accessTokenTTL: options.accessTokenTTL ?? 300 };
  const groups = options.groups ?? {};
  const emailVerified = options.emailVerified ?? {};
  const grants: string[] = [];
  let registrations = 0;
  let jwksRequests = 0;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks') jwksRequests++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const configuration = (): Configuration => ({
    clients: [
      {
        client_id: TEST_CLIENT_ID,
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        redirect_uris: [TEST_REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    jwks: { keys },
    cookies: { keys: ['mcp-relay-test-cookie-key'] },
    ttl: {
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      AccessToken: () => settings.accessTokenTTL,
      RefreshToken: 3600,
    },
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    // Refresh tokens without offline_access (which this provider grants only with prompt=consent).
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    extraTokenClaims: (_ctx, token) => {
      const user = (token as { accountId?: string }).accountId;
      return user
        ? {
            preferred_username: user,
            email: `${user}@example.test`,
            email_verified: Object.hasOwn(emailVerified, user) ? emailVerified[user] : true,
            groups: groups[user] ?? [],
          }
        : undefined;
    },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => oneOf ?? undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => ({
          scope: TEST_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: settings.accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });

  const install = () => {
    const provider = new Provider(issuer, configuration());
    provider.on('grant.success', (ctx) => {
      grants.push(String(ctx.oidc.params?.grant_type ?? ''));
    });
    provider.on('registration_create.success', () => {
      registrations++;
    });
    handler = provider.callback();
  };
  install();

  return {
    issuer,
    get keys() {
      return keys;
    },
    settings,
    grants,
    get registrations() {
      return registrations;
    },
    get jwksRequests() {
      return jwksRequests;
    },
    authorize: (request) => authorizeOverHttp(issuer, request),
    async rotateSigningKey(rotation = {}) {
      const fresh = await newSigningKey();
      keys = rotation.retire ? [fresh] : [fresh, ...keys];
      // A new provider instance on the same socket: the memory adapter's store is module-wide, so
      // clients, sessions and refresh tokens survive, as they would across a real provider's restart.
      install();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The authorization code flow with PKCE over plain HTTP: login form, consent form, code, token. */
async function authorizeOverHttp(
  issuer: string,
  request: { user: string; resource: string; scope?: string; clientId?: string },
): Promise<TokenSet> {
  const clientId = request.clientId ?? TEST_CLIENT_ID;
  const redirectUri = 'http://127.0.0.1:9/callback';
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const start = new URL('/auth', issuer);
  start.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: request.scope ?? 'mcp',
    resource: request.resource,
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const cookies = new Map<string, string>();
  let url = start;
  let form: URLSearchParams | undefined;
  let code: string | undefined;
  for (let step = 0; step < 12 && code === undefined; step++) {
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      headers: {
        cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: form?.toString(),
      redirect: 'manual',
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      const next = new URL(location, url);
      if (next.href.startsWith(redirectUri)) {
        if (next.searchParams.get('state') !== state) throw new Error('authorize: state mismatch');
        const error = next.searchParams.get('error');
        if (error) throw new Error(`authorize: ${error}: ${next.searchParams.get('error_description')}`);
        code = next.searchParams.get('code') ?? undefined;
      }
      url = next;
      form = undefined;
      continue;
    }
    const html = await response.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([a-z]+)"/.exec(html)?.[1];
    if (response.status !== 200 || !action || !prompt) {
      throw new Error(`authorize: unexpected ${response.status} at ${url.pathname}: ${html.slice(0, 300)}`);
    }
    url = new URL(action.replaceAll('&amp;', '&'), url);
    form = new URLSearchParams(
      prompt === 'login' ? { prompt, login: request.user, password: 'any' } : { prompt },
    );
  }
  if (code === undefined) throw new Error('authorize: no authorization code after the forms');
  const token = await fetch(new URL('/token', issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: clientId,
      resource: request.resource,
    }),
  });
  const body = (await token.json()) as TokenSet & { error?: string; error_description?: string };
  if (!token.ok) throw new Error(`token: ${body.error}: ${body.error_description}`);
  return body;
}
