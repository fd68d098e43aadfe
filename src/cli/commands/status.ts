// `mcp-relay status`: what a gateway runs now (who is connected, calls by user, backends, refusals),
// read from its /admin/api/status with an admin's API key from MCP_RELAY_TOKEN; `--open` asks for a
// single-use sign-in link instead and opens the admin page in the browser.

import { readFileSync } from 'node:fs';
import { defineCommand } from 'citty';
import { Agent } from 'undici';
import type { StatusReport } from '../../admin/status.ts';
import { loadConfigFile } from '../../config/load.ts';
import { openBrowser } from '../../connect/oauth/browser.ts';
import { DEFAULT_TOKEN_ENV } from '../../connect/token-env.ts';
import { errorText, RelayError } from '../../errors.ts';
import { type CliIo, ioFrom, pathIn } from '../io.ts';
import { statusText } from '../status-text.ts';

export const statusCommand = defineCommand({
  meta: {
    name: 'status',
    description: `Show what a gateway runs now (sessions, calls by user, backends, refusals), with an admin API key in ${DEFAULT_TOKEN_ENV}`,
  },
  args: {
    url: {
      type: 'string',
      valueHint: 'URL',
      description: 'the gateway (default: from --config, else http://127.0.0.1:8787)',
    },
    config: {
      type: 'string',
      valueHint: 'FILE',
      description: "the gateway's relay.yaml, to find its address",
    },
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
    ca: {
      type: 'string',
      valueHint: 'FILE',
      description: "a CA certificate (PEM) for the gateway's TLS certificate",
    },
  },
  async run({ args, data }): Promise<number> {
    const io = ioFrom(data);
    const base = gatewayUrl(io, args.url, args.config);
    const token = io.env[DEFAULT_TOKEN_ENV];
    if (token === undefined || token === '')
      throw new RelayError(
        'USAGE',
        `set ${DEFAULT_TOKEN_ENV} to the API key of a user in one of the gateway's admin.groups`,
      );
    const dispatcher =
      args.ca === undefined ? undefined : new Agent({ connect: { ca: readFileSync(pathIn(io, args.ca)) } });
    try {
      if (args.open) {
        const { url } = (await call(base, '/admin/link', token, 'POST', dispatcher)) as { url: string };
        io.stderr.write(`Admin page (the link works once, for 5 minutes): ${url}\n`);
        openBrowser(url, args.browser ?? io.env.MCP_RELAY_BROWSER, {
          debug() {},
          info() {},
          warn: (message) => io.stderr.write(`${message}\n`),
          error: (message) => io.stderr.write(`${message}\n`),
        });
        return 0;
      }
      const status = (await call(base, '/admin/api/status', token, 'GET', dispatcher)) as StatusReport;
      io.stdout.write(args.json ? `${JSON.stringify(status, null, 2)}\n` : statusText(status));
      return 0;
    } finally {
      await dispatcher?.close();
    }
  },
});

/** --url, else the config's publicUrl or listening address, else the default listen address. */
function gatewayUrl(io: CliIo, url: string | undefined, configPath: string | undefined): URL {
  if (url !== undefined) {
    try {
      return new URL(url);
    } catch {
      throw new RelayError('USAGE', `--url "${url}" is not a URL`);
    }
  }
  if (configPath === undefined) return new URL('http://127.0.0.1:8787');
  const { config } = loadConfigFile(pathIn(io, configPath), io.env);
  if (config.publicUrl !== undefined) return new URL(config.publicUrl);
  if (config.listen === false)
    throw new RelayError('USAGE', 'the gateway listens on no TCP port (listen: false); nothing to ask');
  const { host, port, tls } = config.listen;
  // A gateway on every address is reached here on loopback.
  const reachable =
    host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return new URL(`${tls ? 'https' : 'http'}://${reachable}:${port}`);
}

async function call(
  base: URL,
  path: string,
  token: string,
  method: 'GET' | 'POST',
  dispatcher: Agent | undefined,
): Promise<unknown> {
  const target = new URL(path, base);
  let response: Response;
  try {
    response = await fetch(target, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      ...(dispatcher ? { dispatcher } : {}),
    } as RequestInit);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    throw new RelayError('USAGE', `cannot reach ${target.origin}: ${errorText(cause ?? error)}`);
  }
  const text = await response.text();
  if (!response.ok) {
    const message = messageOf(text);
    const hint =
      response.status === 404
        ? ' (is the admin section configured? /admin/ exists only with admin.groups)'
        : response.status === 403
          ? ` (the key's user is in none of admin.groups)`
          : '';
    throw new RelayError(
      'USAGE',
      `${target.pathname}: HTTP ${response.status}${message ? `: ${message}` : ''}${hint}`,
    );
  }
  return JSON.parse(text) as unknown;
}

function messageOf(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string };
    const message = typeof body.error === 'string' ? body.error : body.error?.message;
    return typeof message === 'string' ? message.slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}
