// The start check (gateway/startup-check.ts) for people: the per-server report `serve --check` prints,
// and the log lines a normal start writes for a server that failed it.

import type { StartupCheck } from '../gateway/startup-check.ts';
import { failureLines } from '../gateway/startup-check.ts';
import type { Logger } from '../log.ts';

/** One line per server (ok or FAIL, then why), the warnings, and a verdict. */
export function formatCheckReport(check: StartupCheck, configName: string): string {
  const lines = [`mcp-relay serve --check: ${configName}`];
  if (check.error !== undefined) lines.push(`  FAIL  ${check.error}`);
  const width = Math.max(0, ...check.servers.map((server) => server.server.length));
  for (const server of check.servers) {
    const name = server.server.padEnd(width);
    if (server.ok) {
      const how = server.probe?.message ?? 'command and script found (not started: --check-timeout 0)';
      lines.push(`  ok    ${name}  ${how}`);
      for (const problem of server.problems)
        lines.push(`        ${' '.repeat(width)}  ${problem.level}: ${problem.message}`);
      continue;
    }
    const [first, ...rest] = failureLines(server);
    lines.push(`  FAIL  ${name}  ${first ?? 'failed'}`);
    for (const line of rest) lines.push(`        ${' '.repeat(width)}  ${line}`);
  }
  for (const warning of check.warnings) lines.push(`warning: ${warning}`);
  const failed = check.servers.filter((server) => !server.ok).length;
  if (check.error !== undefined) lines.push('the config cannot be served');
  else if (failed > 0) lines.push(`${failed} of ${check.servers.length} servers failed the check`);
  else lines.push(`all ${check.servers.length} servers passed`);
  return `${lines.join('\n')}\n`;
}

/** At a normal start, for the terminal or journal: each failed server, why, and its stderr tail. */
export function formatStartFailures(check: StartupCheck): string {
  const lines: string[] = [];
  if (check.error !== undefined) lines.push(`mcp-relay: ${check.error}`);
  for (const server of check.servers.filter((entry) => !entry.ok)) {
    const [first, ...rest] = failureLines(server);
    lines.push(`mcp-relay: server "${server.server}" failed its start check: ${first ?? 'failed'}`);
    for (const line of rest) lines.push(`  ${line}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** At a normal start: each failed server and each warning logged, so the admin learns before a user. */
export function logCheckFailures(check: StartupCheck, log: Logger): string[] {
  for (const warning of check.warnings) log.warn(warning);
  const failed = check.servers.filter((server) => !server.ok);
  for (const server of failed) {
    log.error(
      {
        server: server.server,
        problems: [
          ...server.problems.map((problem) => problem.message),
          ...(server.probe ? [server.probe.message] : []),
        ],
        stderr: server.probe?.stderr ?? [],
      },
      'server failed its start check; the gateway serves the other servers and tries this one again at its next request',
    );
  }
  return failed.map((server) => server.server);
}
