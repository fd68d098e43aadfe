// Test helper: a real nginx terminating TLS on 127.0.0.1 in front of a plain-HTTP gateway, run as a
// plain process in a folder of its own (config, logs, temp files): with one `location /` (WebSocket
// upgrade, X-Forwarded-*, no buffering), or with a whole site as `mcp-relay deploy print nginx` renders.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export const NGINX = '/usr/sbin/nginx';

export interface TestNginx {
  port: number;
  /** https://127.0.0.1:<port> */
  url: string;
  pid: number;
  /** nginx's error log so far. */
  log(): string;
  close(): Promise<void>;
}

/** One `location /` proxying everything to `upstream` (http://host:port), the minimal setup. */
export function proxyLocation(upstream: string): string {
  return `
    location / {
      proxy_pass ${upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }`;
}

/**
 * Starts nginx in `dir` (its prefix, config, logs and temp files) on `port` (a free one by default)
 * with the server certificate `cert`/`key`, in front of `upstream`. Fails with what nginx said when it
 * does not come up.
 */
export async function startNginx(
  dir: string,
  upstream: string,
  tls: { cert: string; key: string },
  port?: number,
): Promise<TestNginx> {
  const listen = port ?? (await freePort());
  const site = `
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  server {
    listen 127.0.0.1:${listen} ssl;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ${proxyLocation(upstream)}
  }`;
  return startNginxSite(dir, site, listen);
}

/**
 * The main nginx.conf for running unprivileged in `dir` (logs, pid and temp files there), with `site`
 * (server blocks, maps: what sites-enabled holds) inside its http block. Returns the file's path.
 */
export function writeNginxConfig(dir: string, site: string): string {
  mkdirSync(join(dir, 'temp'), { recursive: true });
  const temp = (name: string) => `${name}_temp_path ${join(dir, 'temp', name)};`;
  const config = join(dir, 'nginx.conf');
  writeFileSync(
    config,
    `
${process.getuid?.() === 0 ? `user ${userInfo().username};` : ''}
worker_processes 1;
error_log ${join(dir, 'error.log')} info;
pid ${join(dir, 'nginx.pid')};
events { worker_connections 256; }
http {
  access_log ${join(dir, 'access.log')};
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
${site}
}
`,
  );
  return config;
}

/** `nginx -t` on `site` inside writeNginxConfig's main config: its exit code and what it said. */
export function testNginxSite(dir: string, site: string): { code: number | null; output: string } {
  requireNginx();
  const config = writeNginxConfig(dir, site);
  const run = spawnSync(NGINX, ['-t', '-p', dir, '-c', config, '-e', join(dir, 'error.log')], {
    encoding: 'utf8',
  });
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

/**
 * A site `mcp-relay deploy print nginx` rendered, as a test can run it: on 127.0.0.1:`port` only (no
 * IPv6, no port-80 redirect server); everything else as rendered.
 */
export function siteOnLoopback(site: string, port: number): string {
  const changed = site
    .replace(/^ {4}listen \[::\]:\d+ ssl;\n/m, '')
    .replace(/^ {4}listen (\d+) ssl;$/m, (_line, rendered: string) => {
      if (Number(rendered) !== port)
        throw new Error(`the site listens on ${rendered}, not publicUrl's ${port}`);
      return `    listen 127.0.0.1:${port} ssl;`;
    });
  if (/listen 80;/.test(changed)) throw new Error('a redirect server on port 80: publicUrl is not on 443');
  return changed;
}

/** Starts nginx with `site` (see writeNginxConfig), which listens on 127.0.0.1:`port`. */
export async function startNginxSite(dir: string, site: string, port: number): Promise<TestNginx> {
  requireNginx();
  const config = writeNginxConfig(dir, site);
  const errorLog = join(dir, 'error.log');
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', config, '-e', errorLog, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const log = () => `${stderr}${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''}`;
  const deadline = Date.now() + 10_000;
  // nginx writes its pid file once it holds its sockets: a port that accepts before then may be
  // another process's, and nginx is still retrying its bind.
  const pidFile = join(dir, 'nginx.pid');
  while (!existsSync(pidFile) || !(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start: ${log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const pid = child.pid as number;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    pid,
    log,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // TERM is nginx's fast shutdown: open WebSockets do not hold it up as QUIT's graceful one would.
      process.kill(pid, 'SIGTERM');
      await exited;
    },
  };
}

function requireNginx(): void {
  if (!existsSync(NGINX))
    throw new Error(`${NGINX} is missing (Debian package nginx; scripts/test.sh installs it)`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
