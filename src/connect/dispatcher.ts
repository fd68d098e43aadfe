// How the bridge reaches the gateway, as one undici dispatcher: TLS trust (--ca), the client
// certificate for mTLS (--cert/--key), corporate proxies (HTTPS_PROXY/HTTP_PROXY/NO_PROXY or --proxy),
// or a Unix socket (SSH attached mode).

import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher, EnvHttpProxyAgent } from 'undici';

/** Proxy URLs by target scheme and the hosts that bypass them; resolved once from flags and env. */
export interface ProxySettings {
  readonly httpProxy: string | undefined;
  readonly httpsProxy: string | undefined;
  /** NO_PROXY syntax: comma-separated hosts, `.domain` suffixes, `host:port`, `*`. */
  readonly noProxy: string | undefined;
}

/** PEM text of the client certificate (chain) and its private key. */
export interface ClientCertificate {
  readonly cert: string;
  readonly key: string;
}

export interface DispatcherOptions {
  /** PEM text of CA certificates to trust in addition to the system's. */
  ca?: string | undefined;
  clientCert?: ClientCertificate | undefined;
  proxy?: ProxySettings | undefined;
  socketPath?: string | undefined;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  // Streams stay open for as long as a tool runs; the bridge owns request timeouts, not undici.
  const timeouts = { headersTimeout: 0, bodyTimeout: 0 };
  if (options.socketPath !== undefined) {
    return new Agent({ ...timeouts, connect: { socketPath: options.socketPath } });
  }
  const trust = options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] };
  const tls = { ...trust, ...(options.clientCert ?? {}) };
  const proxy = options.proxy;
  if (!proxy?.httpProxy && !proxy?.httpsProxy) {
    return new Agent({ ...timeouts, ...(Object.keys(tls).length > 0 ? { connect: tls } : {}) });
  }
  return new EnvHttpProxyAgent({
    ...timeouts,
    // Empty strings, not undefined: the settings were already read from the environment, and undici
    // must not read it again behind our back.
    httpProxy: proxy.httpProxy ?? '',
    httpsProxy: proxy.httpsProxy ?? '',
    noProxy: proxy.noProxy ?? '',
    // Direct connections (NO_PROXY), the TLS session inside a CONNECT tunnel, and an https:// proxy
    // (corporate proxies are often signed by the same in-house CA as the gateway).
    connect: tls,
    requestTls: tls,
    proxyTls: trust,
  });
}

/**
 * The proxy settings from `--proxy` (which wins for both schemes) and the conventional variables;
 * lower-case names take precedence, as in curl.
 */
export function proxySettings(flag: string | undefined, env: NodeJS.ProcessEnv): ProxySettings {
  const pick = (name: string) => {
    const value = env[name.toLowerCase()] ?? env[name];
    return value?.trim() ? value.trim() : undefined;
  };
  const httpProxy = flag ?? pick('HTTP_PROXY');
  return {
    httpProxy,
    httpsProxy: flag ?? pick('HTTPS_PROXY') ?? httpProxy,
    noProxy: pick('NO_PROXY'),
  };
}

/** The proxy a request to `url` goes through, or undefined when it goes direct (NO_PROXY, or none set). */
export function proxyFor(url: URL, settings: ProxySettings): URL | undefined {
  const proxy = url.protocol === 'https:' ? settings.httpsProxy : settings.httpProxy;
  if (proxy === undefined || bypassesProxy(url, settings.noProxy)) return undefined;
  return new URL(proxy);
}

/** NO_PROXY: `*`, or a comma-separated list of hosts, `.suffix` domains (a bare name covers its subdomains too) and `host:port`. */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (noProxy === undefined) return false;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const [name, entryPort] = entry.startsWith('[')
      ? [entry.slice(1, entry.indexOf(']')), entry.split(']:')[1]]
      : entry.split(':');
    if (entryPort !== undefined && entryPort !== port) continue;
    const bare = (name ?? '').replace(/^\*?\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return true;
  }
  return false;
}
