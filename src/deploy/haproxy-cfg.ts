// haproxy.cfg in front of a cluster's replicas, rendered from its config and the replicas alive now: TLS
// at HAProxy for publicUrl's port, a session's requests to the replica its id names, the others by a hash
// of the credential, each gateway route passed on and everything else answered 404 by HAProxy.
// `mcp-relay deploy print haproxy` prints it (HAProxy 2.6, Debian 12's, and later).

import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import { LEGACY_SESSION_PARAM } from './nginx-site.ts';

export interface HaproxyCfgOptions {
  /**
   * One PEM file with the certificate chain for publicUrl's host and its private key (HAProxy reads
   * both from the file `crt` names); default: a placeholder path.
   */
  pem?: string | undefined;
  /** The replicas: each one's id and the host:port of its gateway listener. */
  replicas: readonly { id: string; address: string }[];
}

export interface HaproxyCfg {
  text: string;
  /** Things the admin should change in relay.yaml, for stderr. */
  warnings: string[];
}

/**
 * How long HAProxy waits on an idle MCP stream or WebSocket, as the nginx site does. The gateway's
 * keep-alive comments (sse.keepAlive, 15 s) keep MCP streams well inside it.
 */
export const STREAM_TIMEOUT = '1h';
/**
 * How long HAProxy keeps an idle client connection: longer than clients keep theirs (undici, so
 * `connect`, lets go after 4 s, as the gateway's `Keep-Alive: timeout=5` tells them), so the client
 * always closes first and never sends a request on a connection HAProxy is closing. The replicas'
 * side is one connection per request (`http-server-close`), so the gateway's own timeout plays no part.
 */
export const KEEP_ALIVE_TIMEOUT = '10s';
const BACKEND = 'mcp_relay';
/** The same path prefix as the gateway's OAuth metadata row (http/well-known.ts). */
const RESOURCE_METADATA = '/.well-known/oauth-protected-resource';

export function renderHaproxyCfg(config: RelayConfig, options: HaproxyCfgOptions): HaproxyCfg {
  const publicUrl = checkedPublicUrl(config);
  const { replicas } = options;
  if (replicas.length === 0)
    throw new RelayError('CONFIG_INVALID', 'no replica of this cluster is alive: start them first');
  const serverTls = replicaTls(config);
  const port = publicUrl.port === '' ? 443 : Number(publicUrl.port);
  const pem = haproxyWord(options.pem ?? `/etc/haproxy/certs/${publicUrl.hostname}.pem`);
  const withApps = Object.values(config.servers).some((server) => server.app !== undefined);

  const lines: string[] = [
    '# haproxy.cfg for an mcp-relay cluster: TLS ends here, the replicas listen behind it.',
    `# Rendered by \`mcp-relay deploy print haproxy\` from relay.yaml (publicUrl ${config.publicUrl}, the servers`,
    '# with an app, auth.oidc) and the replicas alive in Redis; render it again when those change. Install it',
    '# as /etc/haproxy/haproxy.cfg, then `haproxy -c -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy`.',
    '',
    'global',
    '    log /dev/log local0',
    '    ssl-default-bind-options ssl-min-ver TLSv1.2',
    '',
    'defaults',
    '    mode http',
    '    log global',
    '    option httplog',
    '    timeout connect 5s',
    '    timeout http-request 10s',
    '    # MCP streams (SSE) and WebSockets stay open while idle: the gateway writes a keep-alive comment or',
    '    # ping every sse.keepAlive, well inside these; the long ones cover a keepAlive of 0.',
    `    timeout client ${STREAM_TIMEOUT}`,
    `    timeout server ${STREAM_TIMEOUT}`,
    `    timeout tunnel ${STREAM_TIMEOUT}`,
    '    # Idle client connections are kept longer than clients keep them: the client always closes first.',
    `    timeout http-keep-alive ${KEEP_ALIVE_TIMEOUT}`,
    '    # One connection to a replica per request, closed after the answer: a streamed answer (SSE) flows',
    '    # as the gateway writes it, and no idle connection the gateway has just closed is ever reused.',
    '    option http-server-close',
    '',
  ];
  if (port === 443) {
    lines.push(
      'frontend mcp_relay_http',
      '    # Plain HTTP only sends browsers to HTTPS.',
      '    bind :::80 v4v6',
      '    http-request redirect scheme https code 301',
      '',
    );
  }
  lines.push(
    'frontend mcp_relay_https',
    options.pem === undefined
      ? '    # A placeholder: one PEM holding the certificate chain then its key (cat fullchain.pem privkey.pem),'
      : '    # The certificate for publicUrl: one PEM holding the chain and its key.',
    ...(options.pem === undefined ? ['    # or render with --cert FILE.'] : []),
    `    bind :::${port} v4v6 ssl crt ${pem}`,
    '    # The Host clients used reaches the replicas unchanged, port included: the gateway refuses (421) a',
    "    # Host that is not publicUrl's, and apps compare it with the browser's Origin. X-Forwarded-* tell",
    '    # apps the rest.',
    '    option forwardfor',
    '    http-request set-header X-Forwarded-Proto https',
    '    http-request set-header X-Forwarded-Host %[req.hdr(host)]',
    '    # The gateway routes: MCP (/mcp/<server>, /mcp for the only server), MCP over WebSocket (/ws),',
    '    # health for load balancers and monitors (kept out of the log).',
    '    acl relay_route path /mcp /ws /healthz',
    '    acl relay_route path_beg /mcp/ /ws/',
  );
  if (withApps)
    lines.push(
      '    # Browser apps and their WebSockets; sign-in links for apps, asked for by MCP clients.',
      '    acl relay_route path_beg /apps/ /app-links/',
    );
  if (config.auth.oidc !== undefined)
    lines.push(
      '    # OAuth protected resource metadata (RFC 9728): how MCP clients find the identity provider.',
      `    acl relay_route path_beg ${RESOURCE_METADATA}`,
    );
  lines.push(
    '    # The gateway serves nothing else.',
    '    http-request return status 404 unless relay_route',
    '    http-request set-log-level silent if { path /healthz }',
    `    default_backend ${BACKEND}`,
    '',
    ...replicaBackend(replicas, publicUrl.host, serverTls),
  );
  return { text: lines.join('\n'), warnings: serverTls.warnings };
}

