// `mcp-relay status`: what a gateway runs now (who is connected, calls by user, backends, refusals),
// read from its /admin/api/status with an admin's API key from MCP_RELAY_TOKEN; `--open` asks for a
// single-use sign-in link instead and opens the admin page in the browser.

import { defineCommand } from 'citty';
import type { StatusReport } from '../../admin/status.ts';
import { openBrowser } from '../../connect/oauth/browser.ts';
import { DEFAULT_TOKEN_ENV } from '../../connect/token-env.ts';
import { adminArgs, adminClient } from '../admin-client.ts';
import { ioFrom } from '../io.ts';
import { statusText } from '../status-text.ts';

export const statusCommand = defineCommand({
  meta: {
    name: 'status',
    description: `Show what a gateway runs now (sessions, calls by user, backends, refusals), with an admin API key in ${DEFAULT_TOKEN_ENV}`,
  },
  args: {
    ...adminArgs,
    json: { type: 'boolean', default: false, description: 'print the status as JSON' },
    open: {
      type: 'boolean',
      default: false,
      description: 'open the admin page in the browser (a single-use sign-in link)',
    },
    browser: {
      type: 'string',
      valueHint: 'COMMAND',
      description:
        'with --open: the command that opens the link (default: MCP_RELAY_BROWSER, else the system browser; none: only print it)',
    },
  },
  async run({ args, data }): Promise<number> {
    const io = ioFrom(data);
    const admin = adminClient(io, args);
    try {
      if (args.open) {
        const { url } = (await admin.call('/admin/link', 'POST')) as { url: string };
        io.stderr.write(`Admin page (the link works once, for 5 minutes): ${url}\n`);
        openBrowser(url, args.browser ?? io.env.MCP_RELAY_BROWSER, {
          debug() {},
          info() {},
          warn: (message) => io.stderr.write(`${message}\n`),
          error: (message) => io.stderr.write(`${message}\n`),
        });
        return 0;
      }
      const status = (await admin.call('/admin/api/status', 'GET')) as StatusReport;
      io.stdout.write(args.json ? `${JSON.stringify(status, null, 2)}\n` : statusText(status));
      return 0;
    } finally {
      await admin.close();
    }
  },
});
