// The login cache: one file per server URL under the user's config folder
// (`$XDG_CONFIG_HOME/mcp-relay/oauth/`, `~/.config/…`, `%APPDATA%\…`), owner-only (0600, folder
// 0700), replaced atomically, holding the client registration and the tokens. A cross-process lock
// on it makes several bridges for one server share one login and one refresh (refresh tokens rotate:
// two refreshes with the same token would get the grant revoked).

import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/atomic-write.ts';
import { withFileLock } from '../../util/file-lock.ts';
import { OAuthError } from './http.ts';

export interface StoredClient {
  clientId: string;
  clientSecret?: string | undefined;
  /** How the client authenticates at the token endpoint (`none` for public clients). */
  authMethod: string;
  /** The redirect URI it was registered with (its port is reused when free). */
  redirectUri?: string | undefined;
  how: 'registered' | 'configured' | 'metadata-document';
}

export interface StoredTokens {
  accessToken: string;
  refreshToken?: string | undefined;
  /** Epoch ms when they were asked for. */
  obtainedAt: number;
  /** Epoch ms; undefined when the server did not say. */
  expiresAt?: number | undefined;
  scope?: string | undefined;
}

export interface StoredLogin {
  version: 1;
  /** The MCP endpoint these credentials are for. */
  server: string;
  resource: string;
  issuer: string;
  client: StoredClient;
  tokens?: StoredTokens | undefined;
}

/** How long a waiting bridge lets the holder work before taking a silent lock over (the holder touches it). */
const LOCK_STALE_MS = 20_000;
const LOCK_HEARTBEAT_MS = 5_000;

export class LoginStore {
  readonly file: string;
  readonly #dir: string;
  readonly #server: string;

  constructor(configDir: string, serverUrl: URL) {
    this.#server = `${serverUrl.origin}${serverUrl.pathname}`;
    this.#dir = join(configDir, 'oauth');
    const host = serverUrl.host.replace(/[^A-Za-z0-9.-]/g, '_');
    const hash = createHash('sha256').update(this.#server).digest('hex').slice(0, 16);
    this.file = join(this.#dir, `${host}-${hash}.json`);
  }

  /** The cached login, or undefined when there is none or it is unreadable (then we sign in again). */
  async read(): Promise<StoredLogin | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const value = JSON.parse(text) as StoredLogin;
      if (value?.version !== 1 || value.server !== this.#server || typeof value.client?.clientId !== 'string')
        return undefined;
      return value;
    } catch {
      return undefined;
    }
  }

  async write(login: StoredLogin): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file, `${JSON.stringify(login, null, 2)}\n`, 0o600);
  }

  async remove(): Promise<void> {
    await rm(this.file, { force: true });
  }

  /**
   * Runs `work` holding the lock for this server across processes; waits up to `waitMs` for another
   * bridge's login. The holder refreshes the lock's time so a long login is not taken for a crash.
   */
  async locked<T>(waitMs: number, work: () => Promise<T>): Promise<T> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const lockPath = `${this.file}.lock`;
    try {
      return await withFileLock(
        this.file,
        async () => {
          const heartbeat = setInterval(() => {
            const now = new Date();
            utimes(lockPath, now, now).catch(() => undefined);
          }, LOCK_HEARTBEAT_MS);
          try {
            return await work();
          } finally {
            clearInterval(heartbeat);
          }
        },
        { timeoutMs: waitMs, staleMs: LOCK_STALE_MS },
      );
    } catch (error) {
      if ((error as { code?: unknown }).code === 'KEYS_FILE') {
        throw new OAuthError(
          `another mcp-relay is still signing in to ${this.#server}; try again when it is done`,
        );
      }
      throw error;
    }
  }
}

/** The user's config folder for mcp-relay (tests point XDG_CONFIG_HOME elsewhere). */
export function configDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'mcp-relay');
  if (platform === 'win32' && env.APPDATA) return join(env.APPDATA, 'mcp-relay');
  return join(env.HOME || homedir(), '.config', 'mcp-relay');
}