/**
 * The replicas: a session lives on the replica its Mcp-Session-Id (or a legacy SSE POST's sessionId)
 * names (`<replica>.<random>`), so one `use-server` rule per replica and place (HAProxy takes only
 * static server names there); requests with none (initialize, 2026-07-28 requests, a legacy SSE GET, a
 * WebSocket upgrade) go by a consistent hash of the credential, so a user lands where their per-user
 * backend likely is. A replica that fails its checks is skipped by `use-server`: its
 * sessions reach a live replica, which answers 404, and the client starts a new session.
 */
function replicaBackend(
  replicas: readonly { id: string; address: string }[],
  host: string,
  tls: { server: string },
): string[] {
  return [
    `backend ${BACKEND}`,
    '    # Several replicas: render again when replicas come or go (`mcp-relay deploy print haproxy` reads',
    '    # them from Redis).',
    '    balance hash req.hdr(authorization)',
    '    hash-type consistent',
    ...replicas.map(
      (replica) => `    use-server ${replica.id} if { req.hdr(mcp-session-id) -m beg ${replica.id}. }`,
    ),
    `    # A legacy SSE POST names its session in the query (?${LEGACY_SESSION_PARAM}=).`,
    ...replicas.map(
      (replica) =>
        `    use-server ${replica.id} if { url_param(${LEGACY_SESSION_PARAM}) -m beg ${replica.id}. }`,
    ),
    '    # A replica is down after two failed checks a second apart (hung as well as dead), up after two',
    "    # good ones; /healthz answers 503 while it stops. The check names publicUrl's host (the gateway",
    '    # refuses a foreign Host).',
    '    option httpchk',
    `    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host ${host}`,
    '    http-check expect status 200',
    '    # A request is sent again (twice, then to another replica) only when no connection was made: nothing',
    '    # reached the gateway, so nothing runs twice.',
    '    retries 2',
    '    retry-on conn-failure',
    '    option redispatch',
    ...replicas.map(
      (replica) =>
        `    server ${replica.id} ${serverAddress(replica.address)}${tls.server} check inter 1s fall 2 rise 2`,
    ),
    '',
  ];
}

/** How HAProxy reaches the replicas' listeners, and what to change in relay.yaml. */
function replicaTls(config: RelayConfig): { server: string; warnings: string[] } {
  if (config.listen === false) {
    throw new RelayError(
      'CONFIG_INVALID',
      'the config has listen: false (the SSH socket only): there is no HTTP listener for HAProxy to send requests to',
    );
  }
  const { tls } = config.listen;
  if (tls?.clientCa !== undefined) {
    throw new RelayError(
      'CONFIG_INVALID',
      'listen.tls.clientCa (client certificates): HAProxy would end the TLS connection, so no certificate reaches the gateway; let clients reach the replicas directly',
    );
  }
  if (tls === undefined) return { server: '', warnings: [] };
  return {
    server: ' ssl verify none',
    warnings: [
      'listen.tls: HAProxy re-encrypts to the replicas without checking their certificates; on a private network, plain HTTP (no listen.tls) is enough',
    ],
  };
}

/** publicUrl as HAProxy can serve it: https, at the root of a host. */
function checkedPublicUrl(config: RelayConfig): URL {
  if (config.publicUrl === undefined) {
    throw new RelayError(
      'CONFIG_INVALID',
      'haproxy.cfg is rendered for publicUrl, and the config has none: set publicUrl to the https address users reach (e.g. https://mcp.example.com)',
    );
  }
  const url = new URL(config.publicUrl);
  if (url.protocol !== 'https:') {
    throw new RelayError(
      'CONFIG_INVALID',
      `publicUrl ${config.publicUrl} is not https: HAProxy terminates TLS for the address users reach`,
    );
  }
  if (url.pathname !== '/' || url.search !== '') {
    throw new RelayError(
      'CONFIG_INVALID',
      `publicUrl ${config.publicUrl} has a path: the gateway serves /mcp, /apps and /healthz at the root of its address; give it a host name (or port) of its own`,
    );
  }
  return url;
}

/** A registry address (`host:port`, `[v6]:port`) as a `server` address: HAProxy writes IPv6 unbracketed. */
function serverAddress(address: string): string {
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(address);
  const plain = v6 ? `ipv6@${v6[1]}:${v6[2]}` : address;
  if (!/^[A-Za-z0-9.:@_-]+$/.test(plain))
    throw new RelayError('CONFIG_INVALID', `replica address ${JSON.stringify(address)} is not host:port`);
  return plain;
}

/** A file path as one HAProxy word: single-quoted (nothing expanded) when it holds what would split it. */
function haproxyWord(path: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
  if (/['\u0000-\u001f\u007f]/.test(path))
    throw new RelayError(
      'USAGE',
      `the certificate path ${JSON.stringify(path)} cannot go into haproxy.cfg (a ' or a control character)`,
    );
  return /^[A-Za-z0-9_./@+,=-]+$/.test(path) ? path : `'${path}'`;
}
