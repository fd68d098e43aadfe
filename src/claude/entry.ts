// Claude Desktop `mcpServers` entries, as pure functions: the relay bridge (`connect <url>`) run by
// node or npx, or SSH into the office. `claude config`, `claude install`, `demo` and the gateway share them.

import { DEFAULT_TOKEN_ENV, TOKEN_PLACEHOLDER } from '../connect/token-env.ts';
import { RelayError } from '../errors.ts';
import { isLoopbackAddress } from '../util/loopback.ts';

/** One value of `mcpServers` in claude_desktop_config.json. */
export interface ClaudeServerEntry {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

/** How Claude Desktop starts mcp-relay on the user's machine. */
export type RelayLauncher =
  /** This machine's node and this package's bin script, by absolute path: works without a global install. */
  | { readonly kind: 'node'; readonly nodePath: string; readonly binPath: string }
  /** `npx -y mcp-relay`: works on any machine with Node, fetches the package on first start. */
  | { readonly kind: 'npx' }
  /**
   * `mcp-relay` found on PATH: another machine, where `npm install -g` put it; names no path of the
   * machine that printed the entry.
   */
  | { readonly kind: 'path' };

/** Entry names: what Claude Desktop shows; kept to characters that need no quoting anywhere. */
export const ENTRY_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

export interface UrlEntryOptions {
  /** The gateway's MCP endpoint, e.g. https://mcp.example.com/mcp/3d. */
  readonly url: string;
  /** The user's API key; omitted = a placeholder the user replaces. */
  readonly token?: string | undefined;
  /** Sign in through the browser (OAuth) instead of an API key: the entry carries no token variable. */
  readonly oauth?: boolean | undefined;
  /** A client certificate authenticates (mTLS): without a token the entry carries no token variable. */
  readonly clientCertificate?: boolean | undefined;
  /** Extra `connect` flags (e.g. --ca, --cert, --key, --proxy with their values), passed as given. */
  readonly connectArgs?: readonly string[] | undefined;
  readonly launcher: RelayLauncher;
}

export function claudeEntryForUrl(options: UrlEntryOptions): ClaudeServerEntry {
  const url = checkGatewayUrl(options.url);
  const relay = relayCommand(options.launcher);
  const args = [...relay.args, 'connect', url, ...(options.connectArgs ?? [])];
  // A placeholder only where a key is what authenticates: connect refuses to start while it is there.
  if (options.oauth || (options.clientCertificate && options.token === undefined))
    return { command: relay.command, args };
  return { command: relay.command, args, env: { [DEFAULT_TOKEN_ENV]: options.token ?? TOKEN_PLACEHOLDER } };
}

function relayCommand(launcher: RelayLauncher): { command: string; args: string[] } {
  switch (launcher.kind) {
    case 'node':
      return { command: launcher.nodePath, args: [launcher.binPath] };
    case 'npx':
      return { command: 'npx', args: ['-y', 'mcp-relay'] };
    case 'path':
      return { command: 'mcp-relay', args: [] };
  }
}

export interface SshEntryOptions {
  /** `user@host` (or a Host alias from ~/.ssh/config). */
  readonly target: string;
  /** The configured server name the forced command runs. */
  readonly server: string;
  /** Private key file; ssh itself expands a leading `~`. */
  readonly identity?: string | undefined;
  /** The SSH port when it is not 22. */
  readonly port?: number | undefined;
  /** Extra `-o Name=value` options (e.g. UserKnownHostsFile=…); they come first, so they win over the defaults. */
  readonly options?: readonly string[] | undefined;
}

/** `Name=value` (or `Name value`) as ssh's -o takes it; the name is letters and digits only. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
const SSH_OPTION = /^[A-Za-z][A-Za-z0-9]*(=|\s+)[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$/;

/**
 * SSH mode: sshd's forced command picks the server. BatchMode makes a missing key fail at once
 * instead of waiting on a password prompt nobody can see; the keep-alives end a dead link in ~45 s.
 */
export function claudeEntryForSsh(options: SshEntryOptions): ClaudeServerEntry {
  if (!/^[A-Za-z0-9._@-]+$/.test(options.target) || options.target.startsWith('-')) {
    throw new RelayError('USAGE', 'the ssh target must look like user@host (letters, digits, ._@-)');
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(options.server)) {
    throw new RelayError('USAGE', 'the server name must be letters, digits, . _ - (as in relay.yaml)');
  }
  if (options.identity !== undefined && (options.identity === '' || options.identity.startsWith('-'))) {
    throw new RelayError('USAGE', 'the identity must be a path to a private key file');
  }
  const { port } = options;
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65_536)) {
    throw new RelayError('USAGE', 'the ssh port must be a number from 1 to 65535');
  }
  for (const option of options.options ?? []) {
    if (!SSH_OPTION.test(option)) {
      throw new RelayError(
        'USAGE',
        'an ssh option must look like Name=value (e.g. UserKnownHostsFile=~/.ssh/office)',
      );
    }
  }
  return {
    command: 'ssh',
    args: [
      // With a key named, offering only that key keeps agent keys from using up sshd's MaxAuthTries.
      ...(options.identity === undefined ? [] : ['-i', options.identity, '-o', 'IdentitiesOnly=yes']),
      ...(port === undefined ? [] : ['-p', String(port)]),
      ...(options.options ?? []).flatMap((option) => ['-o', option]),
      '-o',
      'BatchMode=yes',
      '-o',
      'ServerAliveInterval=15',
      '-o',
      'ServerAliveCountMax=3',
      '-T',
      options.target,
      options.server,
    ],
  };
}

/** The ready-to-paste document: `{ "mcpServers": { "<name>": entry } }`. */
export function mcpServersSnippet(
  name: string,
  entry: ClaudeServerEntry,
): { mcpServers: Record<string, ClaudeServerEntry> } {
  checkEntryName(name);
  return { mcpServers: { [name]: entry } };
}

/** A default entry name from the URL's last path segment (`…/mcp/3d` → `3d`). */
export function entryNameFromUrl(url: string): string {
  const segment = new URL(checkGatewayUrl(url)).pathname.split('/').filter(Boolean).at(-1);
  return segment !== undefined && ENTRY_NAME.test(segment) ? segment : 'mcp-relay';
}

export function checkEntryName(name: string): void {
  if (!ENTRY_NAME.test(name)) {
    throw new RelayError(
      'USAGE',
      'the entry name must be 1-64 letters, digits, spaces or ._- (starting with a letter or digit)',
    );
  }
}

/** The URL, normalized; only http(s) without credentials (a key belongs in MCP_RELAY_TOKEN, not the URL). */
export function checkGatewayUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RelayError('USAGE', 'the gateway URL is not a valid URL (e.g. https://mcp.example.com/mcp/3d)');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new RelayError('USAGE', 'the gateway URL must start with https:// or http://');
  }
  if (url.username !== '' || url.password !== '') {
    throw new RelayError('USAGE', 'the gateway URL must not carry credentials; pass the key with --token');
  }
  return url.href;
}

/** True when a key sent to this URL would cross the network unencrypted. */
export function isCleartextRemote(url: string): boolean {
  const parsed = new URL(url);
  return parsed.protocol === 'http:' && !isLoopbackAddress(parsed.hostname);
}
