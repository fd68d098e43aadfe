// Starts and tracks the backend processes of every configured server, and stops them all on shutdown.

import { createServer } from 'node:net';
import type { ServerConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { backendEnv } from './env.ts';
import { BackendProcess } from './process.ts';

export interface BackendOwner {
  server: string;
  user: string;
  session?: string;
}

export interface PooledBackend {
  process: BackendProcess;
  owner: BackendOwner;
  /** The port of the backend's browser app, when the server config names `app.portEnv`. */
  appPort: number | undefined;
}

export class BackendPool {
  readonly #servers: Readonly<Record<string, ServerConfig>>;
  readonly #log: Logger;
  readonly #parentEnv: NodeJS.ProcessEnv;
  readonly #running = new Set<PooledBackend>();

  constructor(
    servers: Readonly<Record<string, ServerConfig>>,
    log: Logger,
    parentEnv: NodeJS.ProcessEnv = process.env,
  ) {
    this.#servers = servers;
    this.#log = log;
    this.#parentEnv = parentEnv;
  }

  get size(): number {
    return this.#running.size;
  }

  /** Backends of one server, for health reporting. */
  countFor(server: string): number {
    let count = 0;
    for (const backend of this.#running) if (backend.owner.server === server) count++;
    return count;
  }

  /** Spawns a backend for `owner`; the caller wires its messages and exit. */
  async spawn(owner: BackendOwner): Promise<PooledBackend> {
    const config = this.#servers[owner.server];
    if (!config) throw new Error(`unknown server ${owner.server}`);
    const appPort = config.app ? await freePort() : undefined;
    const relay: Record<string, string> = { MCP_RELAY_USER: owner.user, MCP_RELAY_SERVER: owner.server };
    if (owner.session) relay.MCP_RELAY_SESSION = owner.session;
    if (config.app && appPort !== undefined) relay[config.app.portEnv] = String(appPort);
    const process = new BackendProcess(
      {
        server: owner.server,
        command: config.command,
        args: config.args,
        cwd: config.cwd ?? '.',
        env: backendEnv({
          parent: this.#parentEnv,
          passthrough: config.envPassthrough,
          configured: config.env,
          relay,
        }),
      },
      this.#log.child({ user: owner.user }),
    );
    const pooled: PooledBackend = { process, owner, appPort };
    this.#running.add(pooled);
    return pooled;
  }

  /** Stops one backend and forgets it. */
  async release(backend: PooledBackend): Promise<void> {
    this.#running.delete(backend);
    await backend.process.stop();
  }

  /** Stops every backend (gateway shutdown). */
  async stopAll(): Promise<void> {
    const all = [...this.#running];
    this.#running.clear();
    await Promise.all(all.map((backend) => backend.process.stop()));
  }
}

/** Asks the OS for a free loopback port. Another process could take it before the backend binds; rare and retried by restarts. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
