// The nginx site in front of a gateway, rendered from its config: TLS at nginx for publicUrl's host and
// port, each route the gateway serves proxied to where it listens, everything else answered 404 by nginx.
// `mcp-relay deploy print nginx` prints it; deploy/nginx-site.conf is it for deploy/relay.yaml.

import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import { isLoopbackAddress } from '../util/loopback.ts';

/**
 * The query argument a legacy SSE POST names its session in (transports/legacy-sse/paths.ts's
 * SESSION_PARAM; deploy/ renders text and imports no transport, and deploy-unit.test.ts keeps the two equal).
 */
export const LEGACY_SESSION_PARAM = 'sessionId';

export interface NginxSiteOptions {
  /** The certificate chain (PEM) for publicUrl's host; default: a Let's Encrypt path to replace. */
  cert?: string | undefined;
  /** Its private key; default: the matching Let's Encrypt path. */
  key?: string | undefined;
  /**
   * Several replicas (cluster): each one's id and the host:port of its gateway listener. Requests are
   * routed by the replica named in their Mcp-Session-Id (or a legacy SSE POST's sessionId), the others
   * as backups; without one, by a hash of the credential, so a user lands where their per-user backend
   * likely is.
   */
  replicas?: readonly { id: string; address: string }[] | undefined;
}

/** The nginx variable the cluster map sets: the upstream of the replica a request belongs to. */
const CLUSTER_UPSTREAM = '$mcp_relay_upstream';
const ANY_REPLICA = 'mcp_relay_any';
/**
 * Idle connections to the replicas are kept, and let go before the gateway's own 5 s keep-alive
 * timeout ends them: nginx reusing one the gateway just closed fails the request over to a backup.
 */
const KEEPALIVE = ['    keepalive 32;', '    keepalive_timeout 4s;'];

export interface NginxSite {
  text: string;
  /** Things the admin should change in relay.yaml, for stderr. */
  warnings: string[];
}

/**
 * How long nginx waits on an idle MCP stream or app WebSocket. The gateway's keep-alive comments
 * (sse.keepAlive, 15 s) keep MCP streams well inside it; an app's WebSocket needs its own pings.
 */
export const PROXY_TIMEOUT = '1h';

/** The same path prefix as the gateway's OAuth metadata row (http/well-known.ts). */
const RESOURCE_METADATA = '/.well-known/oauth-protected-resource';

