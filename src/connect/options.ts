// Turns `mcp-relay connect` flags and the environment into a checked, read-only bridge setup:
// URL and transport, extra headers (with ${ENV} expansion), the token's source or OAuth sign-in, CA
// file and timeouts.

import { readFileSync } from 'node:fs';
import { parseDuration } from '../config/units.ts';
import { RelayError } from '../errors.ts';
import { type AuthProvider, staticTokenAuth } from './auth.ts';
import { type BridgeLog, silentBridgeLog } from './diagnostics.ts';
import { type ClientCertificate, type ProxySettings, proxySettings } from './dispatcher.ts';
import { type OAuthFlags, oauthProvider } from './oauth/options.ts';
import { TOKEN_PLACEHOLDER } from './token-env.ts';
import { TRANSPORT_CHOICES, type TransportChoice } from './transports.ts';

/** A gateway restart takes 0.5–6 s: waiting this long keeps it invisible to the user. */
export const DEFAULT_RECONNECT_WAIT = '15s';
/** Three keep-alive intervals the gateway advertises (45 s with its default 15 s), none for other servers. */
export const DEFAULT_IDLE_TIMEOUT = 'auto';

export interface ConnectFlags {
  url: string;
  /** Every `--header` value, in order. */
  headers: readonly string[];
  tokenEnv: string;
  caFile: string | undefined;
  /** Client certificate and key (PEM files) for gateways that require mTLS. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** Proxy URL; otherwise HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. */
  proxy?: string | undefined;
  timeout: string;
  /** How long a message waits for a gateway that refuses connections (a restart); default 15s. */
  reconnectWait?: string | undefined;
  /** A connection silent this long is dead (--idle-timeout); "auto": 3 keep-alive intervals the gateway advertises. */
  idleTimeout?: string | undefined;
  /** OAuth sign-in, used when neither the token variable nor an Authorization header is set. */
  oauth?: OAuthFlags | undefined;
  /** --transport: http, sse, ws or auto (the default). */
  transport?: string | undefined;
}

export interface ConnectSetup {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly auth: AuthProvider;
  readonly ca: string | undefined;
  readonly clientCert: ClientCertificate | undefined;
  readonly proxy: ProxySettings;
  readonly requestTimeoutMs: number;
  readonly outageWaitMs: number;
  /** Undefined: automatic (from the gateway's advertised keep-alive interval); 0: never. */
  readonly idleTimeoutMs: number | undefined;
  readonly transport: TransportChoice;
}

/** Headers the transport sets itself; letting a flag override them would break the protocol. */
const MANAGED_HEADERS = new Set([
  'accept',
  'content-type',
  'content-length',
  'host',
  'connection',
  'transfer-encoding',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);

const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** `log` is where an OAuth sign-in speaks (the sign-in URL, progress). */
export function resolveConnectSetup(
  flags: ConnectFlags,
  env: NodeJS.ProcessEnv,
  log: BridgeLog = silentBridgeLog,
): ConnectSetup {
  const url = parseUrl(flags.url);
  const transport = parseTransport(flags.transport, url);
  const headers = parseHeaderFlags(flags.headers, env);
  if (!ENV_NAME.test(flags.tokenEnv))
    throw usage(`--token-env needs a variable name, not "${flags.tokenEnv}"`);
  const token = env[flags.tokenEnv]?.trim() || undefined;
  if (token === TOKEN_PLACEHOLDER)
    throw usage(
      `${flags.tokenEnv} still holds the placeholder; put your key from "mcp-relay keys create" there, or remove it to sign in with OAuth`,
    );
  const ca = flags.caFile === undefined ? undefined : readCa(flags.caFile);
  const clientCert = readClientCert(flags.certFile, flags.keyFile);
  const proxy = checkedProxy(proxySettings(flags.proxy, env), flags.proxy !== undefined);
  // An Authorization header given explicitly wins over the token variable; 401 hints then name the
  // flag. With neither, a server that asks for OAuth gets it (a browser sign-in).
  const auth =
    headers.authorization !== undefined
      ? staticTokenAuth({ token: headers.authorization, origin: '--header Authorization', rawHeader: true })
      : token !== undefined
        ? staticTokenAuth({ token, origin: flags.tokenEnv })
        : oauthProvider(
            // A WebSocket front's sign-in is discovered over HTTP(S) on the same origin and path.
            httpEquivalent(url),
            flags.oauth ?? {},
            env,
            { ca, clientCert, proxy },
            staticTokenAuth({ token, origin: flags.tokenEnv }),
            log,
          );
  const { authorization: _fromAuth, ...otherHeaders } = headers;
  const requestTimeoutMs = parseDuration(flags.timeout);
  if (requestTimeoutMs === undefined || requestTimeoutMs <= 0) {
    throw usage(`--timeout "${flags.timeout}" is not a duration (use e.g. 30s, 5m)`);
  }
  const outageWaitMs = parseDuration(flags.reconnectWait ?? DEFAULT_RECONNECT_WAIT);
  if (outageWaitMs === undefined) {
    throw usage(`--reconnect-wait "${flags.reconnectWait}" is not a duration (use e.g. 0s, 15s, 1m)`);
  }
  const idleTimeout = flags.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
  const idleTimeoutMs = idleTimeout === DEFAULT_IDLE_TIMEOUT ? undefined : parseDuration(idleTimeout);
  if (idleTimeout !== DEFAULT_IDLE_TIMEOUT && idleTimeoutMs === undefined) {
    throw usage(`--idle-timeout "${idleTimeout}" is not a duration (use e.g. 45s, or 0s for never, or auto)`);
  }
  return Object.freeze({
    url,
    headers: Object.freeze(otherHeaders),
    auth,
    ca,
    clientCert,
    proxy,
    requestTimeoutMs,
    outageWaitMs,
    idleTimeoutMs,
    transport,
  });
}

/** ws:// → http://, wss:// → https:// (the same origin and path); http(s) URLs as they are. */
export function httpEquivalent(url: URL): URL {
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return url;
  return new URL(url.href.replace(/^ws/, 'http'));
}

function parseTransport(flag: string | undefined, url: URL): TransportChoice {
  const value = flag ?? 'auto';
  const choice = TRANSPORT_CHOICES.find((known) => known === value);
  if (choice === undefined)
    throw usage(`--transport "${safe(value)}" is not one of ${TRANSPORT_CHOICES.join(', ')}`);
  const webSocketUrl = url.protocol === 'ws:' || url.protocol === 'wss:';
  if (webSocketUrl && choice !== 'ws' && choice !== 'auto') {
    throw usage(
      `--transport ${choice} needs an http:// or https:// URL; ${url.protocol}// URLs speak WebSocket`,
    );
  }
  if (!webSocketUrl && choice === 'ws') throw usage('--transport ws needs a ws:// or wss:// URL');
  return choice;
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`"${text}" is not a URL (expected e.g. https://mcp.example.com/mcp/3d)`);
  }
  if (!['https:', 'http:', 'wss:', 'ws:'].includes(url.protocol))
    throw usage(`${url.protocol} URLs are not supported (use https://, http://, wss:// or ws://)`);
  if (url.username || url.password)
    throw usage('put credentials in MCP_RELAY_TOKEN or --header, not in the URL');
  return url;
}

