// The few types of the `oidc-provider` package (it ships none) that the test OpenID provider uses.

declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type { JWK } from 'jose';

  export interface ClientMetadata {
    client_id: string;
    token_endpoint_auth_method?: string;
    application_type?: 'native' | 'web';
    redirect_uris?: string[];
    grant_types?: string[];
    response_types?: string[];
  }

  export interface Client {
    grantTypeAllowed(type: string): boolean;
  }

  export interface Context {
    oidc: { params?: Record<string, unknown> };
  }

  export interface ResourceServer {
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat?: 'opaque' | 'jwt';
    jwt?: { sign?: { alg: string } };
  }

  export interface Configuration {
    clients?: ClientMetadata[];
    jwks?: { keys: JWK[] };
    cookies?: { keys: string[] };
    ttl?: Record<string, number | (() => number)>;
    findAccount?: (
      ctx: Context,
      sub: string,
    ) => { accountId: string; claims: () => Record<string, unknown> } | undefined;
    issueRefreshToken?: (ctx: Context, client: Client, code: unknown) => boolean | Promise<boolean>;
    extraTokenClaims?: (
      ctx: Context,
      token: unknown,
    ) => Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>;
    features?: {
      devInteractions?: { enabled: boolean };
      registration?: { enabled: boolean };
      resourceIndicators?: {
        enabled: boolean;
        defaultResource?: (ctx: Context, client: Client, oneOf?: string[]) => string | string[] | undefined;
        useGrantedResource?: (ctx: Context, model: unknown) => boolean;
        getResourceServerInfo?: (ctx: Context, resourceIndicator: string, client: Client) => ResourceServer;
      };
    };
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (ctx: Context) => void): this;
  }
}