export function renderNginxSite(config: RelayConfig, options: NginxSiteOptions = {}): NginxSite {
  const publicUrl = checkedPublicUrl(config);
  const single = gatewayUpstream(config);
  const replicas = options.replicas;
  const warnings = replicas ? [] : single.warnings;
  // With replicas, MCP requests go where their session lives; everything else to any replica.
  const upstream = replicas ? `http://${ANY_REPLICA}` : single.upstream;
  const mcpUpstream = replicas ? `http://${CLUSTER_UPSTREAM}` : single.upstream;
  const host = publicUrl.hostname;
  const port = publicUrl.port === '' ? 443 : Number(publicUrl.port);
  const cert = nginxPath(options.cert ?? `/etc/letsencrypt/live/${host}/fullchain.pem`);
  const key = nginxPath(options.key ?? `/etc/letsencrypt/live/${host}/privkey.pem`);
  const placeholders = options.cert === undefined || options.key === undefined;
  const withApps = Object.values(config.servers).some((server) => server.app !== undefined);
  const proxy = (extra: readonly string[]) => proxyDirectives(upstream, extra);
  const streaming = [
    'proxy_buffering off;',
    'proxy_cache off;',
    `proxy_read_timeout ${PROXY_TIMEOUT};`,
    `proxy_send_timeout ${PROXY_TIMEOUT};`,
  ];

  const lines: string[] = [
    '# nginx site for mcp-relay: TLS ends here, the gateway listens behind it on loopback.',
    `# Rendered by \`mcp-relay deploy print nginx\` from relay.yaml (publicUrl ${config.publicUrl}, listen,`,
    '# the servers with an app, auth.oidc, limits.maxBodyBytes); render it again when those change. Install it as',
    '# /etc/nginx/sites-available/mcp-relay, link it into sites-enabled, then `nginx -t && systemctl reload nginx`.',
    '',
  ];
  if (replicas) lines.push(...clusterBlocks(replicas));
  if (withApps) {
    lines.push(
      '# Browser apps open WebSockets: pass the upgrade on (a map of its own name, so no other site clashes).',
      'map $http_upgrade $mcp_relay_connection_upgrade {',
      '    default upgrade;',
      "    ''      close;",
      '}',
      '',
    );
  }
  if (port === 443) {
    lines.push(
      '# Plain HTTP only sends browsers to HTTPS.',
      'server {',
      '    listen 80;',
      '    listen [::]:80;',
      `    server_name ${host};`,
      '    return 301 https://$host$request_uri;',
      '}',
      '',
    );
  }
  lines.push(
    'server {',
    `    listen ${port} ssl;`,
    `    listen [::]:${port} ssl;`,
    `    server_name ${host};`,
    '',
    placeholders
      ? `    # Placeholders: put your certificate here (or render with --cert FILE --key FILE).`
      : '    # The certificate for publicUrl.',
    `    ssl_certificate     ${cert};`,
    `    ssl_certificate_key ${key};`,
    '    ssl_protocols TLSv1.2 TLSv1.3;',
    '',
    '    # The gateway refuses bodies over limits.maxBodyBytes itself; nginx must not refuse them first',
    '    # (its default is 1m).',
    `    client_max_body_size ${nginxSize(config.limits.maxBodyBytes)};`,
    '',
    '    # Every location passes the Host clients used, port included: the gateway refuses (421) a Host that',
    "    # is not publicUrl's, and apps compare it with the browser's Origin. X-Forwarded-* tell apps the rest.",
    '',
    '    # MCP (Streamable HTTP): /mcp/<server>, and /mcp for the only server. Unbuffered, so SSE events',
    "    # flow as the gateway writes them; an idle stream stays open (the gateway's keep-alive comments,",
    '    # every sse.keepAlive, reset the read timeout; the long one covers a keepAlive of 0).',
    '    location /mcp {',
    ...proxyDirectives(mcpUpstream, ['proxy_set_header Connection "";', ...streaming]),
    '    }',
    '',
    '    # MCP over WebSocket: /ws/<server>, and /ws for the only server. Only upgrades are served there;',
    '    # the gateway pings every sse.keepAlive, well inside the read timeout.',
    '    location /ws {',
    ...proxy([
      'proxy_set_header Upgrade $http_upgrade;',
      'proxy_set_header Connection "upgrade";',
      ...streaming,
    ]),
    '    }',
    '',
  );
  if (withApps) {
    lines.push(
      "    # Browser apps and their WebSockets (an app's idle WebSocket is cut after the read timeout unless",
      '    # it pings).',
      '    location /apps/ {',
      ...proxy([
        'proxy_set_header Upgrade $http_upgrade;',
        'proxy_set_header Connection $mcp_relay_connection_upgrade;',
        ...streaming,
      ]),
      '    }',
      '',
      '    # Sign-in links for apps, asked for by authenticated MCP clients.',
      '    location /app-links/ {',
      ...proxy(['proxy_set_header Connection "";']),
      '    }',
      '',
    );
  }
  if (config.auth.oidc !== undefined) {
    lines.push(
      '    # OAuth protected resource metadata (RFC 9728): how MCP clients find the identity provider.',
      `    location ${RESOURCE_METADATA} {`,
      ...proxy(['proxy_set_header Connection "";']),
      '    }',
      '',
    );
  }
  lines.push(
    "    # Health for monitors and load balancers (no secrets; 503 while stopping); kept out of nginx's log.",
    '    location = /healthz {',
    ...proxy(['proxy_set_header Connection "";', 'access_log off;']),
    '    }',
    '',
    '    # The gateway serves nothing else.',
    '    location / {',
    '        return 404;',
    '    }',
    '}',
    '',
  );
  return { text: lines.join('\n'), warnings };
}

/**
 * The cluster's routing: an upstream per replica (the others as backups, so a dead replica's sessions
 * reach a live one, which answers 404 and the client starts a new session), one hashing on the
 * credential for requests with no session, and the map from the session id's replica prefix.
 */
