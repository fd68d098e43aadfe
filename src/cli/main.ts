// The CLI: commands are data (citty); each `run` calls library code and returns an exit code.
// main(argv, io) never calls process.exit and writes only through io, so tests can drive it
// in-process; bin/mcp-relay.js owns the exit.

import { type CommandDef, renderUsage, runCommand } from 'citty';
import { errorText, RelayError, type RelayErrorCode } from '../errors.ts';
import { VERSION } from '../version.ts';
import { type CliIo, processIo } from './io.ts';

const root: CommandDef = {
  meta: {
    name: 'mcp-relay',
    version: VERSION,
    description: 'Share stdio MCP servers from one office server (network gateway, local bridge, SSH mode).',
  },
  // Loaded on use: the gateway need not load the bridge's HTTP client, nor the bridge the gateway.
  subCommands: {
    serve: () => import('./commands/serve.ts').then((m) => m.serveCommand),
    connect: () => import('./commands/connect.ts').then((m) => m.connectCommand),
    keys: () => import('./commands/keys.ts').then((m) => m.keysCommand),
    claude: () => import('./commands/claude.ts').then((m) => m.claudeCommand),
    demo: () => import('./commands/demo.ts').then((m) => m.demoCommand),
    cluster: () => import('./commands/cluster.ts').then((m) => m.clusterCommand),
    deploy: () => import('./commands/deploy.ts').then((m) => m.deployCommand),
    ssh: () => import('./commands/ssh.ts').then((m) => m.sshCommand),
    doctor: () => import('./commands/doctor.ts').then((m) => m.doctorCommand),
    backends: () => import('./commands/backends.ts').then((m) => m.backendsCommand),
    status: () => import('./commands/status.ts').then((m) => m.statusCommand),
    'ssh-entry': () => import('./commands/ssh-entry.ts').then((m) => m.sshEntryCommand),
  },
};

/**
 * Runs the CLI with `argv` (without node and script) and resolves to the process exit code. `io` is
 * where commands read and write (default: this process's streams and environment).
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    io.stdout.write(`${await renderUsage(root)}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const help = await helpFor(argv);
  if (help !== undefined) {
    io.stdout.write(`${help}\n`);
    return 0;
  }
  const subCommands = (await resolve(root.subCommands)) as Record<string, CommandDef>;
  const [name, ...rest] = argv as [string, ...string[]];
  const command = subCommands[name];
  if (!command) {
    io.stderr.write(`mcp-relay: unknown command "${name}"; see mcp-relay --help\n`);
    return 2;
  }
  try {
    // Run the named command itself (not through root or its parent): citty hands neither the return
    // value of a subcommand back nor `data` (the io) down to it.
    const [leaf, leafArgs] = await leafCommand(await resolve(command), rest);
    const { result } = await runCommand(leaf, { rawArgs: leafArgs, data: io });
    return typeof result === 'number' ? result : 0;
  } catch (error) {
    return reportError(error, io);
  }
}

/**
 * The subcommand argv names (`keys list` → list) with the words after its name, found as citty finds
 * it. A group without a known subcommand comes back itself, so citty reports the error as it would.
 */
async function leafCommand(command: CommandDef, rawArgs: string[]): Promise<[CommandDef, string[]]> {
  const subs = (await resolve(command.subCommands)) as Record<string, CommandDef> | undefined;
  // Only argument-less groups (claude, keys, ssh): flags before the subcommand name take no value there.
  if (subs === undefined || command.args !== undefined || command.run !== undefined)
    return [command, rawArgs];
  const at = rawArgs.findIndex((word) => word === '--' || !word.startsWith('-'));
  const word = at === -1 ? undefined : rawArgs[at];
  if (word === undefined || word === '--' || !Object.hasOwn(subs, word)) return [command, rawArgs];
  return leafCommand(await resolve(subs[word] as CommandDef), rawArgs.slice(at + 1));
}

/** Usage text when argv asks for help (`cmd --help`, `cmd sub -h`), else undefined. */
async function helpFor(argv: readonly string[]): Promise<string | undefined> {
  const dashDash = argv.indexOf('--');
  const ours = dashDash === -1 ? argv : argv.slice(0, dashDash);
  if (!ours.includes('--help') && !ours.includes('-h')) return undefined;
  let command: CommandDef = root;
  let parent: CommandDef | undefined;
  for (const word of ours) {
    const subs = (await resolve(command.subCommands)) as Record<string, CommandDef> | undefined;
    const next = subs?.[word];
    if (!next) break;
    parent = command;
    command = await resolve(next);
  }
  return renderUsage(command, parent);
}

async function resolve<T>(value: T | Promise<T> | (() => T) | (() => Promise<T>)): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}

/** Errors in what the user asked for (flags, the config) exit with 2, like a usage error; others with 1. */
const USAGE_CODES: ReadonlySet<RelayErrorCode> = new Set([
  'USAGE',
  'CONFIG_INVALID',
  'CONFIG_NOT_FOUND',
  'CONFIG_ENV_UNSET',
]);

function reportError(error: unknown, io: CliIo): number {
  if (error instanceof RelayError) {
    io.stderr.write(`mcp-relay: ${error.message}\n`);
    return USAGE_CODES.has(error.code) ? 2 : 1;
  }
  // citty's own argument errors (unknown command, missing positional) arrive as plain errors.
  io.stderr.write(`mcp-relay: ${errorText(error)}\n`);
  if (io.env.MCP_RELAY_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
  return 1;
}