/** `Name: Value` flags → a header record with lower-case names; `${VAR}` and `${VAR:-default}` expand. */
export function parseHeaderFlags(values: readonly string[], env: NodeJS.ProcessEnv): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const flag of values) {
    const colon = flag.indexOf(':');
    const name = (colon === -1 ? flag : flag.slice(0, colon)).trim();
    if (colon === -1 || !TOKEN_CHARS.test(name)) {
      // The value is not echoed: it is likely a secret.
      const named = colon !== -1 && name ? ` "${safe(name)}"` : '';
      throw usage(`--header needs "Name: Value" (got a value without a valid header name${named})`);
    }
    const lower = name.toLowerCase();
    if (MANAGED_HEADERS.has(lower)) throw usage(`--header ${name}: mcp-relay sets this header itself`);
    const value = expandEnv(flag.slice(colon + 1).trim(), env, name);
    if (/[\r\n\0]/.test(value)) throw usage(`--header ${name}: the value may not contain line breaks`);
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  return headers;
}

function expandEnv(value: string, env: NodeJS.ProcessEnv, header: string): string {
  return value.replace(ENV_REFERENCE, (_match, name: string, fallback: string | undefined) => {
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw usage(
      `--header ${header}: environment variable ${name} is not set (write \${${name}:-default} for a default)`,
    );
  });
}

function readCa(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw usage(`--ca: cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw usage(`--ca: ${file} holds no PEM certificate`);
  return text;
}

function readClientCert(
  certFile: string | undefined,
  keyFile: string | undefined,
): ClientCertificate | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw usage('--cert and --key go together');
  const cert = readPem(certFile, '--cert');
  const key = readPem(keyFile, '--key');
  if (!cert.includes('-----BEGIN CERTIFICATE-----'))
    throw usage(`--cert: ${certFile} holds no PEM certificate`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key))
    throw usage(`--key: ${keyFile} holds no PEM private key`);
  if (key.includes('ENCRYPTED')) throw usage(`--key: ${keyFile} is encrypted; give an unencrypted key file`);
  return { cert, key };
}

function readPem(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw usage(`${flag}: cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Proxy URLs must be http(s) URLs; the message never shows them (they may carry a password). */
function checkedProxy(settings: ProxySettings, fromFlag: boolean): ProxySettings {
  const check = (value: string | undefined, source: string) => {
    if (value === undefined) return;
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
      throw usage(`${source} is not an http:// or https:// proxy URL`);
    }
  };
  check(settings.httpProxy, fromFlag ? '--proxy' : 'HTTP_PROXY');
  check(settings.httpsProxy, fromFlag ? '--proxy' : 'HTTPS_PROXY');
  return Object.freeze(settings);
}

function safe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 60);
}

function usage(message: string): RelayError {
  return new RelayError('USAGE', message);
}
