// `mcp-relay ssh-entry`: what sshd runs for an authorized key (the forced command). Picks the server
// the client asked for (SSH_ORIGINAL_COMMAND), checks it against the config and the user's rights,
// then serves the connection standalone (own process) or attached (a session of the gateway).
// Refusals are one line on stderr and a non-zero exit; stdout carries only protocol.

import { randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BackendLauncher } from '../backends/launcher.ts';
import { loadConfigFile } from '../config/load.ts';
import type { RelayConfig, ServerConfig } from '../config/schema.ts';
import { createStderrLog } from '../connect/diagnostics.ts';
import { errorText, RelayError } from '../errors.ts';
import { silentLogger } from '../log.ts';
import { ServerPolicy } from '../policy/policy.ts';
import type { Identity } from '../sessions/types.ts';
import { sanitize } from '../util/sanitize.ts';
import { checkGatewaySocket, runAttached } from './attached.ts';
import { type ConnectionFields, clientAddress, openConnectionLog } from './connection-log.ts';
import { claimConnectionSlot } from './connection-slots.ts';
import { checkPrincipal } from './forced-command.ts';
import { type RunOutcome, runStandalone, standaloneParentEnv } from './standalone.ts';

export interface SshEntryOptions {
  configPath: string;
  user: string;
  groups: readonly string[];
  /**
   * sshd's environment: SSH_ORIGINAL_COMMAND, SSH_CONNECTION, the config's `${VAR}`s. Partly the
   * client's (AcceptEnv), so backends inherit only what `standaloneParentEnv` keeps of it.
   */
  env: NodeJS.ProcessEnv;
  input: Readable;
  output: Writable;
  errors: Writable;
  /** Aborted when ssh-entry is asked to stop (SIGTERM, SIGHUP). */
  signal: AbortSignal;
}

/** Serves one SSH connection; resolves with the exit code sshd hands back to the client. */
export async function runSshEntry(options: SshEntryOptions): Promise<number> {
  const say = (message: string) => options.errors.write(`mcp-relay: ${message}\n`);
  let config: RelayConfig;
  try {
    checkPrincipal('user', options.user);
    for (const group of options.groups) checkPrincipal('group', group);
    config = loadEntryConfig(options.configPath, options.env);
  } catch (error) {
    // The forced command or the config is broken: the admin's problem, said plainly to the client.
    say(error instanceof Error ? error.message.replace(/\n\s*/g, '; ') : String(error));
    return 2;
  }
  const ssh = config.ssh ?? {
    mode: 'standalone' as const,
    socket: undefined,
    stateDir: undefined,
    logFile: undefined,
  };
  const log = openConnectionLog(ssh.logFile);
  try {
    const fields: ConnectionFields = {
      connection: randomUUID(),
      user: options.user,
      groups: options.groups,
      mode: ssh.mode,
      client: clientAddress(options.env.SSH_CONNECTION),
    };
    const identity: Identity = {
      user: options.user,
      groups: options.groups,
      method: 'ssh',
      credential: 'ssh-standalone',
    };
    const choice = chooseServer(config, options.env.SSH_ORIGINAL_COMMAND, identity);
    const refuse = (reason: string, server?: string) => {
      say(reason);
      // On stderr the one line above is the record; a JSON line next to it would only be noise.
      if (log.toFile) log.refused({ ...fields, server, reason });
      return 1;
    };
    if ('refusal' in choice) return refuse(choice.refusal);
    const { server } = choice;
    const started = Date.now();
    const onStart = () => log.start({ ...fields, server });
    const outcome =
      ssh.mode === 'standalone'
        ? await serveStandalone(options, config, ssh.stateDir, server, fields.connection, onStart)
        : await serveAttached(options, ssh.socket ?? '', server, onStart);
    if ('refusal' in outcome) return refuse(outcome.refusal, server);
    log.end({ ...fields, server, durationMs: Date.now() - started, ...outcome });
    return outcome.exitCode;
  } finally {
    log.close();
  }
}

