// How the bridge proves who the user is: a static bearer token (API key) here, or OAuth sign-in
// (oauth/provider.ts) behind the same interface (refresh or sign in on 401, then retry once).

/** What a 401 said, for a provider to decide whether fresh credentials could help. */
export interface AuthChallenge {
  /** The WWW-Authenticate header, if any. */
  wwwAuthenticate: string | undefined;
  url: URL;
  /** 401, or 403 for a token that lacks a scope (insufficient_scope). Default 401. */
  status?: number;
}

export type UnauthorizedOutcome = { retry: true } | { retry: false; hint: string };

export interface AuthProvider {
  /** Headers for every HTTP request; asked each time so a provider can refresh credentials. */
  headers(): Promise<Readonly<Record<string, string>>>;
  /** Called on a 401: `retry` when credentials changed and the request should be sent once more. */
  unauthorized(challenge: AuthChallenge): Promise<UnauthorizedOutcome>;
  /** Releases connections the provider holds (OAuth's HTTP client). */
  close?(): Promise<void>;
}

/** Where a static token came from, so the hint on a 401 tells the user what to change. */
export interface StaticTokenSource {
  token: string | undefined;
  /** e.g. `MCP_RELAY_TOKEN` or `--header Authorization`. */
  origin: string;
  /** True when the token was given as a whole Authorization header rather than a bare token. */
  rawHeader?: boolean;
}

/** Sends `Authorization: Bearer <token>` when a token is set; explains a 401 in user terms. */
export function staticTokenAuth(source: StaticTokenSource): AuthProvider {
  const headers: Readonly<Record<string, string>> =
    source.token === undefined
      ? {}
      : { authorization: source.rawHeader ? source.token : `Bearer ${source.token}` };
  return {
    headers: () => Promise.resolve(headers),
    unauthorized: (challenge) => {
      const status = challenge.status ?? 401;
      const detail = describeChallenge(challenge.wwwAuthenticate);
      const hint =
        source.token === undefined
          ? `the gateway requires a token (${status}${detail}) and ${source.origin} is not set: ` +
            `set ${source.origin} to your API key (in Claude Desktop: the "env" of this server's entry)`
          : `the gateway rejected the token in ${source.origin} (${status}${detail}): ` +
            `check that ${source.origin} holds a current API key`;
      return Promise.resolve({ retry: false, hint });
    },
  };
}

/** `, invalid_token: expired` from a Bearer challenge; empty when the header says nothing useful. */
function describeChallenge(header: string | undefined): string {
  if (!header) return '';
  const error = /\berror="?([A-Za-z0-9_.-]+)"?/.exec(header)?.[1];
  const description = /\berror_description="([^"]{1,160})"/.exec(header)?.[1];
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strip control characters from server text.
  const clean = (text: string) => text.replace(/[\u0000-\u001f\u007f]/g, '');
  if (error && description) return `, ${clean(error)}: ${clean(description)}`;
  return error ? `, ${clean(error)}` : '';
}
