// What /healthz (and /health) reports: ok, or degraded naming the unhealthy (crash-looping) servers, or stopping;
// built here from the pool and the sessions, so the HTTP row only writes it.

import type { BackendPool } from '../mux/pool.ts';
import type { SessionManager } from '../sessions/manager.ts';
import { VERSION } from '../version.ts';

export interface HealthReport {
  status: 200 | 503;
  body: Record<string, unknown>;
  headers: Readonly<Record<string, string>>;
}

/**
 * 200 with `ok`, or `degraded` naming the unhealthy servers: the gateway still serves the others, so a
 * load balancer must keep it (every replica runs the same broken server) while a monitor alerts. 503
 * `stopping` once shutdown began, so a load balancer takes it out of rotation.
 */
export function healthReport(
  pool: Pick<BackendPool, 'stats' | 'size'>,
  sessions: Pick<SessionManager, 'size'>,
  startedAt: number,
  stopping: boolean,
  /** Open WebSockets to browser apps per server, when the gateway serves apps. */
  appSockets?: () => Record<string, number>,
  /** MCP sessions open over WebSocket (`/ws/<server>`), a part of `sessions`. */
  mcpWebSockets?: () => number,
  /** With several replicas: this one's id, the members alive, and requests forwarded both ways. */
  cluster?: () => Record<string, unknown>,
): HealthReport {
  const servers = pool.stats();
  const unhealthy = Object.keys(servers).filter((name) => servers[name]?.healthy === false);
  const status = stopping ? 'stopping' : unhealthy.length > 0 ? 'degraded' : 'ok';
  return {
    status: stopping ? 503 : 200,
    body: {
      status,
      ...(unhealthy.length > 0 ? { unhealthy } : {}),
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      sessions: sessions.size,
      // The names the original brief's /health used: open MCP sessions, and seconds up.
      activeConnections: sessions.size,
      uptime: Math.round((Date.now() - startedAt) / 1000),
      backends: pool.size,
      servers,
      ...(appSockets ? { appWebSockets: appSockets() } : {}),
      ...(mcpWebSockets ? { webSocketSessions: mcpWebSockets() } : {}),
      ...(cluster ? { cluster: cluster() } : {}),
    },
    headers: stopping ? { connection: 'close' } : {},
  };
}
