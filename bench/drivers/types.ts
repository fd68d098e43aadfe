// What every client driver offers the load generator: sessions that call the backend's `echo` tool.
// Drivers differ only in how they speak to a target (the official SDK, lean node:http, fetch, raw stdio).

/** How a target is reached. */
export type TargetRef =
  | { transport: 'streamable'; url: string }
  /** The same endpoint spoken as MCP 2026-07-28: no session, each request carries its `_meta` envelope. */
  | { transport: 'stateless'; url: string }
  | { transport: 'sse'; url: string }
  | { transport: 'websocket'; url: string }
  | { transport: 'stdio'; command: string; args: string[] };

export type DriverName = 'sdk' | 'lean' | 'fetch';

export interface SessionOptions {
  /** Keep a server→client stream open, as a real client does (the GET stream; the SSE transport always has one). */
  hold: boolean;
}

export interface BenchSession {
  /** Calls `echo` with `text` and resolves with the text of the reply; rejects when the call failed. */
  echo(text: string): Promise<string>;
  /** Ends the session (DELETE, closing the stream, or ending the process). Never rejects. */
  close(): Promise<void>;
}

export interface Connector {
  /** Opens a session: initialize, notifications/initialized (and the stream when `hold`). */
  open(options: SessionOptions): Promise<BenchSession>;
  /** Backend processes this driver started itself (direct stdio), for the CPU and RSS figures. */
  pids(): number[];
  /** Releases sockets and processes. Never rejects. */
  close(): Promise<void>;
}

export const CLIENT_INFO = { name: 'mcp-relay-bench', version: '1.0.0' };
export const PROTOCOL_VERSION = '2025-06-18';
export const MODERN_PROTOCOL_VERSION = '2026-07-28';

/** The text of the first content item of a tools/call result, or an error describing what came instead. */
export function echoText(result: unknown): string {
  const content = (result as { content?: Array<{ text?: unknown }> } | undefined)?.content;
  const text = content?.[0]?.text;
  if (typeof text !== 'string')
    throw new Error(`unexpected tools/call result: ${JSON.stringify(result).slice(0, 200)}`);
  if ((result as { isError?: boolean }).isError) throw new Error(`tool error: ${text.slice(0, 200)}`);
  return text;
}
