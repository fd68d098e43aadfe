// The gateway's client-facing fronts as client factories, so a behavioural test can run once per front:
// the same user, server and calls through Streamable HTTP and through the legacy HTTP+SSE transport.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { connectClient } from './gateway.ts';

export interface Front {
  name: string;
  /** An SDK client connected to the server whose Streamable HTTP URL is `url` (`…/mcp/<server>`). */
  connect(url: string, key: string | undefined): Promise<Client>;
}

/** An official SDK client over the legacy HTTP+SSE transport (2024-11-05) at `url`, with a bearer key. */
export async function connectLegacyClient(url: string, key: string | undefined): Promise<Client> {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const transport = new SSEClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: 'legacy-test-client', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

<<<<<<< HEAD
export const FRONTS: readonly Front[] = [
  { name: 'Streamable HTTP', connect: async (url, key) => (await connectClient(url, key)).client },
  { name: 'legacy HTTP+SSE', connect: (url, key) => connectLegacyClient(`${url}/sse`, key) },
];
=======
/** supergateway --stdio <the fixture server>: legacy SSE at /sse (its default), or a WebSocket at /message. */
export function startSupergateway(output: 'sse' | 'ws', port?: number): Promise<Front> {
  const stdio = `${process.execPath} ${STDIO_SERVER}`;
  return startFront(port, (p) => ({
    args: [
      '--import',
      LOOPBACK,
      SUPERGATEWAY,
      '--stdio',
      stdio,
      '--port',
      String(p),
      '--outputTransport',
      output,
      '--logLevel',
      'none',
    ],
    url: output === 'ws' ? `ws://127.0.0.1:${p}/message` : `http://127.0.0.1:${p}/sse`,
  }));
}

/** mcp-proxy around the fixture server: `sse` only (its /sse), or `stream` (Streamable HTTP at /mcp); `extra` flags before the command. */
export function startMcpProxy(server: 'sse' | 'stream', extra: readonly string[] = []): Promise<Front> {
  return startFront(undefined, (p) => ({
    args: [
      MCP_PROXY,
      ...extra,
      '--host',
      '127.0.0.1',
      '--port',
      String(p),
      '--server',
      server,
      '--',
      process.execPath,
      STDIO_SERVER,
    ],
    url: server === 'sse' ? `http://127.0.0.1:${p}/sse` : `http://127.0.0.1:${p}/mcp`,
  }));
}

/** server-everything's own HTTP server: legacy SSE at /sse or Streamable HTTP at /mcp. */
export function startEverything(mode: 'sse' | 'streamableHttp'): Promise<Front> {
  return startFront(undefined, (p) => ({
    args: ['--import', LOOPBACK, EVERYTHING, mode],
    env: { PORT: String(p) },
    url: mode === 'sse' ? `http://127.0.0.1:${p}/sse` : `http://127.0.0.1:${p}/mcp`,
  }));
}

interface Launch {
  args: string[];
  env?: Record<string, string>;
  url: string;
}

async function startFront(fixedPort: number | undefined, launch: (port: number) => Launch): Promise<Front> {
  const port = fixedPort ?? (await freePort());
  const { args, env, url } = launch(port);
  let child: ChildProcess | undefined;
  let text = '';
  const start = async () => {
    const started = spawn(process.execPath, args, {
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      cwd: ROOT,
    });
    child = started;
    started.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    started.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    await eventually(() => started.exitCode !== null || accepts(port), `the front on port ${port} to listen`);
    if (started.exitCode !== null) throw new Error(`the front exited (${started.exitCode}):\n${text}`);
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  return { url, port, output: () => text, kill, restart: start, stop: kill };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
>>>>>>> ec7db31 (test: legacy SSE carries --header on the GET stream and on every POST (mcp-proxy --apiKey), and a refused stream is explained)
