// `mcp-relay deploy print nginx|haproxy|systemd` in process: the shipped deploy/ files are the rendering of the
// sample config (one source, no drift), what each config key changes in the site and the unit, the
// configs nginx cannot front (refused with the reason), and the PM2 and Docker files' stop timeouts.
// test/deploy.test.ts runs the output through nginx -t, systemd-analyze and a live nginx; test/haproxy.test.ts
// through haproxy -c and a live HAProxy in front of three replicas.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderedDeployFiles } from '../scripts/render-deploy.ts';
import { thisMachineLauncher } from '../src/claude/launcher.ts';
import { buildConfig } from '../src/config/load.ts';
import { renderHaproxyCfg } from '../src/deploy/haproxy-cfg.ts';
import { LEGACY_SESSION_PARAM, renderNginxSite } from '../src/deploy/nginx-site.ts';
import { execWord, renderSystemdUnit } from '../src/deploy/systemd-unit.ts';
import { SESSION_PARAM } from '../src/transports/legacy-sse/paths.ts';
import { runCliInProcess } from './helpers/cli.ts';

const DEPLOY = new URL('../deploy/', import.meta.url);
const deployFile = (name: string) => readFileSync(new URL(name, DEPLOY), 'utf8');

/** A config as relay.yaml would give it, with the fields the renderers read. */
function config(input: Record<string, unknown> = {}) {
  return buildConfig(
    {
      listen: { host: '127.0.0.1', port: 8787 },
      publicUrl: 'https://mcp.example.com',
      servers: { a: { command: 'node', args: ['/opt/a.js'] } },
      auth: { apiKeys: { file: '/etc/mcp-relay/keys.yaml' } },
      ...input,
    },
    '/etc/mcp-relay',
  );
}

const site = (input: Record<string, unknown> = {}, options = {}) => renderNginxSite(config(input), options);
const unit = (input: Record<string, unknown> = {}, exec = ['/usr/bin/node', '/usr/lib/mcp-relay.js']) =>
  renderSystemdUnit(config(input), { configPath: '/etc/mcp-relay/relay.yaml', exec });

/** The directives of the `location <path>` block of a rendered site, one string each. */
function location(text: string, path: string): string[] {
  const start = text.indexOf(`    location ${path} {\n`);
  assert.notEqual(start, -1, `location ${path} in\n${text}`);
  const body = text.slice(start, text.indexOf('\n    }\n', start));
  return body
    .split('\n')
    .slice(1)
    .map((line) => line.trim());
}

describe('deploy/: the shipped files', () => {
  it('nginx-site.conf and mcp-relay.service are the rendering of deploy/relay.yaml (node scripts/render-deploy.ts)', () => {
    for (const [name, text] of Object.entries(renderedDeployFiles())) {
      assert.equal(deployFile(name), text, `deploy/${name} differs: run node scripts/render-deploy.ts`);
    }
  });

  it('the PM2 file runs `serve` in one process and waits out the drain before killing it', () => {
    const ecosystem = createRequire(import.meta.url)(new URL('ecosystem.config.cjs', DEPLOY).pathname) as {
      apps: Array<Record<string, unknown>>;
    };
    const [app] = ecosystem.apps;
    assert.deepEqual(app?.args, ['serve', '--config', '/etc/mcp-relay/relay.yaml']);
    assert.equal(app?.instances, 1);
    assert.equal(app?.exec_mode, 'fork');
    // The gateway ends within shutdownTimeout (default) + 2 s; a shorter kill_timeout cuts calls in flight.
    assert.ok((app?.kill_timeout as number) > config().shutdownTimeout + 2_000);
    assert.equal(app?.treekill, false, 'the servers outlive the drain');
  });

  it('the Dockerfile builds on the Node major package.json asks for and runs `serve` as an account of its own', () => {
    const dockerfile = deployFile('Dockerfile');
    const engines = (
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
        engines: { node: string };
      }
    ).engines.node;
    const major = /(\d+)/.exec(engines)?.[1];
    const bases = [...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((match) => match[1]);
    assert.deepEqual(bases, [major, major]);
    assert.match(dockerfile, /^USER mcp-relay$/m);
    assert.match(dockerfile, /^CMD \["mcp-relay", "serve", "--config", "\/etc\/mcp-relay\/relay\.yaml"\]$/m);
  });
});

