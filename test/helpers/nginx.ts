// Test helper: a real nginx terminating TLS on 127.0.0.1 and proxying everything to a plain-HTTP
// gateway, configured as the README's snippet says (WebSocket upgrade, X-Forwarded-*, no buffering).

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/backends/launcher.ts';

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

/** The `location /` block the README shows, proxying to `upstream` (http://host:port). */
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
  if (!existsSync(NGINX))
    throw new Error(`${NGINX} is missing (Debian package nginx; scripts/test.sh installs it)`);
  mkdirSync(join(dir, 'temp'), { recursive: true });
  const listen = port ?? (await freePort());
  const errorLog = join(dir, 'error.log');
  const temp = (name: string) => `${name}_temp_path ${join(dir, 'temp', name)};`;
  const config = join(dir, 'nginx.conf');
  writeFileSync(
    config,
    `
${process.getuid?.() === 0 ? `user ${userInfo().username};` : ''}
worker_processes 1;
error_log ${errorLog} info;
events { worker_connections 256; }
http {
  access_log ${join(dir, 'access.log')};
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  server {
    listen 127.0.0.1:${listen} ssl;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ${proxyLocation(upstream)}
  }
}
`,
  );
  const pidFile = join(dir, 'nginx.pid');
  const child: ChildProcess = spawn(
    NGINX,
    ['-p', dir, '-c', config, '-e', errorLog, '-g', `daemon off; pid ${pidFile};`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const log = () => `${stderr}${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''}`;
  const deadline = Date.now() + 10_000;
  while (!(await accepts(listen))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start: ${log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const pid = child.pid as number;
  return {
    port: listen,
    url: `https://127.0.0.1:${listen}`,
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
