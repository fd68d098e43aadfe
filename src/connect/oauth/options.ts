// `mcp-relay connect`'s OAuth flags, checked: which client to be, which scopes to ask for, where
// the sign-in callback listens, how the browser opens, how long a sign-in may take.

import { parseDuration } from '../../config/units.ts';
import { RelayError } from '../../errors.ts';
import { VERSION } from '../../version.ts';
import type { AuthProvider } from '../auth.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { createDispatcher, type DispatcherOptions } from '../dispatcher.ts';
import { oauthAuth } from './provider.ts';
import { configDir } from './store.ts';

export interface OAuthFlags {
  /** false (--no-oauth): never sign in; a 401 only explains which token to set. */
  enabled?: boolean | undefined;
  clientId?: string | undefined;
  clientMetadataUrl?: string | undefined;
  scope?: string | undefined;
  callbackPort?: string | undefined;
  /** Else MCP_RELAY_BROWSER, else the system's browser. */
  browser?: string | undefined;
  loginTimeout?: string | undefined;
}

export const DEFAULT_LOGIN_TIMEOUT = '5m';

/**
 * The OAuth provider for a bridge without a static token, or `fallback` itself when OAuth is off.
 * `transport` is the bridge's own TLS and proxy setup, used for every OAuth request too.
 */
export function oauthProvider(
  url: URL,
  flags: OAuthFlags,
  env: NodeJS.ProcessEnv,
  transport: DispatcherOptions,
  fallback: AuthProvider,
  log: BridgeLog,
): AuthProvider {
  if (flags.enabled === false) return fallback;
  const loginTimeoutMs = parseDuration(flags.loginTimeout ?? DEFAULT_LOGIN_TIMEOUT);
  if (loginTimeoutMs === undefined || loginTimeoutMs <= 0) {
    throw usage(`--login-timeout "${flags.loginTimeout}" is not a duration (use e.g. 2m)`);
  }
  return oauthAuth({
    url,
    dispatcher: createDispatcher(transport),
    configDir: configDir(env),
    clientId: nonEmpty(flags.clientId, '--client-id'),
    clientMetadataUrl: metadataUrl(flags.clientMetadataUrl),
    scope: scopeList(flags.scope),
    callbackPort: port(flags.callbackPort),
    browser: flags.browser ?? env.MCP_RELAY_BROWSER,
    loginTimeoutMs,
    log,
    userAgent: `mcp-relay/${VERSION} (connect)`,
    fallback,
  });
}

function nonEmpty(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '' || /[\s\0]/.test(value.trim())) throw usage(`${flag} needs a value without spaces`);
  return value.trim();
}

/** A client ID metadata document must be an https URL with a path (draft-ietf-oauth-client-id-metadata-document). */
function metadataUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'https:' || url.pathname === '/' || url.hash) {
    throw usage(
      '--client-metadata-url needs an https:// URL with a path (where your client metadata is served)',
    );
  }
  return url.href;
}

function scopeList(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const scopes = value.split(/[\s,]+/).filter(Boolean);
  if (scopes.some((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope)))
    throw usage('--scope: scopes are printable words without quotes or backslashes');
  return scopes.length > 0 ? scopes.join(' ') : undefined;
}

function port(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > 65_535)
    throw usage(`--callback-port needs a port number (1-65535), not "${value}"`);
  return number;
}

function usage(message: string): RelayError {
  return new RelayError('USAGE', message);
}