describe('renderNginxSite', () => {
  it("serves publicUrl's host with TLS, sends HTTP to HTTPS on 443, and proxies each route to the gateway", () => {
    const { text, warnings } = site();
    assert.deepEqual(warnings, []);
    assert.match(text, /^ {4}listen 443 ssl;$/m);
    assert.match(text, /^ {4}server_name mcp\.example\.com;$/m);
    assert.match(text, /^ {4}return 301 https:\/\/\$host\$request_uri;$/m);
    assert.match(text, /ssl_certificate {5}\/etc\/letsencrypt\/live\/mcp\.example\.com\/fullchain\.pem;/);
    assert.match(text, /# Placeholders: put your certificate here/);
    const mcp = location(text, '/mcp');
    for (const directive of [
      'proxy_pass http://127.0.0.1:8787;',
      'proxy_http_version 1.1;',
      'proxy_set_header Host $http_host;',
      'proxy_set_header X-Forwarded-Proto $scheme;',
      'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
      'proxy_buffering off;',
      'proxy_read_timeout 1h;',
      'proxy_send_timeout 1h;',
    ]) {
      assert.ok(mcp.includes(directive), directive);
    }
    assert.ok(location(text, '= /healthz').includes('proxy_pass http://127.0.0.1:8787;'));
    assert.deepEqual(location(text, '/'), ['return 404;']);
    // Without apps or OAuth, their routes and the upgrade map are not there.
    assert.doesNotMatch(text, /\/apps\/|\/app-links\/|well-known|\$mcp_relay_connection_upgrade/);
    // MCP over WebSocket is always served: the upgrade is passed on.
    const ws = location(text, '/ws');
    assert.ok(ws.includes('proxy_set_header Upgrade $http_upgrade;'));
    assert.ok(ws.includes('proxy_set_header Connection "upgrade";'));
    assert.ok(ws.includes('proxy_read_timeout 1h;'));
    assert.match(text, /client_max_body_size 4m;/);
  });

  it('adds the app routes with the WebSocket upgrade, the OAuth metadata, and the given certificate', () => {
    const { text } = site(
      {
        servers: { a: { command: 'node', app: { portEnv: 'APP_PORT' } } },
        auth: { oidc: { issuer: 'https://login.example.com' } },
        limits: { maxBodyBytes: '512KiB' },
      },
      { cert: '/etc/ssl/relay.pem', key: '/etc/ssl/relay.key' },
    );
    const apps = location(text, '/apps/');
    assert.ok(apps.includes('proxy_set_header Upgrade $http_upgrade;'));
    assert.ok(apps.includes('proxy_set_header Connection $mcp_relay_connection_upgrade;'));
    assert.ok(apps.includes('proxy_buffering off;'));
    assert.match(text, /^map \$http_upgrade \$mcp_relay_connection_upgrade \{$/m);
    assert.ok(location(text, '/app-links/').includes('proxy_pass http://127.0.0.1:8787;'));
    assert.ok(
      location(text, '/.well-known/oauth-protected-resource').includes('proxy_pass http://127.0.0.1:8787;'),
    );
    assert.match(
      text,
      /ssl_certificate {5}\/etc\/ssl\/relay\.pem;\n {4}ssl_certificate_key \/etc\/ssl\/relay\.key;/,
    );
    assert.doesNotMatch(text, /Placeholders/);
    const spaced = site({}, { cert: '/etc/ssl/my relay;x.pem', key: '/etc/ssl/k.pem' }).text;
    assert.match(spaced, /ssl_certificate {5}"\/etc\/ssl\/my relay;x\.pem";/);
    assert.throws(() => site({}, { cert: '/etc/$host.pem', key: '/k' }), /cannot go into an nginx site/);
    assert.match(text, /client_max_body_size 512k;/);
  });

  it("listens on publicUrl's port (no redirect server off 443) and reaches wildcard and IPv6 listeners on loopback", () => {
    const other = site({ publicUrl: 'https://relay.example:8443', listen: { host: '0.0.0.0', port: 9000 } });
    assert.match(other.text, /^ {4}listen 8443 ssl;$/m);
    assert.doesNotMatch(other.text, /listen 80;|return 301/);
    assert.ok(location(other.text, '/mcp').includes('proxy_pass http://127.0.0.1:9000;'));
    assert.deepEqual(other.warnings, [
      'listen.host is 0.0.0.0: behind nginx, bind the gateway to 127.0.0.1 so that only nginx reaches it (and its Host check applies)',
    ]);
    const v6 = site({ listen: { host: '::1', port: 8787, tls: { cert: 'c.pem', key: 'k.pem' } } });
    assert.ok(location(v6.text, '/mcp').includes('proxy_pass https://[::1]:8787;'));
    assert.match(v6.warnings.join('\n'), /listen\.tls: nginx re-encrypts/);
  });

  it('refuses configs nginx cannot front, saying which key and why', () => {
    const refusals: Array<[Record<string, unknown>, RegExp]> = [
      [{ publicUrl: undefined }, /the config has none: set publicUrl to the https address/],
      [{ publicUrl: 'http://mcp.example.com' }, /is not https: nginx terminates TLS/],
      [{ publicUrl: 'https://example.com/relay' }, /has a path: the gateway serves \/mcp/],
      [{ listen: { port: 0 } }, /listen\.port is 0/],
      [
        { listen: { port: 8787, tls: { cert: 'c', key: 'k', clientCa: 'ca' } }, auth: {} },
        /listen\.tls\.clientCa \(client certificates\): nginx would end the TLS connection/,
      ],
    ];
    for (const [input, message] of refusals) {
      assert.throws(
        () => site(input),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'CONFIG_INVALID');
          assert.match(error.message, message);
          return true;
        },
      );
    }
    const socketOnly = config({ listen: false, ssh: { mode: 'attached', socket: '/run/mcp-relay/s' } });
    assert.throws(() => renderNginxSite(socketOnly), /listen: false \(the SSH socket only\)/);
  });
});

