// What the benchmark measures: the floors (the backend over plain stdio, a bare node:http server),
// mcp-relay in each isolation mode, and the peers users would otherwise pick. Each HTTP target runs as
// a process of its own on 127.0.0.1, so its CPU and the RSS of its whole tree can be read from /proc.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TargetRef } from './drivers/types.ts';
import { captureOutput, freePort, startProcess, stopProcess, waitForPort } from './processes.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BACKEND = join(ROOT, 'bench/backend.mjs');
const NODE = process.execPath;
const START_TIMEOUT_MS = 30_000;

export type TargetGroup = 'floor' | 'relay' | 'peer';

export interface TargetSpec {
  id: string;
  label: string;
  group: TargetGroup;
  transport: TargetRef['transport'];
  /** One backend process per session: memory and concurrency levels are capped for these. */
  processPerSession: boolean;
  start(): Promise<RunningTarget>;
}

export interface RunningTarget {
  ref: TargetRef;
  /** The target's own process (the gateway); undefined for direct stdio, where the driver runs the backend. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** Waits until `child` listens on `port` and wraps it; stops it when it never does. */
/**
 * The target once its port is open and, with `ready`, once its output says it is ready: `serve` opens
 * its port before its start check (a backend launched once and stopped), which the memory phase must
 * not count as the idle gateway's.
 */
async function listening(
  child: ChildProcess,
  port: number,
  ref: TargetRef,
  cleanup?: () => void,
  ready?: RegExp,
) {
  const output = captureOutput(child);
  const stop = async () => {
    await stopProcess(child);
    cleanup?.();
  };
  try {
    await waitForPort(port, child, START_TIMEOUT_MS);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (ready !== undefined && !ready.test(output())) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`not ready: ${ready}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${output()}`);
  }
  return { ref, pid: child.pid, stop } satisfies RunningTarget;
}

const directStdio: TargetSpec = {
  id: 'stdio',
  label: 'backend over stdio (floor)',
  group: 'floor',
  transport: 'stdio',
  processPerSession: false,
  async start() {
    return {
      ref: { transport: 'stdio', command: NODE, args: [BACKEND] },
      pid: undefined,
      stop: async () => {},
    };
  },
};

const bareHttp: TargetSpec = {
  id: 'bare-http',
  label: 'bare node:http (floor)',
  group: 'floor',
  transport: 'streamable',
  processPerSession: false,
  async start() {
    const port = await freePort();
    const child = startProcess(NODE, [join(ROOT, 'bench/floor-http.mjs'), String(port)]);
    return listening(child, port, { transport: 'streamable', url: `http://127.0.0.1:${port}/mcp` });
  },
};

/** How often the `-metrics` targets are scraped while measured: a Prometheus with an eager 5 s interval. */
const SCRAPE_INTERVAL_MS = 5_000;

/**
 * mcp-relay from dist/ (`npm run build`), one server `bench` in the given isolation mode, no auth on
 * loopback. With `metrics`: the same with an `admin` section (metrics and the admin page's activity
 * subscribed to every request) and its loopback metrics listener scraped every 5 s, so metrics on and off
 * are measured side by side in one run.
 */
export function relayTarget(
  isolation: 'shared' | 'per-user' | 'per-session',
  extraArgs: string[] = [],
  options: { metrics?: boolean; front?: 'streamable' | 'websocket' | 'stateless' } = {},
): TargetSpec {
  const metrics = options.metrics === true;
  const front = options.front ?? 'streamable';
  const ws = front === 'websocket';
  const suffix = ws ? '-ws' : front === 'stateless' ? '-2026' : '';
  const over = ws ? ' over WebSocket' : front === 'stateless' ? ', 2026-07-28 clients (stateless)' : '';
  return {
    id: `relay-${isolation}${suffix}${metrics ? '-metrics' : ''}`,
    label: `mcp-relay ${isolation}${over}${metrics ? ', metrics on' : ''}`,
    group: 'relay',
    transport: front,
    processPerSession: isolation === 'per-session',
    async start() {
      const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-bench-'));
      const port = await freePort();
      const metricsPort = metrics ? await freePort() : undefined;
      // JSON is YAML. Limits are raised so the benchmark's own session counts are never refused.
      const config = {
        listen: { host: '127.0.0.1', port },
        ...(metricsPort === undefined
          ? {}
          : { admin: { groups: ['admins'], metrics: { listen: `127.0.0.1:${metricsPort}` } } }),
        logLevel: 'warn',
        limits: { sessionsPerUser: 5_000, maxBackends: 2_000 },
        servers: {
          bench: { command: NODE, args: [BACKEND], isolation, maxInstances: 2_000, idleTimeout: '1h' },
        },
      };
      const configFile = join(dir, 'relay.yaml');
      writeFileSync(configFile, JSON.stringify(config, null, 2));
      const child = startProcess(
        NODE,
        [...extraArgs, join(ROOT, 'bin/mcp-relay.js'), 'serve', '--config', configFile],
        {
          cwd: dir,
        },
      );
      const scraper =
        metricsPort === undefined ? undefined : scrapeEvery(`http://127.0.0.1:${metricsPort}/metrics`);
      const ref: TargetRef = ws
        ? { transport: 'websocket', url: `ws://127.0.0.1:${port}/ws/bench` }
        : { transport: front, url: `http://127.0.0.1:${port}/mcp/bench` };
      return listening(
        child,
        port,
        ref,
        () => {
          clearInterval(scraper);
          rmSync(dir, { recursive: true, force: true });
        },
        /mcp-relay gateway at /,
      );
    },
  };
}

