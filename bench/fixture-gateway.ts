// `mcp-relay serve` (from dist/) on a free loopback port with the test fixture backend as its one
// server, for the scripts that measure one path through the gateway (large results, the bridge, soaks).

import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, stopProcess, waitForPort } from './processes.ts';

const ROOT = join(import.meta.dirname, '..');
const FIXTURE = join(ROOT, 'test/fixtures/stdio-server.mjs');

export interface FixtureGateway {
  /** The server's MCP endpoint, `http://127.0.0.1:<port>/mcp/<server>`. */
  url: string;
  /** The gateway's base URL, `http://127.0.0.1:<port>`. */
  base: string;
  process: ChildProcess;
  /** Stops the gateway by pid and removes its folder. */
  stop(): Promise<void>;
}

export async function startFixtureGateway(
  server: string,
  options: {
    isolation?: string;
    limits?: Record<string, unknown>;
    stdio?: SpawnOptions['stdio'];
    /** The backend's script (default: the test fixture server). */
    script?: string;
    /** The backend has a browser app on APP_PORT, served at /apps/<server>/. */
    app?: boolean;
  } = {},
): Promise<FixtureGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-bench-'));
  const port = await freePort();
  const config = {
    listen: { host: '127.0.0.1', port },
    logLevel: 'warn',
    ...(options.limits ? { limits: options.limits } : {}),
    servers: {
      [server]: {
        command: process.execPath,
        args: [options.script ?? FIXTURE],
        isolation: options.isolation ?? 'shared',
        ...(options.app ? { app: { portEnv: 'APP_PORT' } } : {}),
      },
    },
  };
  writeFileSync(join(dir, 'relay.yaml'), JSON.stringify(config));
  const gateway = startProcess(
    process.execPath,
    [join(ROOT, 'bin/mcp-relay.js'), 'serve', '--config', join(dir, 'relay.yaml')],
    { cwd: dir, ...(options.stdio ? { stdio: options.stdio } : {}) },
  );
  const stop = async () => {
    await stopProcess(gateway);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, gateway);
  } catch (error) {
    await stop();
    throw error;
  }
  const base = `http://127.0.0.1:${port}`;
  return { url: `${base}/mcp/${server}`, base, process: gateway, stop };
}