const REPLICAS = [
  { id: 'r1', address: '10.0.0.5:8787' },
  { id: 'r2', address: '10.0.0.6:8787' },
  { id: 'r10', address: '[fd00::7]:8787' },
];
const haproxy = (input: Record<string, unknown> = {}, pem?: string) =>
  renderHaproxyCfg(config(input), { pem, replicas: REPLICAS });

describe('renderNginxSite for a cluster', () => {
  it('routes a session by the replica its id names, in the header or a legacy POST’s query; the rest by credential', () => {
    // The query argument the generators route on is the one the legacy front names its sessions in.
    assert.equal(LEGACY_SESSION_PARAM, SESSION_PARAM);
    const { text } = site({}, { replicas: REPLICAS });
    const map = text.slice(text.indexOf('map "'), text.indexOf('}', text.indexOf('map "')) + 1);
    assert.equal(
      map,
      [
        'map "$http_mcp_session_id$arg_sessionId" $mcp_relay_upstream {',
        '    default mcp_relay_any;',
        '    "~^r1\\." mcp_relay_r1;',
        '    "~^r2\\." mcp_relay_r2;',
        '    "~^r10\\." mcp_relay_r10;',
        '}',
      ].join('\n'),
    );
    assert.match(text, /upstream mcp_relay_any \{\n {4}hash \$http_authorization consistent;/);
    assert.match(
      text,
      /upstream mcp_relay_r1 \{\n {4}server 10\.0\.0\.5:8787;\n {4}server 10\.0\.0\.6:8787 backup;/,
    );
    // MCP (the legacy paths below it too) by the map; WebSocket upgrades, which name no session, by credential.
    assert.ok(location(text, '/mcp').includes('proxy_pass http://$mcp_relay_upstream;'));
    assert.ok(location(text, '/ws').includes('proxy_pass http://mcp_relay_any;'));
  });
});

/** The lines of a rendered haproxy.cfg's `<kind> <name>` section, trimmed. */
function section(text: string, header: string): string[] {
  const start = text.indexOf(`\n${header}\n`);
  assert.notEqual(start, -1, `${header} in\n${text}`);
  const end = text.indexOf('\n\n', start + 1);
  return text
    .slice(start + header.length + 2, end === -1 ? undefined : end)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('renderHaproxyCfg', () => {
  it('routes a session to the replica its id names, the rest by a consistent hash of the credential', () => {
    const { text, warnings } = haproxy();
    assert.deepEqual(warnings, []);
    assert.deepEqual(section(text, 'backend mcp_relay'), [
      'balance hash req.hdr(authorization)',
      'hash-type consistent',
      // The dot ends the prefix: r1's rule does not take r10's sessions.
      'use-server r1 if { req.hdr(mcp-session-id) -m beg r1. }',
      'use-server r2 if { req.hdr(mcp-session-id) -m beg r2. }',
      'use-server r10 if { req.hdr(mcp-session-id) -m beg r10. }',
      // A legacy SSE POST's session is in its query.
      'use-server r1 if { url_param(sessionId) -m beg r1. }',
      'use-server r2 if { url_param(sessionId) -m beg r2. }',
      'use-server r10 if { url_param(sessionId) -m beg r10. }',
      'option httpchk',
      'http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host mcp.example.com',
      'http-check expect status 200',
      'retries 2',
      'retry-on conn-failure',
      'option redispatch',
      'server r1 10.0.0.5:8787 check inter 1s fall 2 rise 2',
      'server r2 10.0.0.6:8787 check inter 1s fall 2 rise 2',
      'server r10 ipv6@fd00::7:8787 check inter 1s fall 2 rise 2',
    ]);
  });

  it("ends TLS on publicUrl's port, keeps SSE streams open an hour, and lets idle clients go before 5 s", () => {
    const { text } = haproxy({}, '/etc/haproxy/certs/mcp.pem');
    const defaults = section(text, 'defaults');
    for (const line of [
      'mode http',
      'timeout client 1h',
      'timeout server 1h',
      'timeout tunnel 1h',
      'timeout http-keep-alive 10s',
      'option http-server-close',
    ])
      assert.ok(defaults.includes(line), `${line} in\n${defaults.join('\n')}`);
    const front = section(text, 'frontend mcp_relay_https');
    assert.equal(front[0], 'bind :::443 v4v6 ssl crt /etc/haproxy/certs/mcp.pem');
    assert.deepEqual(section(text, 'frontend mcp_relay_http'), [
      'bind :::80 v4v6',
      'http-request redirect scheme https code 301',
    ]);
    const offPort = haproxy({ publicUrl: 'https://mcp.example.com:8443' }).text;
    assert.equal(
      section(offPort, 'frontend mcp_relay_https')[0],
      'bind :::8443 v4v6 ssl crt /etc/haproxy/certs/mcp.example.com.pem',
    );
    assert.ok(!offPort.includes('frontend mcp_relay_http\n'), 'no redirect frontend off 443');
    assert.match(offPort, /hdr Host mcp\.example\.com:8443\n/);
    assert.equal(
      section(haproxy({}, '/etc/my certs/a.pem').text, 'frontend mcp_relay_https')[0],
      "bind :::443 v4v6 ssl crt '/etc/my certs/a.pem'",
    );
  });

  it('passes on the routes the nginx site has, and answers everything else 404', () => {
    const routes = (text: string) =>
      section(text, 'frontend mcp_relay_https').filter((line) => line.startsWith('acl relay_route'));
    assert.deepEqual(routes(haproxy().text), [
      'acl relay_route path /mcp /ws /healthz',
      'acl relay_route path_beg /mcp/ /ws/',
    ]);
    const full = haproxy({
      servers: { a: { command: 'node', app: { portEnv: 'P' } } },
      auth: { oidc: { issuer: 'https://id.example.com', audience: 'mcp' } },
    }).text;
    assert.deepEqual(routes(full), [
      'acl relay_route path /mcp /ws /healthz',
      'acl relay_route path_beg /mcp/ /ws/',
      'acl relay_route path_beg /apps/ /app-links/',
      'acl relay_route path_beg /.well-known/oauth-protected-resource',
    ]);
    assert.ok(
      section(full, 'frontend mcp_relay_https').includes('http-request return status 404 unless relay_route'),
    );
  });

  it('refuses what HAProxy cannot front, saying which key and why', () => {
    assert.throws(() => haproxy({ publicUrl: 'http://mcp.example.com' }), /is not https/);
    assert.throws(() => haproxy({ publicUrl: 'https://mcp.example.com/relay' }), /has a path/);
    assert.throws(
      () => haproxy({ listen: { port: 8787, tls: { cert: '/c.pem', key: '/k.pem', clientCa: '/ca.pem' } } }),
      /listen\.tls\.clientCa/,
    );
    assert.throws(() => haproxy({}, "/etc/it's.pem"), /cannot go into haproxy\.cfg/);
    assert.throws(() => renderHaproxyCfg(config(), { replicas: [] }), /no replica of this cluster is alive/);
    const tls = haproxy({ listen: { port: 8787, tls: { cert: '/c.pem', key: '/k.pem' } } });
    assert.match(tls.text, /server r1 10\.0\.0\.5:8787 ssl verify none check/);
    assert.match(tls.warnings[0] ?? '', /^listen\.tls: HAProxy re-encrypts/);
  });
});

describe('renderSystemdUnit', () => {
  it('runs serve as its own account, reloads with SIGHUP, and stops after the drain', () => {
    const { text, warnings } = unit({ shutdownTimeout: '30s' });
    assert.deepEqual(warnings, []);
    for (const line of [
      'User=mcp-relay',
      'ExecStart=/usr/bin/node /usr/lib/mcp-relay.js serve --config /etc/mcp-relay/relay.yaml',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'EnvironmentFile=-/etc/mcp-relay/environment',
      'KillMode=mixed',
      'TimeoutStopSec=35s',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'StateDirectory=mcp-relay',
      'LogsDirectory=mcp-relay',
      'CapabilityBoundingSet=',
      'UMask=0077',
    ]) {
      assert.ok(text.split('\n').includes(line), `${line} in\n${text}`);
    }
    assert.doesNotMatch(text, /^(ReadWritePaths|AmbientCapabilities|RuntimeDirectory)=/m);
  });

  it('leaves the folders the gateway writes writable, and what it reads under /home readable', () => {
    const { text } = unit({
      audit: { file: '/srv/audit/audit.jsonl' },
      ssh: { mode: 'attached', socket: '/run/mcp-relay/gateway.sock' },
      servers: { a: { command: '/home/ops/servers/a' } },
    });
    assert.match(text, /^ReadWritePaths=-\/srv\/audit$/m);
    assert.match(text, /^RuntimeDirectory=mcp-relay$/m, 'the socket in /run/mcp-relay');
    assert.match(text, /^ProtectHome=read-only$/m);
    const logs = unit({ audit: { file: '/var/log/mcp-relay/audit.jsonl' } }).text;
    assert.doesNotMatch(logs, /^ReadWritePaths=/m, 'LogsDirectory already covers it');
  });

  it('runs as root when servers switch accounts, binds a low port with a capability otherwise', () => {
    const root = unit({ servers: { a: { command: 'node', user: 'alice' } } }).text;
    assert.doesNotMatch(root, /^User=/m);
    assert.match(root, /the gateway runs as root to start servers under those accounts/);
    const low = unit({ listen: { host: '0.0.0.0', port: 443 } }).text;
    assert.match(
      low,
      /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE$/m,
    );
    assert.doesNotMatch(root, /^CapabilityBoundingSet=/m);
  });

  it('quotes and escapes ExecStart words, and warns when node is in a home folder', () => {
    assert.equal(execWord('/opt/my relay/50%$x'), '"/opt/my relay/50%%$$x"');
    const home = unit({}, ['/home/me/.node22/bin/node', '/home/me/relay/bin/mcp-relay.js']);
    assert.match(
      home.warnings.join('\n'),
      /is under a home folder, which the mcp-relay account cannot normally read/,
    );
  });
});

describe('mcp-relay deploy print', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-deploy-'));
    writeFileSync(
      join(dir, 'relay.yaml'),
      'listen: { host: 0.0.0.0, port: 8787 }\npublicUrl: https://relay.example\nservers:\n  a: { command: node }\nauth: { apiKeys: { file: keys.yaml } }\n',
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the nginx site for the config on stdout, notes on stderr', async () => {
    const printed = await runCliInProcess(
      ['deploy', 'print', 'nginx', '--cert', 'tls/c.pem', '--key', 'tls/k.pem'],
      { cwd: dir },
    );
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /server_name relay\.example;/);
    assert.ok(printed.stdout.includes(`ssl_certificate     ${join(dir, 'tls/c.pem')};`));
    assert.match(
      printed.stderr,
      /^note: listen\.host is 0\.0\.0\.0: behind nginx, bind the gateway to 127\.0\.0\.1/,
    );
  });

  it("prints the systemd unit with this machine's node and mcp-relay and the config's absolute path", async () => {
    const printed = await runCliInProcess(['deploy', 'print', 'systemd', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(printed.code, 0, printed.stderr);
    const { nodePath, binPath } = thisMachineLauncher();
    assert.ok(
      printed.stdout.includes(
        `\nExecStart=${nodePath} ${binPath} serve --config ${join(dir, 'relay.yaml')}\n`,
      ),
      printed.stdout,
    );
  });

  it('prints haproxy.cfg only for a cluster, and takes one PEM', async () => {
    const single = await runCliInProcess(['deploy', 'print', 'haproxy'], { cwd: dir });
    assert.equal(single.code, 2);
    assert.match(
      single.stderr,
      /no cluster section: for one gateway use `deploy print nginx`, or add a cluster section/,
    );
    const withKey = await runCliInProcess(
      ['deploy', 'print', 'haproxy', '--cert', 'c.pem', '--key', 'k.pem'],
      {
        cwd: dir,
      },
    );
    assert.equal(withKey.code, 2);
    assert.match(withKey.stderr, /one PEM file: cat fullchain\.pem privkey\.pem > mcp\.pem/);
  });

  it('refuses an unknown target, a lone --cert, and a config it cannot front, with exit 2', async () => {
    const unknown = await runCliInProcess(['deploy', 'print', 'apache'], { cwd: dir });
    assert.deepEqual(unknown, {
      code: 2,
      stdout: '',
      stderr: 'mcp-relay: deploy print takes nginx, haproxy or systemd, not "apache"\n',
    });
    const lone = await runCliInProcess(['deploy', 'print', 'nginx', '--cert', 'c.pem'], { cwd: dir });
    assert.equal(lone.code, 2);
    assert.match(lone.stderr, /--cert and --key go together/);
    writeFileSync(
      join(dir, 'plain.yaml'),
      'publicUrl: http://relay.example\nservers:\n  a: { command: node }\n',
    );
    const plain = await runCliInProcess(['deploy', 'print', 'nginx', '--config', 'plain.yaml'], { cwd: dir });
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /publicUrl http:\/\/relay\.example is not https/);
    const missing = await runCliInProcess(['deploy', 'print', 'nginx', '--config', 'none.yaml'], {
      cwd: dir,
    });
    assert.equal(missing.code, 2);
  });
});