/** Scrapes `url` every SCRAPE_INTERVAL_MS, reading the whole answer; a failed scrape is only skipped. */
function scrapeEvery(url: string): NodeJS.Timeout {
  const timer = setInterval(() => {
    fetch(url)
      .then((response) => response.text())
      .catch(() => undefined);
  }, SCRAPE_INTERVAL_MS);
  timer.unref();
  return timer;
}

/** The shell command the peers start the backend with (both run it through a shell or split it themselves). */
const BACKEND_COMMAND = `${NODE} ${BACKEND}`;

const supergatewayStreamable: TargetSpec = {
  id: 'supergateway-streamable',
  label: 'supergateway Streamable HTTP (stateful)',
  group: 'peer',
  transport: 'streamable',
  processPerSession: true,
  async start() {
    const port = await freePort();
    const child = startProcess(NODE, [
      join(ROOT, 'node_modules/supergateway/dist/index.js'),
      ...['--stdio', BACKEND_COMMAND, '--outputTransport', 'streamableHttp', '--stateful'],
      ...['--port', String(port), '--logLevel', 'none'],
    ]);
    return listening(child, port, { transport: 'streamable', url: `http://127.0.0.1:${port}/mcp` });
  },
};

const supergatewaySse: TargetSpec = {
  id: 'supergateway-sse',
  label: 'supergateway SSE',
  group: 'peer',
  transport: 'sse',
  processPerSession: false,
  async start() {
    const port = await freePort();
    const child = startProcess(NODE, [
      join(ROOT, 'node_modules/supergateway/dist/index.js'),
      ...['--stdio', BACKEND_COMMAND, '--outputTransport', 'sse'],
      ...['--port', String(port), '--logLevel', 'none'],
    ]);
    return listening(child, port, { transport: 'sse', url: `http://127.0.0.1:${port}/sse` });
  },
};

const supergatewayWs: TargetSpec = {
  id: 'supergateway-ws',
  label: 'supergateway WebSocket',
  group: 'peer',
  transport: 'websocket',
  // One backend process for every client (it rewrites ids per connection).
  processPerSession: false,
  async start() {
    const port = await freePort();
    const child = startProcess(NODE, [
      join(ROOT, 'node_modules/supergateway/dist/index.js'),
      ...['--stdio', BACKEND_COMMAND, '--outputTransport', 'ws'],
      ...['--port', String(port), '--logLevel', 'none'],
    ]);
    return listening(child, port, { transport: 'websocket', url: `ws://127.0.0.1:${port}/message` });
  },
};

function mcpProxyTarget(transport: 'streamable' | 'sse'): TargetSpec {
  return {
    id: transport === 'streamable' ? 'mcp-proxy-streamable' : 'mcp-proxy-sse',
    label: transport === 'streamable' ? 'mcp-proxy Streamable HTTP' : 'mcp-proxy SSE',
    group: 'peer',
    transport,
    processPerSession: false,
    async start() {
      const port = await freePort();
      const child = startProcess(NODE, [
        join(ROOT, 'node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs'),
        ...[
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--server',
          transport === 'streamable' ? 'stream' : 'sse',
        ],
        ...['--', NODE, BACKEND],
      ]);
      const path = transport === 'streamable' ? '/mcp' : '/sse';
      return listening(child, port, { transport, url: `http://127.0.0.1:${port}${path}` });
    },
  };
}

export const ALL_TARGETS: readonly TargetSpec[] = [
  directStdio,
  bareHttp,
  relayTarget('shared'),
  relayTarget('shared', [], { metrics: true }),
  relayTarget('per-user'),
  relayTarget('per-session'),
  relayTarget('shared', [], { front: 'websocket' }),
  relayTarget('shared', [], { front: 'stateless' }),
  supergatewayStreamable,
  supergatewaySse,
  supergatewayWs,
  mcpProxyTarget('streamable'),
  mcpProxyTarget('sse'),
];

/** Versions of what is measured, for the report. */
export function versions(): Record<string, string> {
  const version = (path: string) =>
    (JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as { version: string }).version;
  return {
    node: process.version,
    'mcp-relay': version('package.json'),
    supergateway: version('node_modules/supergateway/package.json'),
    'mcp-proxy': version('node_modules/mcp-proxy/package.json'),
    '@modelcontextprotocol/sdk': version('node_modules/@modelcontextprotocol/sdk/package.json'),
  };
}
