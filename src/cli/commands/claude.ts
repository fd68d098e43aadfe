// `mcp-relay claude config|install`: the Claude Desktop entry that starts the relay bridge (or ssh),
// printed as ready-to-paste JSON or merged into the user's claude_desktop_config.json.

import { posix, win32 } from 'node:path';
import type { Writable } from 'node:stream';
import { type ArgsDef, defineCommand } from 'citty';
import { claudeDesktopConfigPath, installClaudeEntry } from '../../claude/desktop-config.ts';
import {
  type ClaudeServerEntry,
  checkEntryName,
  claudeEntryForSsh,
  claudeEntryForUrl,
  entryNameFromUrl,
  isCleartextRemote,
  mcpServersSnippet,
  type RelayLauncher,
} from '../../claude/entry.ts';
import { isBuilt, thisMachineLauncher } from '../../claude/launcher.ts';
import { RelayError } from '../../errors.ts';
import { collectRepeatedFlag } from '../flags.ts';
import { absolutePathIn, type CliIo, ioFrom } from '../io.ts';

const entryArgs = {
  url: {
    type: 'string',
    description: "the gateway's MCP URL, e.g. https://mcp.example.com/mcp/3d",
    valueHint: 'URL',
  },
  name: {
    type: 'string',
    description: 'the entry name Claude Desktop shows (default: from the URL or server)',
  },
  token: { type: 'string', description: 'the API key (default: a placeholder to replace)', valueHint: 'KEY' },
  ca: { type: 'string', description: 'connect: the CA file of the gateway certificate', valueHint: 'FILE' },
  cert: {
    type: 'string',
    description: 'connect: client certificate for mTLS (with --key)',
    valueHint: 'FILE',
  },
  key: { type: 'string', description: 'connect: the private key of --cert', valueHint: 'FILE' },
  proxy: { type: 'string', description: 'connect: HTTP proxy to tunnel through', valueHint: 'URL' },
  oauth: {
    type: 'boolean',
    description: 'the gateway signs users in with OAuth: no key in the entry, connect opens the browser',
  },
  'for-colleague': {
    type: 'boolean',
    description:
      'for another machine: run "mcp-relay" from its PATH (npm install -g), name no path of this one',
  },
  command: {
    type: 'enum',
    options: ['default', 'npx'],
    default: 'default',
    description: 'default: this machine\'s node + this install; npx: "npx -y mcp-relay"',
  },
  ssh: {
    type: 'string',
    description: 'SSH mode instead of --url: the office login, e.g. mcp@office',
    valueHint: 'USER@HOST',
  },
  server: { type: 'string', description: 'SSH mode: the server name in relay.yaml' },
  identity: { type: 'string', description: 'SSH mode: private key file', valueHint: 'FILE' },
  port: { type: 'string', description: 'SSH mode: the SSH port when it is not 22', valueHint: 'N' },
  'ssh-option': {
    type: 'string',
    description: 'SSH mode: an extra ssh -o option, e.g. UserKnownHostsFile=~/.ssh/office (repeatable)',
    valueHint: 'NAME=VALUE',
  },
} satisfies ArgsDef;

interface EntryArgs {
  url?: string | undefined;
  name?: string | undefined;
  token?: string | undefined;
  oauth?: boolean | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  proxy?: string | undefined;
  'for-colleague'?: boolean | undefined;
  command: string;
  ssh?: string | undefined;
  server?: string | undefined;
  identity?: string | undefined;
  port?: string | undefined;
}

const configCommand = defineCommand({
  meta: { name: 'config', description: 'Print a ready-to-paste Claude Desktop config for a gateway URL' },
  args: entryArgs,
  run({ args, rawArgs, data }) {
    const io = ioFrom(data);
    const { name, entry } = entryFromArgs(args, rawArgs, io);
    io.stdout.write(`${JSON.stringify(mcpServersSnippet(name, entry), null, 2)}\n`);
    warnAbout(args, io.stderr);
    return 0;
  },
});

const installCommand = defineCommand({
  meta: {
    name: 'install',
    description: "Add the entry to this user's claude_desktop_config.json (with a backup)",
  },
  args: {
    ...entryArgs,
    'config-path': {
      type: 'string',
      description: "Claude Desktop's config file (default: this platform's usual place)",
      valueHint: 'PATH',
    },
  },
  async run({ args, rawArgs, data }) {
    const io = ioFrom(data);
    if (args['for-colleague']) {
      throw new RelayError(
        'USAGE',
        '--for-colleague is for another machine: print it with "claude config --for-colleague" and send it',
      );
    }
    const { name, entry } = entryFromArgs(args, rawArgs, io);
    const given = args['config-path'];
    const path =
      given !== undefined && given !== ''
        ? absolutePathIn(io, given)
        : claudeDesktopConfigPath(process.platform, io.env);
    const result = await installClaudeEntry(path, name, entry);
    if (result.unchanged) {
      io.stdout.write(`"${name}" is already in ${path} as given; nothing to do.\n`);
      return 0;
    }
    const verb = result.replaced ? 'replaced' : 'added';
    io.stdout.write(`${verb} "${name}" in ${path}${result.created ? ' (new file)' : ''}\n`);
    if (result.backup) io.stdout.write(`previous file saved as ${result.backup}\n`);
    io.stdout.write('Restart Claude Desktop (quit it fully, then open it again) to load the change.\n');
    warnAbout(args, io.stderr);
    return 0;
  },
});

