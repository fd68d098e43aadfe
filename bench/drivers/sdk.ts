// The official SDK client as users run it: `Client` over the Streamable HTTP, legacy SSE, WebSocket or
// stdio client transport; for 2026-07-28 (stateless) targets the split SDK v2 client pinned to that
// revision. Over stdio, `shared` makes every session a worker on one client and one process.

import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernHttpTransport,
} from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import {
  type BenchSession,
  CLIENT_INFO,
  type Connector,
  echoText,
  MODERN_PROTOCOL_VERSION,
  type TargetRef,
} from './types.ts';

const CALL_TIMEOUT_MS = 30_000;

interface SdkSession extends BenchSession {
  pid: number | undefined;
}

/** The split SDK v2 client pinned to 2026-07-28: stateless requests, no session. */
async function openModernSession(url: string): Promise<SdkSession> {
  const client = new ModernClient(CLIENT_INFO, {
    versionNegotiation: { mode: { pin: MODERN_PROTOCOL_VERSION } },
  });
  await client.connect(new ModernHttpTransport(new URL(url)), { timeout: CALL_TIMEOUT_MS });
  return {
    pid: undefined,
    async echo(text) {
      return echoText(
        await client.callTool({ name: 'echo', arguments: { text } }, { timeout: CALL_TIMEOUT_MS }),
      );
    },
    async close() {
      await client.close().catch(() => {});
    },
  };
}

async function openSdkSession(target: TargetRef): Promise<SdkSession> {
  if (target.transport === 'stateless') return openModernSession(target.url);
  const client = new Client(CLIENT_INFO);
  const transport =
    target.transport === 'streamable'
      ? new StreamableHTTPClientTransport(new URL(target.url))
      : target.transport === 'sse'
        ? new SSEClientTransport(new URL(target.url))
        : target.transport === 'websocket'
          ? // The platform WebSocket (Node 22), subprotocol `mcp`; the bench targets need no Authorization.
            new WebSocketClientTransport(new URL(target.url))
          : new StdioClientTransport({ command: target.command, args: target.args, stderr: 'ignore' });
  await client.connect(transport, { timeout: CALL_TIMEOUT_MS });
  return {
    pid: transport instanceof StdioClientTransport ? (transport.pid ?? undefined) : undefined,
    async echo(text) {
      return echoText(
        await client.callTool({ name: 'echo', arguments: { text } }, undefined, { timeout: CALL_TIMEOUT_MS }),
      );
    },
    async close() {
      if (transport instanceof StreamableHTTPClientTransport)
        await transport.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    },
  };
}

export function sdkConnector(target: TargetRef, shared: boolean): Connector {
  const sessions = new Set<SdkSession>();
  let sharedSession: Promise<SdkSession> | undefined;
  return {
    async open() {
      if (target.transport === 'stdio' && shared) {
        sharedSession ??= openSdkSession(target).then((session) => {
          sessions.add(session);
          return session;
        });
        const session = await sharedSession;
        return { echo: (text) => session.echo(text), close: async () => {} };
      }
      const session = await openSdkSession(target);
      sessions.add(session);
      return {
        echo: (text) => session.echo(text),
        close: async () => {
          sessions.delete(session);
          await session.close();
        },
      };
    },
    pids: () => [...sessions].map((session) => session.pid).filter((pid) => pid !== undefined),
    async close() {
      await Promise.all([...sessions].map((session) => session.close()));
      sessions.clear();
      sharedSession = undefined;
    },
  };
}
