// Third-party MCP fronts that wrap a stdio server, as users meet them, for the bridge's transports:
// supergateway (legacy SSE by default, or WebSocket), mcp-proxy (legacy SSE and/or Streamable HTTP),
// and server-everything's own HTTP servers. Each runs as a real child process on 127.0.0.1, can be
// killed (SIGKILL, a crash) and started again on the same port.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { eventually } from './wait.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LOOPBACK = fileURLToPath(new URL('../fixtures/loopback-only.mjs', import.meta.url));
const STDIO_SERVER = fileURLToPath(new URL('../fixtures/stdio-server.mjs', import.meta.url));
const SUPERGATEWAY = `${ROOT}node_modules/supergateway/dist/index.js`;
const MCP_PROXY = `${ROOT}node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs`;
const EVERYTHING = `${ROOT}node_modules/@modelcontextprotocol/server-everything/dist/index.js`;

export interface Front {
  /** The URL a user gives `mcp-relay connect`. */
  readonly url: string;
  readonly port: number;
  /** What the front wrote, for failure messages. */
  output(): string;
  /** SIGKILL: the front and its session vanish at once, as in a crash. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after kill). */
  restart(): Promise<void>;
  /** Stops it for good; idempotent. */
  stop(): Promise<void>;
}

import { freePort } from './ports.ts';

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
