// The proxy for a WebSocket: an http(s).Agent whose connections are CONNECT tunnels through the proxy
// the settings name for the URL (HTTPS_PROXY for wss://, HTTP_PROXY for ws://, minus NO_PROXY), with
// TLS to the server inside the tunnel. undici's dispatcher, which does this for the HTTP transports,
// cannot carry a `ws` upgrade, hence this small agent.

import http from 'node:http';
import https from 'node:https';
import { isIP, type Socket } from 'node:net';
import { rootCertificates, connect as tlsConnect } from 'node:tls';
import { type ClientCertificate, type ProxySettings, proxyFor } from './dispatcher.ts';

type CreateConnection = (
  options: { host?: string | null; port?: number | string | null },
  done: (error: Error | null, socket?: Socket) => void,
) => undefined;

/** The agent that tunnels to `url` through its proxy, or undefined when it goes direct. */
export function proxyAgentFor(
  url: URL,
  settings: ProxySettings | undefined,
  tls: { ca: string | undefined; clientCert: ClientCertificate | undefined },
): http.Agent | undefined {
  if (settings === undefined) return undefined;
  const secure = url.protocol === 'wss:';
  // The proxy rules speak of http(s) URLs: a wss:// URL goes where an https:// one to it would.
  const asHttp = new URL(url.href.replace(/^ws/, 'http'));
  const proxy = proxyFor(asHttp, settings);
  if (proxy === undefined) return undefined;
  const trust = tls.ca === undefined ? {} : { ca: [...rootCertificates, tls.ca] };
  const agent = secure ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  const target = {
    host: asHttp.hostname.replace(/^\[|\]$/g, ''),
    port: Number(asHttp.port || (secure ? 443 : 80)),
  };
  const createConnection: CreateConnection = (_options, done) => {
    const authority = `${asHttp.hostname}:${target.port}`;
    const headers: Record<string, string> = { host: authority };
    if (proxy.username || proxy.password) {
      const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
    }
    const request = (proxy.protocol === 'https:' ? https : http).request({
      host: proxy.hostname.replace(/^\[|\]$/g, ''),
      port: Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
      ...trust,
    });
    request.once('connect', (response, socket) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        // The wording undici uses, so the bridge's errors read the same for every transport.
        done(new Error(`Proxy response (${response.statusCode}) !== 200 when HTTP Tunneling`));
        return;
      }
      if (!secure) {
        done(null, socket);
        return;
      }
      // SNI takes host names only (RFC 6066); an IP address is still checked against the certificate.
      const sni = isIP(target.host) === 0 ? { servername: target.host } : {};
      done(null, tlsConnect({ socket, host: target.host, ...sni, ...trust, ...(tls.clientCert ?? {}) }));
    });
    request.once('error', (error) => done(error));
    request.end();
    return undefined;
  };
  Object.assign(agent, { createConnection });
  return agent;
}
