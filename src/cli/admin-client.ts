// What the CLI's admin commands (`status`, `backends restart`) share: where the gateway is (--url, else
// its relay.yaml), the admin's API key from MCP_RELAY_TOKEN, a CA for its certificate, and one JSON call
// to the admin API with errors in the user's terms.

import { readFileSync } from 'node:fs';
import type { ArgsDef } from 'citty';
import { Agent, fetch, type Response } from 'undici';
import { loadConfigFile } from '../config/load.ts';
import { DEFAULT_TOKEN_ENV } from '../connect/token-env.ts';
import { errorText, RelayError } from '../errors.ts';
import { type CliIo, pathIn } from './io.ts';

export const adminArgs = {
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
  ca: {
    type: 'string',
    valueHint: 'FILE',
    description: "a CA certificate (PEM) for the gateway's TLS certificate",
  },
} satisfies ArgsDef;

export interface AdminClient {
  call(path: string, method: 'GET' | 'POST'): Promise<unknown>;
  close(): Promise<void>;
}

/** The admin API of the gateway `args` name, called with the admin's key from MCP_RELAY_TOKEN. */
export function adminClient(
  io: CliIo,
  args: { url?: string | undefined; config?: string | undefined; ca?: string | undefined },
): AdminClient {
  const base = gatewayUrl(io, args.url, args.config);
  const token = io.env[DEFAULT_TOKEN_ENV];
  if (token === undefined || token === '')
    throw new RelayError(
      'USAGE',
      `set ${DEFAULT_TOKEN_ENV} to the API key of a user in one of the gateway's admin.groups`,
    );
  const dispatcher =
    args.ca === undefined ? undefined : new Agent({ connect: { ca: readFileSync(pathIn(io, args.ca)) } });
  return {
    call: (path, method) => call(base, path, token, method, dispatcher),
    close: async () => {
      await dispatcher?.close();
    },
  };
}

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
    // undici's own fetch: its Agent (the --ca) is not one the fetch built into Node accepts.
    response = await fetch(target, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      ...(dispatcher ? { dispatcher } : {}),
    });
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
