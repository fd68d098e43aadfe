// `node bench/scaling.ts`: what several replicas on one Redis do on this machine, for docs/scaling.md.
// 1, 2 and 3 `serve` processes (dist/) with one `every-replica` shared server (the bench backend), driven
// by the lean driver spread over the replicas; calls/s, and the Redis commands per call on the hot path
// (INFO commandstats around the run) without and with a requestsPerMinute limit; the RSS of a replica
// with its sessions and of a backend. Needs redis-server (Debian's) and `npm run build`.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamableConnector } from './drivers/streamable.ts';
import type { BenchSession } from './drivers/types.ts';
import { descendants, freePort, rssBytes, startProcess, stopProcess, waitForPort } from './processes.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BACKEND = join(ROOT, 'bench/backend.mjs');
const SESSIONS_PER_REPLICA = 20;
const WINDOW_MS = 6_000;

async function redisCalls(port: number): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
      if (data.includes('\r\n') && data.length >= Number(/^\$(\d+)/.exec(data)?.[1] ?? 0)) {
        socket.destroy();
        resolve(data);
      }
    });
    socket.on('error', reject);
    socket.write('INFO commandstats\r\n');
  });
  return [...text.matchAll(/calls=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
}

async function run(replicas: number, redisPort: number, limited: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-scaling-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  for (let index = 1; index <= replicas; index++) {
    const port = await freePort();
    ports.push(port);
    const config = {
      listen: { host: '127.0.0.1', port },
      logLevel: 'warn',
      limits: { sessionsPerUser: 1_000 },
      cluster: {
        replica: `r${index}`,
        redis: `redis://127.0.0.1:${redisPort}`,
        keyPrefix: `scale${replicas}${limited ? 'l' : ''}:`,
        secret: 'a-cluster-secret-of-at-least-32-chars!',
        peer: { listen: `127.0.0.1:${await freePort()}` },
      },
      servers: {
        bench: {
          command: process.execPath,
          args: [BACKEND],
          isolation: 'shared',
          placement: 'every-replica',
          ...(limited ? { requestsPerMinute: 10_000_000 } : {}),
        },
      },
    };
    writeFileSync(join(dir, `r${index}.yaml`), JSON.stringify(config));
    children.push(
      startProcess(process.execPath, [
        join(ROOT, 'bin/mcp-relay.js'),
        'serve',
        '--config',
        join(dir, `r${index}.yaml`),
      ]),
    );
    await waitForPort(port, children.at(-1) as ChildProcess);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const connectors = ports.map((port) => streamableConnector(`http://127.0.0.1:${port}/mcp/bench`, 'lean'));
  const sessions: BenchSession[] = [];
  for (const connector of connectors)
    for (let index = 0; index < SESSIONS_PER_REPLICA; index++)
      sessions.push(await connector.open({ hold: false }));
  // Warm up, then the measured window.
  const drive = async (until: number) => {
    let calls = 0;
    await Promise.all(
      sessions.map(async (session, index) => {
        while (Date.now() < until) {
          await session.echo(`s${index}-${calls}`);
          calls++;
        }
      }),
    );
    return calls;
  };
  await drive(Date.now() + 1_000);
  const before = await redisCalls(redisPort);
  const started = Date.now();
  const calls = await drive(started + WINDOW_MS);
  const elapsed = Date.now() - started;
  const redisPerCall = ((await redisCalls(redisPort)) - before) / calls;
  const rss = children.map((child) => rssBytes(child.pid as number));
  const backendRss = children
    .flatMap((child) => descendants(child.pid as number))
    .map((pid) => rssBytes(pid));
  for (const session of sessions) await session.close();
  for (const connector of connectors) await connector.close();
  for (const child of children) await stopProcess(child);
  rmSync(dir, { recursive: true, force: true });
  return {
    replicas,
    limited,
    callsPerSecond: Math.round((calls / elapsed) * 1_000),
    redisPerCall: Math.round(redisPerCall * 1_000) / 1_000,
    replicaRssMiB: Math.round(Math.max(...rss) / 1_048_576),
    backendRssMiB: Math.round(Math.max(...backendRss) / 1_048_576),
  };
}

const redisPort = await freePort();
const redis = spawn(
  '/usr/bin/redis-server',
  ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  {
    stdio: 'ignore',
  },
);
try {
  await waitForPort(redisPort, redis);
  const rows = [];
  for (const replicas of [1, 2, 3]) rows.push(await run(replicas, redisPort, false));
  rows.push(await run(2, redisPort, true));
  console.log(
    '| replicas | requestsPerMinute | calls/s | Redis commands per call | replica RSS | backend RSS |',
  );
  console.log('|---:|---|---:|---:|---:|---:|');
  for (const row of rows)
    console.log(
      `| ${row.replicas} | ${row.limited ? 'set' : '—'} | ${row.callsPerSecond} | ${row.redisPerCall} | ${row.replicaRssMiB} MiB | ${row.backendRssMiB} MiB |`,
    );
} finally {
  redis.kill('SIGKILL');
}