function clusterBlocks(replicas: readonly { id: string; address: string }[]): string[] {
  const lines = [
    '# Several replicas: a session lives on the replica its id names (`<replica>.<random>`: the',
    `# Mcp-Session-Id header, or a legacy SSE POST's ?${LEGACY_SESSION_PARAM}=); requests with none (initialize,`,
    '# 2026-07-28 requests, a legacy SSE GET, a WebSocket upgrade) go by a hash of the credential.',
    '# Render again when replicas come or go (`mcp-relay deploy print nginx` reads them from Redis).',
  ];
  for (const [index, replica] of replicas.entries()) {
    const others = [...replicas.slice(index + 1), ...replicas.slice(0, index)];
    lines.push(
      `upstream mcp_relay_${replica.id} {`,
      `    server ${replica.address};`,
      ...others.map((other) => `    server ${other.address} backup;`),
      ...KEEPALIVE,
      '}',
    );
  }
  lines.push(
    `upstream ${ANY_REPLICA} {`,
    '    hash $http_authorization consistent;',
    ...replicas.map((replica) => `    server ${replica.address};`),
    ...KEEPALIVE,
    '}',
    // A Streamable HTTP request names its session in the header, a legacy SSE POST in its query; a
    // request has one or the other, so their concatenation starts with the replica's prefix.
    `map "$http_mcp_session_id$arg_${LEGACY_SESSION_PARAM}" ${CLUSTER_UPSTREAM} {`,
    `    default ${ANY_REPLICA};`,
    ...replicas.map((replica) => `    "~^${replica.id}\\." mcp_relay_${replica.id};`),
    '}',
    '',
  );
  return lines;
}

/** The directives every location has, then `extra`, indented for a location block. */
function proxyDirectives(upstream: string, extra: readonly string[]): string[] {
  return [
    `proxy_pass ${upstream};`,
    'proxy_http_version 1.1;',
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    'proxy_set_header X-Forwarded-Host $http_host;',
    ...extra,
  ].map((line) => `        ${line}`);
}

/** publicUrl as nginx can serve it: https, at the root of a host. */
function checkedPublicUrl(config: RelayConfig): URL {
  if (config.publicUrl === undefined) {
    throw new RelayError(
      'CONFIG_INVALID',
      'the nginx site is rendered for publicUrl, and the config has none: set publicUrl to the https address users reach (e.g. https://mcp.example.com)',
    );
  }
  const url = new URL(config.publicUrl);
  if (url.protocol !== 'https:') {
    throw new RelayError(
      'CONFIG_INVALID',
      `publicUrl ${config.publicUrl} is not https: nginx terminates TLS for the address users reach`,
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

/** Where nginx reaches the gateway (`proxy_pass`), and what to change when it listens too widely. */
function gatewayUpstream(config: RelayConfig): { upstream: string; warnings: string[] } {
  if (config.listen === false) {
    throw new RelayError(
      'CONFIG_INVALID',
      'the config has listen: false (the SSH socket only): there is no HTTP listener for nginx to proxy to',
    );
  }
  const { host, port, tls } = config.listen;
  if (port === 0) {
    throw new RelayError(
      'CONFIG_INVALID',
      'listen.port is 0 (a free port at each start): give the gateway a fixed port for nginx to proxy to',
    );
  }
  if (tls?.clientCa !== undefined) {
    throw new RelayError(
      'CONFIG_INVALID',
      'listen.tls.clientCa (client certificates): nginx would end the TLS connection, so no certificate reaches the gateway; let clients reach the gateway directly, or pass TCP through with nginx stream',
    );
  }
  const warnings: string[] = [];
  if (!isLoopbackAddress(host)) {
    warnings.push(
      `listen.host is ${host}: behind nginx, bind the gateway to 127.0.0.1 so that only nginx reaches it (and its Host check applies)`,
    );
  }
  if (tls !== undefined) {
    warnings.push(
      'listen.tls: nginx re-encrypts to the gateway without checking its certificate; on loopback, plain HTTP (no listen.tls) is enough',
    );
  }
  // A wildcard address is reached on loopback; an IPv6 literal needs its brackets in a URL.
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host;
  const bracketed = target.includes(':') && !target.startsWith('[') ? `[${target}]` : target;
  return { upstream: `${tls === undefined ? 'http' : 'https'}://${bracketed}:${port}`, warnings };
}

/** A file path as one nginx parameter: quoted when it holds what would end or split it. */
function nginxPath(path: string): string {
  // nginx expands variables even inside quotes, and a control character has no place in a path.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
  if (/[$\u0000-\u001f\u007f]/.test(path))
    throw new RelayError(
      'USAGE',
      `the certificate path ${JSON.stringify(path)} cannot go into an nginx site ($ or a control character)`,
    );
  return /[\s;{}"'\\#]/.test(path) ? `"${path.replace(/["\\]/g, '\\$&')}"` : path;
}

/** A byte count as nginx's size syntax (`4m`, `512k`, or bytes). */
function nginxSize(bytes: number): string {
  if (bytes % 1_048_576 === 0) return `${bytes / 1_048_576}m`;
  if (bytes % 1_024 === 0) return `${bytes / 1_024}k`;
  return String(bytes);
}
