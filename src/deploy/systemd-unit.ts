// The systemd unit that runs `mcp-relay serve` for a config: its own account, a read-only system with
// the folders the gateway writes left writable, SIGHUP to reload, and a stop timeout above the drain.
// `mcp-relay deploy print systemd` prints it; deploy/mcp-relay.service is it for deploy/relay.yaml.

import { dirname } from 'node:path';
import type { RelayConfig } from '../config/schema.ts';

export interface SystemdUnitOptions {
  /** The config file, absolute: `serve --config` reads it, and its folder holds the environment file. */
  configPath: string;
  /** What runs mcp-relay: absolute paths of node and the bin script (systemd's PATH may lack node). */
  exec: readonly string[];
}

/** The service's account, and the folder names systemd makes for it under /var/lib and /var/log. */
export const SERVICE_NAME = 'mcp-relay';
const STATE_DIR = `/var/lib/${SERVICE_NAME}`;
const LOGS_DIR = `/var/log/${SERVICE_NAME}`;
const RUNTIME_DIR = `/run/${SERVICE_NAME}`;

/** What the gateway may take beyond shutdownTimeout to stop (serve.ts ends itself 1 s after), and a margin. */
const STOP_MARGIN_MS = 5_000;

export interface SystemdUnit {
  text: string;
  /** What would keep the unit from starting on this machine, for stderr. */
  warnings: string[];
}

