// What the admin page and `mcp-relay status` show, as one JSON document: who is connected now, calls
// and errors per user, backends with their process's CPU and memory, recent refusals, and the calls
// per second of the last minutes. Read at each request from the sessions, the pool, /proc and the
// activity subscriber (observe/activity.ts); nothing here is kept between requests.

import type { BackendInfo, ServerStats } from '../mux/pool.ts';
import type { ActivityReport } from '../observe/activity.ts';
import { processUsage } from '../observe/proc-stats.ts';
import type { SessionInfo } from '../sessions/manager.ts';
import { VERSION } from '../version.ts';

export interface StatusSources {
  sessions(): SessionInfo[];
  backends(): BackendInfo[];
  servers(): Record<string, ServerStats>;
  activity(): ActivityReport;
  appSockets: (() => Record<string, number>) | undefined;
  startedAt: number;
}

export interface SessionRow {
  /** The first characters of the session id: enough to tell sessions apart, not to use one. */
  id: string;
  server: string;
  user: string;
  auth: string;
  clientName: string | undefined;
  clientVersion: string | undefined;
  address: string | undefined;
  since: number;
  lastActivity: number;
  inFlight: number;
  requests: number;
}

export interface BackendRow {
  server: string;
  user: string | undefined;
  isolation: string;
  pid: number | undefined;
  state: string;
  healthy: boolean;
  startedAt: number | undefined;
  restarts: number;
  sessions: number;
  /** From /proc (Linux), undefined elsewhere or once the process is gone. */
  cpuSeconds: number | undefined;
  rssBytes: number | undefined;
}

export interface StatusReport extends ActivityReport {
  version: string;
  now: number;
  startedAt: number;
  sessions: SessionRow[];
  backends: BackendRow[];
  servers: Record<string, ServerStats>;
  appWebSockets: Record<string, number> | undefined;
}

export async function statusReport(sources: StatusSources): Promise<StatusReport> {
  const sessions = sources.sessions().map(
    (session): SessionRow => ({
      id: session.id.slice(0, 8),
      server: session.server,
      user: session.user,
      auth: session.auth,
      clientName: session.client.name,
      clientVersion: session.client.version,
      address: session.client.address,
      since: session.since,
      lastActivity: session.lastActivity,
      inFlight: session.inFlight,
      requests: session.requests,
    }),
  );
  sessions.sort(
    (a, b) => a.server.localeCompare(b.server) || a.user.localeCompare(b.user) || a.since - b.since,
  );
  const backends = await Promise.all(
    sources.backends().map(async (backend): Promise<BackendRow> => {
      const usage = backend.pid === undefined ? undefined : await processUsage(backend.pid);
      return { ...backend, cpuSeconds: usage?.cpuSeconds, rssBytes: usage?.rssBytes };
    }),
  );
  backends.sort((a, b) => a.server.localeCompare(b.server) || (a.user ?? '').localeCompare(b.user ?? ''));
  return {
    version: VERSION,
    now: Date.now(),
    startedAt: sources.startedAt,
    sessions,
    backends,
    servers: sources.servers(),
    appWebSockets: sources.appSockets?.(),
    ...sources.activity(),
  };
}