/** Standalone: a slot under the user's limit, then the server's own process for this connection. */
async function serveStandalone(
  options: SshEntryOptions,
  config: RelayConfig,
  stateDir: string | undefined,
  server: string,
  connection: string,
  onStart: () => void,
): Promise<RunOutcome | { refusal: string }> {
  const limit = config.limits.sessionsPerUser;
  const folder = stateDir ?? join(homedir(), '.mcp-relay', 'ssh');
  const claim = await claimConnectionSlot(folder, options.user, server, limit).catch((error: unknown) => {
    throw new RelayError(
      'SSH_REFUSED',
      `cannot count connections in ${folder}: ${errorText(error)}; check that folder's permissions or set ssh.stateDir`,
    );
  });
  if (!claim.ok) {
    return {
      refusal: `too many connections for ${options.user}: at most ${limit} at once (limits.sessionsPerUser)`,
    };
  }
  try {
    let launcher: BackendLauncher;
    try {
      // Only this server's account is checked: another server's `user` is no reason to refuse this one.
      // Not options.env: sshd filled part of it from the client (SendEnv/SetEnv).
      launcher = new BackendLauncher(
        { [server]: config.servers[server] as ServerConfig },
        silentLogger,
        standaloneParentEnv(options.env),
      );
    } catch (error) {
      return { refusal: errorText(error) };
    }
    onStart();
    const spec = await launcher.spec({ server, user: options.user, session: connection });
    return await runStandalone({ ...options, spec });
  } finally {
    claim.slot.release();
  }
}

/** Attached: a session of the running gateway, refused at once when nothing listens on its socket. */
async function serveAttached(
  options: SshEntryOptions,
  socketPath: string,
  server: string,
  onStart: () => void,
): Promise<RunOutcome | { refusal: string }> {
  try {
    await checkGatewaySocket(socketPath);
  } catch (error) {
    return { refusal: errorText(error) };
  }
  onStart();
  return runAttached({
    ...options,
    socketPath,
    server,
    log: createStderrLog({ verbose: false, write: (line) => options.errors.write(line) }),
  });
}

type ServerChoice = { server: string } | { refusal: string };

/** The server named by the client's command, if it exists and the user may use it. */
export function chooseServer(
  config: RelayConfig,
  asked: string | undefined,
  identity: Identity,
): ServerChoice {
  const allowed = (name: string) => {
    const server = config.servers[name];
    return server !== undefined && new ServerPolicy(server).allows(identity);
  };
  const offer = Object.keys(config.servers).filter(allowed);
  const choices = offer.length > 0 ? ` (servers: ${offer.join(', ')})` : '';
  const name = (asked ?? '').trim();
  if (name === '')
    return { refusal: `name the server after the host, e.g. ssh <user>@<host> <server>${choices}` };
  if (!Object.hasOwn(config.servers, name)) {
    return { refusal: `unknown server ${JSON.stringify(sanitize(name, 60))}${choices}` };
  }
  if (!allowed(name)) return { refusal: `${identity.user} may not use server ${name}${choices}` };
  return { server: name };
}

/**
 * sshd gives forced commands a minimal environment, so `${VAR}`s meant for the gateway's service may
 * be unset here. Attached mode needs none of them (the gateway starts the servers), so it reads the
 * config with placeholders rather than failing; standalone needs the real values and says which one.
 */
function loadEntryConfig(path: string, env: NodeJS.ProcessEnv): RelayConfig {
  const { config, unset } = loadConfigDespiteUnsetVars(path, env);
  if (unset && config.ssh?.mode !== 'attached') throw unset;
  return config;
}

/**
 * The config, with placeholders for unset `${VAR}`s when only those stop it from loading (`unset`
 * then holds the error naming the first one). Other errors are thrown as they are.
 */
export function loadConfigDespiteUnsetVars(
  path: string,
  env: NodeJS.ProcessEnv,
): { config: RelayConfig; unset: RelayError | undefined } {
  try {
    return { config: loadConfigFile(path, env).config, unset: undefined };
  } catch (error) {
    if (!(error instanceof RelayError) || error.code !== 'CONFIG_ENV_UNSET') throw error;
    try {
      return { config: loadConfigFile(path, withPlaceholders(env)).config, unset: error };
    } catch {
      throw error;
    }
  }
}

function withPlaceholders(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return new Proxy(env, {
    get: (target, name) => (typeof name === 'string' ? target[name] || 'unset-for-ssh-entry' : undefined),
  });
}
