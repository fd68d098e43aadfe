// `mcp-relay backends restart <server> [--user U]`: a graceful restart of a server's backends through the
// gateway's admin API (new code picked up, calls in flight finished on the old process), with an admin's
// API key in MCP_RELAY_TOKEN; one line per backend instance, exit 1 when one could not be restarted.

import { defineCommand } from 'citty';
import type { BackendRestart } from '../../gateway/create-gateway.ts';
import { sanitize } from '../../util/sanitize.ts';
import { adminArgs, adminClient } from '../admin-client.ts';
import { ioFrom } from '../io.ts';

const restartCommand = defineCommand({
  meta: {
    name: 'restart',
    description:
      "Restart a server's backends gracefully: a new process takes new calls, calls in flight finish on the old one",
  },
  args: {
    server: { type: 'positional', required: true, description: 'the server name in relay.yaml' },
    user: {
      type: 'string',
      valueHint: 'USER',
      description: "only this user's backends (per-user, per-session)",
    },
    json: { type: 'boolean', default: false, description: 'print the result as JSON' },
    ...adminArgs,
  },
  async run({ args, data }): Promise<number> {
    const io = ioFrom(data);
    const admin = adminClient(io, args);
    const query = args.user === undefined ? '' : `?user=${encodeURIComponent(args.user)}`;
    try {
      const result = (await admin.call(
        `/admin/api/restart/${encodeURIComponent(args.server)}${query}`,
        'POST',
      )) as BackendRestart;
      if (args.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else io.stdout.write(restartText(result));
      return result.instances.some((instance) => instance.status === 'failed') ? 1 : 0;
    } finally {
      await admin.close();
    }
  },
});

export const backendsCommand = defineCommand({
  meta: { name: 'backends', description: "Operate a running gateway's backends" },
  subCommands: { restart: restartCommand },
});

/** One line per instance; what the gateway sent is made one line and bounded before it is printed. */
export function restartText(result: BackendRestart): string {
  const server = sanitize(result.server, 64);
  if (result.instances.length === 0)
    return `${server}: no backend running; the next session starts one with the new code.\n`;
  const lines = result.instances.map((instance) => {
    const who = instance.user === undefined ? 'shared' : `user ${sanitize(instance.user, 64)}`;
    if (instance.status === 'restarted')
      return `${server} (${who}): restarted, pid ${instance.oldPid ?? '?'} → ${instance.newPid ?? '?'}; switched in ${instance.switchMs} ms, ${instance.inFlight} call(s) finished on the old process in ${instance.drainMs} ms${instance.unfinished > 0 ? `, ${instance.unfinished} cut at the drain bound` : ''}`;
    if (instance.status === 'failed') {
      const stderr = instance.stderr.map((line) => `    ${sanitize(line, 200)}`).join('\n');
      return `${server} (${who}): FAILED, the old process goes on serving: ${sanitize(instance.reason, 300)}${stderr ? `\n${stderr}` : ''}`;
    }
    return `${server} (${who}): skipped: ${sanitize(instance.reason, 200)}`;
  });
  return `${lines.join('\n')}\n`;
}
