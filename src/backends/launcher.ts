// Starts backend processes with the environment and app port their config asks for, and tells a
// server with an app where the gateway serves it (APP_PUBLIC_URL).

import { chown, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ServerConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { appBaseUrl } from '../util/app-url.ts';
import { type AccountSystem, type BackendAccount, resolveAccounts, thisSystem } from './account.ts';
import { backendEnv } from './env.ts';
import { commandToRun, type LaunchInputs, launchFingerprint, launchInputs } from './preflight.ts';
import { BackendProcess, type BackendSpec } from './process.ts';

export interface BackendOwner {
  server: string;
  /** The user a per-user or per-session backend serves; undefined for a shared one. */
  user: string | undefined;
  session?: string;
  /**
   * A secret made once per instance of a server with an app, the same at every restart of it
   * (MCP_RELAY_APP_KEY): an app may put it in its paths, so links survive restarts yet stay unguessable.
   */
  appKey?: string;
}

/** Prepares backend processes of the configured servers; their supervisors start and stop them. */
export class BackendLauncher {
  readonly #servers: Readonly<Record<string, ServerConfig>>;
  readonly #log: Logger;
  readonly #parentEnv: NodeJS.ProcessEnv;
  readonly #maxMessageBytes: number | undefined;
  readonly #accounts: ReadonlyMap<string, BackendAccount>;
  readonly #gatewayUrl: (() => string | undefined) | undefined;
  readonly #stateDir: string | undefined;

  /**
   * Throws a config error when a server's `user` or `group` does not exist, or cannot be switched
   * to (the gateway is not root): a gateway refuses to start rather than fail at the first session.
   * `maxMessageBytes`: the longest line a backend may write (limits.maxBackendMessageBytes).
   * `gatewayUrl`: the gateway's base URL (publicUrl, else where it listens), read at each launch; a
   * server with `app` then gets APP_PUBLIC_URL, its instance's address there (util/app-url.ts). Unset
   * (SSH standalone): none.
   * `stateDir`: the gateway's state folder (config `stateDir`); each backend instance then gets a folder
   * of its own below it in MCP_RELAY_STATE_DIR, the same at every restart of that instance.
   */
  constructor(
    servers: Readonly<Record<string, ServerConfig>>,
    log: Logger,
    parentEnv: NodeJS.ProcessEnv = process.env,
    options: {
      maxMessageBytes?: number;
      system?: () => AccountSystem;
      gatewayUrl?: () => string | undefined;
      stateDir?: string | undefined;
    } = {},
  ) {
    this.#servers = servers;
    this.#log = log;
    this.#parentEnv = parentEnv;
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#gatewayUrl = options.gatewayUrl;
    this.#stateDir = options.stateDir;
    this.#accounts = resolveAccounts(servers, options.system ?? thisSystem);
  }

  /** Prepares (does not start) a process for `owner`, with its environment and app port. */
  async launch(owner: BackendOwner): Promise<BackendProcess> {
    return new BackendProcess(await this.spec(owner), this.#log.child({ user: owner.user }));
  }

  /** A server's command, args, cwd and the PATH its backend gets, for checks before a launch (preflight.ts). */
  inputs(server: string): LaunchInputs {
    const config = this.#servers[server];
    if (!config) throw new Error(`unknown server ${server}`);
    return launchInputs(config, this.#parentEnv);
  }

  /** Changes when the server's command, script or cwd change on disk (see `Supervisor`'s cool-down). */
  fingerprint(server: string): string {
    return launchFingerprint(this.inputs(server));
  }

  /** What to run for `owner`: command, cwd and allow-listed environment (SSH standalone mode spawns it itself). */
  async spec(owner: BackendOwner): Promise<BackendSpec> {
    const config = this.#servers[owner.server];
    if (!config) throw new Error(`unknown server ${owner.server}`);
    const relay: Record<string, string> = { MCP_RELAY_SERVER: owner.server };
    if (owner.user !== undefined) relay.MCP_RELAY_USER = owner.user;
    if (owner.session) relay.MCP_RELAY_SESSION = owner.session;
    const appPort = config.app ? await freePort() : undefined;
    if (config.app && appPort !== undefined) {
      relay[config.app.portEnv] = String(appPort);
      if (owner.appKey !== undefined) relay.MCP_RELAY_APP_KEY = owner.appKey;
      const base = this.#gatewayUrl?.();
      if (base !== undefined) relay.APP_PUBLIC_URL = appBaseUrl(base, owner.server, config.isolation, owner);
    }
    const account = this.#accounts.get(owner.server);
    if (this.#stateDir !== undefined)
      relay.MCP_RELAY_STATE_DIR = await instanceStateDir(this.#stateDir, owner, account);
    return {
      server: owner.server,
      command: commandToRun(config.command),
      args: config.args,
      cwd: config.cwd ?? '.',
      ...(this.#maxMessageBytes === undefined ? {} : { maxMessageBytes: this.#maxMessageBytes }),
      // The account's HOME, USER and LOGNAME replace the gateway's; the server's own env still wins.
      env: backendEnv({
        parent: this.#parentEnv,
        passthrough: config.envPassthrough,
        configured: { ...account?.env, ...config.env },
        relay,
      }),
      uid: account?.uid,
      gid: account?.gid,
      ...(appPort === undefined ? {} : { appPort }),
    };
  }
}

/**
 * The folder an instance keeps state in across restarts of its backend: <stateDir>/<server>/shared,
 * user-<name> (per-user) or session-<id> (per-session), made private to the backend's account.
 */
async function instanceStateDir(
  stateDir: string,
  owner: BackendOwner,
  account: BackendAccount | undefined,
): Promise<string> {
  const instance =
    owner.session !== undefined
      ? `session-${encodeURIComponent(owner.session)}`
      : owner.user !== undefined
        ? `user-${encodeURIComponent(owner.user)}`
        : 'shared';
  const serverDir = join(stateDir, encodeURIComponent(owner.server));
  const dir = join(serverDir, instance);
  // The folders above may be passed through (another account's backend reaches its own), not listed.
  await mkdir(serverDir, { recursive: true, mode: 0o711 });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (account?.uid !== undefined) await chown(dir, account.uid, account.gid ?? -1);
  return dir;
}

/** Asks the OS for a free loopback port. Another process could take it before the backend binds; rare and retried by restarts. */
export function freePort(): Promise<number> {
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