export function renderSystemdUnit(config: RelayConfig, options: SystemdUnitOptions): SystemdUnit {
  const { configPath, exec } = options;
  // Starting servers under their own accounts (servers.<name>.user) takes root.
  const asRoot = Object.values(config.servers).some(
    (server) => server.user !== undefined || server.group !== undefined,
  );
  const writable = writableFolders(config);
  const underHome = [configPath, ...exec, ...readPaths(config), ...writable].some(isUnderHome);
  const lowPort = config.listen !== false && config.listen.port > 0 && config.listen.port < 1_024;
  const environmentFile = `${dirname(configPath)}/environment`;
  const stopSeconds = Math.ceil((config.shutdownTimeout + STOP_MARGIN_MS) / 1_000);

  const lines = [
    '# systemd unit for the mcp-relay gateway, rendered by `mcp-relay deploy print systemd` from',
    `# ${configPath}. Install:`,
    ...(asRoot
      ? ['#   (servers.<name>.user is set: the gateway runs as root to start servers under those accounts)']
      : [
          `#   useradd --system --home-dir ${STATE_DIR} --shell /usr/sbin/nologin ${SERVICE_NAME}`,
          `#   chgrp ${SERVICE_NAME} ${configPath} && chmod 0640 ${configPath}`,
          // keys create writes the file 0600 as whoever runs it: the service account must be its owner.
          ...(config.auth.apiKeys
            ? [
                `#   API keys as that account, which must own ${config.auth.apiKeys.file}:`,
                `#   sudo -u ${SERVICE_NAME} mcp-relay keys create <user> --config ${configPath}`,
              ]
            : []),
        ]),
    `#   save this as /etc/systemd/system/${SERVICE_NAME}.service`,
    `#   systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}`,
    '',
    '[Unit]',
    'Description=mcp-relay gateway (shared stdio MCP servers)',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    ...(asRoot ? [] : [`User=${SERVICE_NAME}`, `Group=${SERVICE_NAME}`]),
    "# This machine's node and mcp-relay by absolute path: systemd's PATH may not have node.",
    `ExecStart=${[...exec, 'serve', '--config', configPath].map(execWord).join(' ')}`,
    '# SIGHUP re-reads the config at once (it is watched too): policy, limits, origins and audit apply live.',
    'ExecReload=/bin/kill -HUP $MAINPID',
    `# The \${VAR}s the config reads, one NAME=value a line (keep it 0600); optional.`,
    // One path to the end of the line: not split, not unquoted; only its `%` is a specifier.
    `EnvironmentFile=-${environmentFile.replace(/%/g, '%%')}`,
    'Restart=on-failure',
    'RestartSec=2s',
    '# SIGTERM to the gateway alone: it finishes calls in flight (shutdownTimeout) and stops its servers',
    '# itself; whatever is left after TimeoutStopSec gets SIGKILL.',
    'KillMode=mixed',
    `TimeoutStopSec=${stopSeconds}s`,
    'LimitNOFILE=65536',
    '',
    "# The account's home (npx and other caches of the servers) and logs.",
    `StateDirectory=${SERVICE_NAME}`,
    `LogsDirectory=${SERVICE_NAME}`,
    ...(writable.some((dir) => isWithin(dir, RUNTIME_DIR)) ? [`RuntimeDirectory=${SERVICE_NAME}`] : []),
    `WorkingDirectory=${STATE_DIR}`,
    '',
    '# Hardening. The servers run inside this sandbox too: a server that writes files needs its folder in',
    '# ReadWritePaths, one that needs more (a browser, devices) a looser setting here.',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    ...writable
      .filter((dir) => ![STATE_DIR, LOGS_DIR, RUNTIME_DIR].some((own) => isWithin(dir, own)))
      .map((dir) => `ReadWritePaths=${pathWord(`-${dir}`)}`),
    underHome
      ? '# Something it runs or reads is under /home or /root: those stay readable, not writable.'
      : '# Nothing it runs or reads is under /home or /root.',
    `ProtectHome=${underHome ? 'read-only' : 'yes'}`,
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'LockPersonality=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'SystemCallArchitectures=native',
    "# Files it and its servers create are theirs alone; other accounts' processes are out of sight.",
    'UMask=0077',
    'ProtectProc=invisible',
    ...(asRoot
      ? ['# Root keeps its capabilities: switching servers to their accounts needs several of them.']
      : lowPort
        ? [
            `# listen.port ${config.listen === false ? '' : config.listen.port} is below 1024: that one capability, nothing else.`,
            'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
            'AmbientCapabilities=CAP_NET_BIND_SERVICE',
          ]
        : ['# No capabilities at all, not even through a program it runs.', 'CapabilityBoundingSet=']),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  const warnings =
    !asRoot && exec.some(isUnderHome)
      ? [
          `${exec.join(' ')} is under a home folder, which the ${SERVICE_NAME} account cannot normally read: install node and mcp-relay system-wide (npm install -g), then render the unit again`,
        ]
      : [];
  return { text: lines.join('\n'), warnings };
}

/** Folders the gateway itself writes in: the audit log's (rotation renames there), the SSH socket's. */
function writableFolders(config: RelayConfig): string[] {
  const folders = new Set<string>();
  const audit = config.audit?.file;
  if (audit !== undefined && audit !== '-') folders.add(dirname(audit));
  if (config.ssh?.mode === 'attached' && config.ssh.socket !== undefined)
    folders.add(dirname(config.ssh.socket));
  return [...folders];
}

/** Files and folders the gateway or its servers read: keys, certificates, the servers' commands and folders. */
function readPaths(config: RelayConfig): string[] {
  const tls = config.listen === false ? undefined : config.listen.tls;
  const crl = tls?.crl === undefined ? [] : typeof tls.crl === 'string' ? [tls.crl] : tls.crl;
  return [
    ...(config.auth.apiKeys ? [config.auth.apiKeys.file] : []),
    ...(tls ? [tls.cert, tls.key, ...(tls.clientCa ? [tls.clientCa] : []), ...crl] : []),
    ...Object.values(config.servers).flatMap((server) => [
      server.command,
      ...server.args,
      ...(server.cwd ? [server.cwd] : []),
    ]),
  ];
}

function isUnderHome(path: string): boolean {
  return ['/home', '/root', '/run/user'].some((home) => isWithin(path, home));
}

function isWithin(path: string, folder: string): boolean {
  return path === folder || path.startsWith(`${folder}/`);
}

/**
 * One word of ExecStart's command line: `%` and `$` doubled (systemd expands both there), quoted when it
 * holds spaces or quotes.
 */
export function execWord(word: string): string {
  return quoted(word.replace(/%/g, '%%').replace(/\$/g, '$$$$'));
}

/** A path in a path-list setting (ReadWritePaths): `%` doubled (a specifier there), quoted when needed. */
export function pathWord(path: string): string {
  return quoted(path.replace(/%/g, '%%'));
}

function quoted(word: string): string {
  if (!/[\s"'\\]/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
