// `mcp-relay serve`: run the gateway from relay.yaml, or host one command quickly: `serve -- node server.js`.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { inheritedByBackends } from '../../backends/env.ts';
import { environmentWithTaken, takeFromEnvironment } from '../../config/env-secrets.ts';
import { buildConfig, type LoadedConfig, loadConfigFile } from '../../config/load.ts';
import { ConfigReloader } from '../../config/reload.ts';
import type { RelayConfig } from '../../config/schema.ts';
import { parseDuration } from '../../config/units.ts';
import { RelayError } from '../../errors.ts';
import { createGateway } from '../../gateway/create-gateway.ts';
import { checkStartup, DEFAULT_CHECK_TIMEOUT_MS } from '../../gateway/startup-check.ts';
import { createLogger, type Logger, silentLogger } from '../../log.ts';
import { formatCheckReport, formatStartFailures, logCheckFailures } from '../check-report.ts';
import { ioFrom } from '../io.ts';
import { untilSignal } from '../signals.ts';

/** What stopping the gateway may take beyond the drain (closing sessions, stopping backends). */
const STOP_GRACE_MS = 1_000;

export const serveCommand = defineCommand({
  meta: {
    name: 'serve',
    description:
      'Run the gateway. `serve --config relay.yaml`, or `serve [--port N] -- <command> [args…]` for one server.',
  },
  args: {
    config: { type: 'string', description: 'config file', default: 'relay.yaml', valueHint: 'FILE' },
    port: { type: 'string', description: 'port (overrides listen.port)', valueHint: 'N' },
    host: { type: 'string', description: 'address to bind (overrides listen.host)', valueHint: 'ADDR' },
    isolation: { type: 'string', description: 'isolation of the quick-form server', valueHint: 'MODE' },
    check: {
      type: 'boolean',
      description:
        'check the config and start each server once (initialize), print a report, exit 0 or 1 without listening',
    },
    'check-timeout': {
      type: 'string',
      description: `how long each server gets to answer initialize at the check (default ${DEFAULT_CHECK_TIMEOUT_MS / 1000}s; 0: do not start them)`,
      valueHint: 'DURATION',
    },
  },
  async run({ args, rawArgs, data }) {
    const io = ioFrom(data);
    const dashDash = rawArgs.indexOf('--');
    const command = dashDash === -1 ? [] : rawArgs.slice(dashDash + 1);
    const loaded = command.length > 0 ? quickConfig(command, args.isolation) : fileConfig(args.config);
    const overrides = {
      ...(args.host ? { host: args.host } : {}),
      ...(args.port ? { port: parsePort(args.port) } : {}),
    };
    const withOverrides = (loaded: RelayConfig) => {
      if (loaded.listen !== false)
        return buildConfig({ ...loaded, listen: { ...loaded.listen, ...overrides } });
      if (Object.keys(overrides).length > 0) {
        throw new RelayError(
          'USAGE',
          '--host and --port need a TCP listener, and the config says listen: false',
        );
      }
      return loaded;
    };
    const final = withOverrides(loaded.config);
    const checkTimeoutMs = parseCheckTimeout(args['check-timeout']);
    if (args.check) {
      // The report says everything; backends' own log lines would only bury it.
      takeSecrets(loaded, silentLogger);
      const check = await checkStartup(final, {
        log: silentLogger,
        env: environmentWithTaken(),
        timeoutMs: checkTimeoutMs,
      });
      io.stdout.write(formatCheckReport(check, loaded.path ?? command.join(' ')));
      return check.ok ? 0 : 1;
    }
    const log = createLogger(final.logLevel);
    takeSecrets(loaded, log);
    const gateway = createGateway({ config: final, log, env: environmentWithTaken() });
    await gateway.listen();
    // Listening first, so a taken port fails at once; ready is said only after the check. A server that
    // fails it is logged and the others are served, as a proxy goes on with one bad upstream.
    const check = await checkStartup(final, {
      log: log.child({ check: true }),
      env: environmentWithTaken(),
      timeoutMs: checkTimeoutMs,
      gatewayUrl: () => final.publicUrl ?? (final.listen === false ? undefined : gateway.url),
    });
    const failing = logCheckFailures(check, log);
    // The JSON log is written asynchronously: the plain report goes out first, before the ready line.
    if (!check.ok) io.stderr.write(formatStartFailures(check));
    const where =
      final.listen === false ? `on ${final.ssh?.socket} only (listen: false)` : `at ${gateway.url}`;
    const failingNote = failing.length > 0 ? `; failing their start check: ${failing.join(', ')}` : '';
    // Before the ready line, which whoever waits for the gateway takes as the end of what it says at start.
    if (gateway.metricsUrl !== undefined)
      io.stderr.write(`metrics at ${gateway.metricsUrl}/metrics (no authentication, this machine only)\n`);
    io.stderr.write(
      `mcp-relay gateway ${where} (servers: ${Object.keys(final.servers).join(', ')}${failingNote})\n`,
    );
    // A config file is watched, and SIGHUP re-reads it at once: policy, limits, origins and audit apply live.
    const reloader =
      command.length > 0
        ? undefined
        : new ConfigReloader({
            file: resolve(args.config),
            load: () => {
              const next = loadConfigFile(args.config);
              takeSecrets(next, log);
              return withOverrides(next.config);
            },
            apply: (next) => gateway.reload(next),
            log,
          });
    const onHangup = () => void reloader?.reload();
    if (reloader) process.on('SIGHUP', onHangup);
    // SIGUSR2 restarts every server's running backends gracefully: new code, no failed call (README,
    // "Updating a server's code"). What happened to each backend is logged by the gateway.
    const onRestart = () => {
      log.info('SIGUSR2: restarting the running backends of every server');
      for (const server of Object.keys(final.servers)) void gateway.restartBackends(server);
    };
    // Windows has no SIGUSR2: there `watch` restarts backends.
    const usr2 = process.platform !== 'win32';
    if (usr2) process.on('SIGUSR2', onRestart);
    const signal = await untilSignal();
    if (usr2) process.off('SIGUSR2', onRestart);
    const drainMs = final.shutdownTimeout;
    // A second SIGTERM/SIGINT now has no listener left and ends the process at once.
    log.info({ signal, drainMs }, 'stopping: no new sessions or requests; waiting for calls in flight');
    reloader?.close();
    process.off('SIGHUP', onHangup);
    // Bounded: a stop that takes longer than the drain plus a second is reported and left behind; the
    // entry point ends the process soon after (a service manager must not wait out its own timeout).
    let timer: NodeJS.Timeout | undefined;
    const overdue = new Promise<'overdue'>((resolve) => {
      timer = setTimeout(() => resolve('overdue'), drainMs + STOP_GRACE_MS);
    });
    const outcome = await Promise.race([gateway.close({ drainMs }), overdue]);
    clearTimeout(timer);
    if (outcome === 'overdue') {
      log.error({ drainMs }, 'the gateway did not stop in time; exiting anyway');
      return 1;
    }
    return 0;
  },
});

