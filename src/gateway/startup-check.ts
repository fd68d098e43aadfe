// The checks `serve --check` prints and every `serve` runs at start: each server's command and script
// (backends/preflight.ts), then one real launch answering initialize (backends/probe.ts); and whether
// anyone can sign in with an API key at all.

import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { isExpired } from '../auth/key-admin.ts';
import { readKeysFile } from '../auth/key-file.ts';
import { BackendLauncher } from '../backends/launcher.ts';
import { type LaunchProblem, launchProblems } from '../backends/preflight.ts';
import { type ProbeResult, probeBackend } from '../backends/probe.ts';
import type { RelayConfig } from '../config/schema.ts';
import { errorText } from '../errors.ts';
import type { Logger } from '../log.ts';

/** How long a backend gets to answer initialize at a check, unless `--check-timeout` says otherwise. */
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;

export interface ServerCheck {
  server: string;
  ok: boolean;
  /** What is wrong before a launch (command, script, cwd); a server with an error here is not launched. */
  problems: LaunchProblem[];
  /** The launch and initialize, when it was tried. */
  probe?: ProbeResult;
}

export interface StartupCheck {
  ok: boolean;
  servers: ServerCheck[];
  /** Not fatal, but worth an admin's attention (no keys file). */
  warnings: string[];
  /** Fatal for every server (an account in `servers.<name>.user` that does not exist). */
  error?: string;
}

export interface StartupCheckOptions {
  log: Logger;
  env: NodeJS.ProcessEnv;
  /** 0: no launch, only the checks on disk. */
  timeoutMs: number;
  /** The gateway's base URL for APP_PUBLIC_URL, when it listens already. */
  gatewayUrl?: () => string | undefined;
}

/** Checks every server of `config` (launches run side by side); never throws. */
export async function checkStartup(config: RelayConfig, options: StartupCheckOptions): Promise<StartupCheck> {
  let warnings: string[];
  try {
    warnings = [...(await keyWarnings(config)), ...watchWarnings(config)];
  } catch (error) {
    // A keys file the gateway cannot read stops it at start (KeyStore.open): as fatal as a bad account.
    return { ok: false, servers: [], warnings: [], error: errorText(error) };
  }
  let launcher: BackendLauncher;
  try {
    launcher = new BackendLauncher(config.servers, options.log, options.env, {
      maxMessageBytes: config.limits.maxBackendMessageBytes,
      ...(options.gatewayUrl ? { gatewayUrl: options.gatewayUrl } : {}),
    });
  } catch (error) {
    return { ok: false, servers: [], warnings, error: errorText(error) };
  }
  const servers = await Promise.all(
    Object.keys(config.servers).map(async (server): Promise<ServerCheck> => {
      const problems = launchProblems(launcher.inputs(server));
      if (problems.some((problem) => problem.level === 'error') || options.timeoutMs <= 0)
        return { server, ok: !problems.some((problem) => problem.level === 'error'), problems };
      const probe = await probeBackend(launcher, server, options.timeoutMs);
      return { server, ok: probe.ok, problems, probe };
    }),
  );
  return { ok: servers.every((server) => server.ok), servers, warnings };
}

/** The lines of a failed server's report: each problem, the probe's outcome and its stderr tail. */
export function failureLines(check: ServerCheck): string[] {
  const lines = check.problems.map((problem) => problem.message);
  if (check.probe && !check.probe.ok) {
    lines.push(check.probe.message);
    if (check.probe.stderr.length > 0)
      lines.push('its last stderr lines:', ...check.probe.stderr.map((line) => `  ${line}`));
  }
  return lines;
}

/** `servers.<name>.watch` paths that do not exist: the watch may be meant for another path. */
function watchWarnings(config: RelayConfig): string[] {
  const warnings: string[] = [];
  for (const [server, { watch }] of Object.entries(config.servers))
    for (const path of watch) {
      if (existsSync(path)) continue;
      warnings.push(
        existsSync(dirname(path))
          ? `servers.${server}.watch: ${path} does not exist (yet): its creation restarts the server's backends`
          : `servers.${server}.watch: neither ${path} nor its folder exists: changes there restart nothing`,
      );
    }
  return warnings;
}

/** No keys file, or one with no usable key: nobody can sign in with an API key. Throws when it cannot be read. */
async function keyWarnings(config: RelayConfig): Promise<string[]> {
  const file = config.auth.apiKeys?.file;
  if (file === undefined) return [];
  const create = `\`mcp-relay keys create NAME --keys-file ${file}\``;
  if (!existsSync(file))
    return [
      `the keys file ${file} does not exist: no one can sign in with an API key until ${create} creates it`,
    ];
  const now = Date.now();
  const usable = (await readKeysFile(file)).filter((record) => !isExpired(record, now));
  if (usable.length > 0) return [];
  return [
    `the keys file ${file} holds no key that is not expired: no one can sign in with an API key until ${create}`,
  ];
}