export const claudeCommand = defineCommand({
  meta: {
    name: 'claude',
    description:
      'Claude Desktop: print or install the config entry for mcp-relay, or write an extension bundle',
  },
  subCommands: {
    config: configCommand,
    install: installCommand,
    bundle: () => import('./claude-bundle.ts').then((m) => m.bundleCommand),
  },
});

function entryFromArgs(
  args: EntryArgs,
  rawArgs: readonly string[],
  io: CliIo,
): { name: string; entry: ClaudeServerEntry } {
  const sshOptions = collectRepeatedFlag(rawArgs, '--ssh-option');
  const connectArgs = connectFlags(args, io);
  if (args.ssh !== undefined && args.url !== undefined)
    throw new RelayError('USAGE', 'give either --url or --ssh, not both');
  let name: string;
  let entry: ClaudeServerEntry;
  if (args.ssh !== undefined) {
    if (args.server === undefined)
      throw new RelayError('USAGE', '--ssh needs --server NAME (the server in relay.yaml)');
    if (
      args.command !== 'default' ||
      args['for-colleague'] ||
      args.token !== undefined ||
      args.oauth ||
      connectArgs.length > 0
    ) {
      throw new RelayError(
        'USAGE',
        '--command, --for-colleague, --token, --oauth, --ca, --cert, --key and --proxy apply to --url entries; SSH mode authenticates with the ssh key',
      );
    }
    entry = claudeEntryForSsh({
      target: args.ssh,
      server: args.server,
      identity: args.identity,
      port: args.port === undefined ? undefined : Number(args.port),
      options: sshOptions,
    });
    name = args.name ?? args.server;
  } else {
    if (args.url === undefined)
      throw new RelayError('USAGE', '--url is required (or --ssh USER@HOST --server NAME)');
    if (
      args.server !== undefined ||
      args.identity !== undefined ||
      args.port !== undefined ||
      sshOptions.length > 0
    ) {
      throw new RelayError('USAGE', '--server, --identity, --port and --ssh-option apply to --ssh entries');
    }
    if (args.oauth && args.token !== undefined)
      throw new RelayError('USAGE', 'give either --token or --oauth, not both');
    entry = claudeEntryForUrl({
      url: args.url,
      token: args.token,
      oauth: args.oauth,
      clientCertificate: args.cert !== undefined,
      connectArgs,
      launcher: launcherFor(args),
    });
    name = args.name ?? entryNameFromUrl(args.url);
  }
  checkEntryName(name);
  return { name, entry };
}

function launcherFor(args: EntryArgs): RelayLauncher {
  if (args['for-colleague']) {
    if (args.command !== 'default')
      throw new RelayError('USAGE', 'give either --for-colleague or --command, not both');
    return { kind: 'path' };
  }
  return args.command === 'npx' ? { kind: 'npx' } : thisMachineLauncher();
}

/**
 * The `connect` flags the entry carries; files become absolute, since Claude Desktop's working folder
 * is unknown. For a colleague they name files on that machine, which only its user can make absolute.
 */
function connectFlags(args: EntryArgs, io: CliIo): string[] {
  if ((args.cert === undefined) !== (args.key === undefined))
    throw new RelayError('USAGE', '--cert and --key go together');
  const flags: string[] = [];
  for (const name of ['ca', 'cert', 'key'] as const) {
    const file = args[name];
    if (file === undefined) continue;
    if (!args['for-colleague']) {
      flags.push(`--${name}`, absolutePathIn(io, file));
      continue;
    }
    if (!posix.isAbsolute(file) && !win32.isAbsolute(file)) {
      throw new RelayError(
        'USAGE',
        `with --for-colleague, --${name} names a file on the colleague's machine: give its absolute path there (or use "claude bundle --ca", which carries the CA)`,
      );
    }
    flags.push(`--${name}`, file);
  }
  if (args.proxy !== undefined) flags.push('--proxy', args.proxy);
  return flags;
}

/** Hints on stderr, so stdout stays pure JSON for `claude config > file`. */
function warnAbout(args: EntryArgs, stderr: Writable): void {
  if (args.ssh !== undefined) {
    stderr.write(
      'note: on the office server, let the key in with "mcp-relay ssh authorize --user <name> --key-file <key>.pub".\n',
    );
  }
  if (args.url === undefined) return;
  if (args.token === undefined && !args.oauth && args.cert === undefined) {
    stderr.write(
      'note: MCP_RELAY_TOKEN holds a placeholder; replace it with a key from "mcp-relay keys create <user>" (or use --oauth).\n',
    );
  }
  if (isCleartextRemote(args.url)) {
    stderr.write('warning: the URL is plain http to another machine; the key would travel unencrypted.\n');
  }
  if (args['for-colleague']) {
    stderr.write(
      'note: the entry runs "mcp-relay" from PATH; on that machine install it first: npm install -g mcp-relay-<version>.tgz (made here by "npm pack").\n',
    );
  } else if (args.command === 'default' && !isBuilt()) {
    stderr.write('warning: this checkout is not built; run "npm run build" or the entry will not start.\n');
  }
}
