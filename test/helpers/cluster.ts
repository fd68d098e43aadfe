// What the cluster tests start: a replica's config (loopback, API keys from a file, the cluster section
// with its id, Redis, the shared secret, a key prefix and a peer port of its own, and what a test adds),
// and three replicas on a real redis-server with three users' keys.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKey } from '../../src/auth/key-admin.ts';
import { buildConfig } from '../../src/config/load.ts';
import { createGateway, type Gateway } from '../../src/gateway/create-gateway.ts';
import { silentLogger } from '../../src/log.ts';
import { freePort } from './ports.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

export const CLUSTER_SECRET = 'a-cluster-secret-of-at-least-32-chars!';

export async function replicaConfig(
  replica: string,
  options: {
    redis: string;
    keyPrefix: string;
    keysFile: string;
    servers: Record<string, unknown>;
    peerPort?: number;
  },
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    auth: { apiKeys: { file: options.keysFile } },
    cluster: {
      replica,
      redis: options.redis,
      secret: CLUSTER_SECRET,
      keyPrefix: options.keyPrefix,
      peer: { listen: `127.0.0.1:${options.peerPort ?? (await freePort())}` },
    },
    servers: options.servers,
    ...extra,
  };
}

/** Redis, a folder with the users' API keys, and three replicas r1, r2, r3 started on them. */
export interface TestCluster<R extends { gateway: Gateway }> {
  redis: TestRedis;
  dir: string;
  keysFile: string;
  /** Each user's API key. */
  keys: Record<string, string>;
  replicas: R[];
  close(): Promise<void>;
}

export async function startCluster<R extends { gateway: Gateway }>(
  name: string,
  startReplica: (id: string, redis: string, keysFile: string, dir: string) => Promise<R>,
  users: readonly string[] = ['alice', 'bob', 'carol'],
): Promise<TestCluster<R>> {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), `mcp-relay-${name}-`));
  const keysFile = join(dir, 'keys.yaml');
  const keys: Record<string, string> = {};
  for (const user of users) keys[user] = (await createKey(keysFile, { user, groups: [] })).key;
  const replicas: R[] = [];
  for (const id of ['r1', 'r2', 'r3']) replicas.push(await startReplica(id, redis.url, keysFile, dir));
  return {
    redis,
    dir,
    keysFile,
    keys,
    replicas,
    async close() {
      await Promise.all(replicas.map((replica) => replica.gateway.close()));
      await redis.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A replica started by startMeteredReplica: its peer port and its loopback Prometheus listener. */
export interface MeteredReplica {
  id: string;
  gateway: Gateway;
  url: string;
  peerPort: number;
  metricsPort: number;
}

/** Replica `id` (replicaConfig of `options` and `extra`) with a metrics listener, started in `dir`. */
export async function startMeteredReplica(
  id: string,
  options: Omit<Parameters<typeof replicaConfig>[1], 'peerPort'>,
  extra: Record<string, unknown>,
  dir: string,
): Promise<MeteredReplica> {
  const peerPort = await freePort();
  const metricsPort = await freePort();
  const config = buildConfig(
    await replicaConfig(
      id,
      { ...options, peerPort },
      { ...extra, admin: { groups: ['admins'], metrics: { listen: `127.0.0.1:${metricsPort}` } } },
    ),
    dir,
  );
  const gateway = createGateway({ config, log: silentLogger });
  await gateway.listen();
  return { id, gateway, url: gateway.url, peerPort, metricsPort };
}

/** A replica's forwards sent or received, as its metrics listener shows them. */
export function forwardsOf(
  replica: MeteredReplica | undefined,
  direction: 'sent' | 'received',
): Promise<number> {
  return metricOf(replica, `mcp_relay_cluster_forwards_total{direction="${direction}"}`);
}

/** One series' value (`name{labels}` as written in the exposition) on a replica's metrics listener; NaN when absent. */
export async function metricOf(replica: MeteredReplica | undefined, series: string): Promise<number> {
  const scraped = await (await fetch(`http://127.0.0.1:${replica?.metricsPort}/metrics`)).text();
  const line = scraped.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1) ?? Number.NaN);
}
