// The admin status (status.ts) as terminal text for `mcp-relay status`: a summary line, then who is
// connected, calls by user, backends and recent refusals as aligned tables. Names from clients are made
// one line and bounded (util/sanitize.ts), so a crafted client name cannot move the cursor.

import type { StatusReport } from '../admin/status.ts';
import { sanitize } from '../util/sanitize.ts';
import { alignColumns } from './table.ts';

/** Refusals shown in the terminal; the JSON has all the gateway keeps. */
const REFUSALS_SHOWN = 10;

export function statusText(status: StatusReport): string {
  const { now } = status;
  const unhealthy = Object.keys(status.servers).filter((name) => status.servers[name]?.healthy === false);
  const calls = status.history.calls.slice(-60).reduce((sum, count) => sum + count, 0);
  const lines = [
    `mcp-relay ${status.version}, up ${ago(now - status.startedAt)}: ${status.sessions.length} sessions, ${status.backends.length} backends, ${(calls / 60).toFixed(2)} calls/s over the last minute; ${unhealthy.length === 0 ? 'all servers healthy' : `UNHEALTHY: ${unhealthy.join(', ')}`}`,
    '',
    'Connected now',
    status.sessions.length === 0
      ? '  nobody'
      : indent(
          alignColumns([
            ['USER', 'SERVER', 'CLIENT', 'FROM', 'SINCE', 'REQUESTS', 'IN FLIGHT', 'SESSION'],
            ...status.sessions.map((s) => [
              one(s.user),
              s.server,
              s.clientName === undefined ? '-' : one(`${s.clientName} ${s.clientVersion ?? ''}`.trim()),
              s.address ?? s.auth,
              `${ago(now - s.since)} ago`,
              String(s.requests),
              String(s.inFlight),
              s.id,
            ]),
          ]),
        ),
    '',
    'Calls by user',
    status.users.length === 0
      ? '  no calls yet'
      : indent(
          alignColumns([
            ['USER', 'CALLS', 'ERRORS', 'CALLS/S', 'ERRORS/S', 'LAST CALL'],
            ...status.users.map((u) => [
              one(u.user),
              String(u.calls),
              String(u.errors),
              u.callsPerSecond.toFixed(2),
              u.errorsPerSecond.toFixed(2),
              `${ago(now - u.lastCall)} ago`,
            ]),
          ]),
        ),
    '',
    'Backends',
    status.backends.length === 0
      ? '  none running'
      : indent(
          alignColumns([
            ['SERVER', 'FOR', 'PID', 'STATE', 'HEALTH', 'CPU', 'RSS', 'UPTIME', 'RESTARTS', 'SESSIONS'],
            ...status.backends.map((b) => [
              b.server,
              b.user === undefined ? 'shared' : one(b.user),
              b.pid === undefined ? '-' : String(b.pid),
              b.state,
              b.healthy ? 'healthy' : 'UNHEALTHY',
              b.cpuSeconds === undefined ? '-' : `${b.cpuSeconds.toFixed(2)}s`,
              b.rssBytes === undefined ? '-' : `${(b.rssBytes / 1_048_576).toFixed(1)} MiB`,
              b.startedAt === undefined ? '-' : ago(now - b.startedAt),
              String(b.restarts),
              String(b.sessions),
            ]),
          ]),
        ),
  ];
  if (status.refusals.length > 0) {
    lines.push(
      '',
      'Recent refusals',
      indent(
        alignColumns([
          ['WHEN', 'USER', 'SERVER', 'REQUEST', 'STATUS', 'REASON'],
          ...status.refusals
            .slice(0, REFUSALS_SHOWN)
            .map((r) => [
              `${ago(now - r.at)} ago`,
              one(r.user),
              r.server,
              one(r.name === undefined ? r.method : `${r.method} ${r.name}`),
              r.status === undefined ? '-' : String(r.status),
              one(r.reason),
            ]),
        ]),
      ),
    );
  }
  const failures = Object.entries(status.authFailures);
  if (failures.length > 0)
    lines.push(
      '',
      `Failed sign-ins since start: ${failures.map(([reason, count]) => `${reason} ${count}`).join(', ')}`,
    );
  return `${lines.join('\n')}\n`;
}

function one(text: string): string {
  return sanitize(text, 60);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/** 42s, 5m 3s, 2h 10m, 3d 4h. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