/**
 * Takes the variables the config reads (its `${VAR}`s, envPassthrough) out of the gateway's own
 * environment, where a backend of the same account could read them (config/env-secrets.ts).
 */
function takeSecrets({ config, envNames }: LoadedConfig, log: Logger): void {
  const passthrough = Object.values(config.servers).flatMap((server) => server.envPassthrough);
  const names = new Set([...envNames, ...passthrough].filter((name) => !inheritedByBackends(name)));
  const taken = takeFromEnvironment(names);
  if (taken.eraseError !== undefined) {
    log.warn(
      { variables: taken.names, err: taken.eraseError },
      "config variables left process.env but stay readable in /proc/<pid>/environ to the gateway's account; run servers as another account (servers.<name>.user)",
    );
  } else if (taken.names.length > 0) {
    log.debug({ variables: taken.names }, "config variables taken out of the gateway's environment");
  }
}

function fileConfig(path: string): LoadedConfig {
  if (!existsSync(path)) {
    throw new RelayError(
      'CONFIG_NOT_FOUND',
      `no config at ${path}: pass --config FILE, or host one command with \`mcp-relay serve -- <command> [args…]\``,
    );
  }
  return loadConfigFile(path);
}

function quickConfig(command: string[], isolation: string | undefined): LoadedConfig {
  const [program, ...args] = command as [string, ...string[]];
  const config = buildConfig({
    servers: { default: { command: program, args, ...(isolation ? { isolation } : {}) } },
  });
  return { config, path: undefined, envNames: [] };
}

/** A duration; a bare number is seconds here (`--check-timeout 30`), unlike in the config. */
function parseCheckTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CHECK_TIMEOUT_MS;
  const ms = parseDuration(/^\s*\d+(?:\.\d+)?\s*$/.test(text) ? `${text}s` : text);
  if (ms === undefined)
    throw new RelayError('USAGE', `--check-timeout must be a duration such as 10s or 500ms, not "${text}"`);
  return ms;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RelayError('USAGE', `--port must be a number from 0 to 65535, not "${text}"`);
  }
  return port;
}
