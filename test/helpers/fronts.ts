// The gateway's client-facing fronts as client factories, so a behavioural test can run once per front:
// the same user, server and calls through Streamable HTTP and through the legacy HTTP+SSE transport.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { connectClient } from './gateway.ts';

export interface Front {
  name: string;
  /** An SDK client connected to the server whose Streamable HTTP URL is `url` (`…/mcp/<server>`). */
  connect(url: string, key: string | undefined): Promise<Client>;
}

/**
 * An official SDK client over the legacy HTTP+SSE transport (2024-11-05) at `url`, with a bearer key;
 * `fetch` (the GET's and the POSTs') may send its requests elsewhere.
 */
export async function connectLegacyClient(
  url: string,
  key: string | undefined,
  fetch?: FetchLike,
): Promise<Client> {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const transport = new SSEClientTransport(new URL(url), {
    requestInit: { headers },
    ...(fetch ? { fetch } : {}),
  });
  const client = new Client({ name: 'legacy-test-client', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

export const FRONTS: readonly Front[] = [
  { name: 'Streamable HTTP', connect: async (url, key) => (await connectClient(url, key)).client },
  { name: 'legacy HTTP+SSE', connect: (url, key) => connectLegacyClient(`${url}/sse`, key) },
];
