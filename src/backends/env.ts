// The environment a backend process starts with: an allowlist of the gateway's own, never its secrets.

/** Variables a typical stdio server needs to run at all; everything else must be named in the config. */
const INHERITED = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TEMP',
  'TMP',
  'TERM',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SYSTEMROOT',
  'WINDIR',
  'APPDATA',
  'LOCALAPPDATA',
  'USERPROFILE',
  'PROGRAMFILES',
];

/** Whether every backend inherits `name` from the gateway anyway (so it is no secret to keep from them). */
export function inheritedByBackends(name: string): boolean {
  return INHERITED.includes(name) || name.startsWith('LC_');
}

export interface BackendEnvInput {
  /** The gateway's environment to pick from. */
  parent: NodeJS.ProcessEnv;
  /** Names of extra variables to copy from `parent`. */
  passthrough: readonly string[];
  /** Values from the server's config; they win over inherited ones. */
  configured: Readonly<Record<string, string>>;
  /** Values mcp-relay sets itself (user, server name, app port); they win over everything. */
  relay: Readonly<Record<string, string>>;
}

export function backendEnv({
  parent,
  passthrough,
  configured,
  relay,
}: BackendEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...INHERITED, ...passthrough]) {
    const value = parent[name];
    if (value !== undefined) env[name] = value;
  }
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && name.startsWith('LC_')) env[name] = value;
  }
  return { ...env, ...configured, ...relay };
}
