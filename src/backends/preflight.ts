// What can be known about a server's launch without starting it: whether its command resolves (on the
// PATH the backend gets, or as a path), whether the script its args name exists, and a fingerprint of
// those files that changes when an admin installs or fixes one (the supervisor's lockout ends on it).

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, resolve } from 'node:path';
import type { ServerConfig } from '../config/schema.ts';

/** Where spawn looks when the backend's environment has no PATH (libuv's default). */
const DEFAULT_PATH = '/usr/bin:/bin';
/** Arguments that name a file to run, by their extension. */
const SCRIPT = /\.(?:[cm]?js|[cm]?ts|py|rb|pl|php|sh|jar)$/i;
/** Interpreter flags after which the code is inline, so no later argument is the script (node -e, python -c/-m). */
const INLINE_CODE = new Set(['-e', '--eval', '-p', '--print', '-c', '-m']);

export interface LaunchProblem {
  level: 'error' | 'warning';
  message: string;
}

/** The launch inputs of one server, as the backend gets them. */
export interface LaunchInputs {
  command: string;
  args: readonly string[];
  /** Absolute (the config resolves it against its file's folder). */
  cwd: string;
  /** The PATH the backend's environment carries: spawn resolves a bare command on it. */
  path: string | undefined;
}

/**
 * What a configured command runs: a bare `node` is the Node that runs mcp-relay (process.execPath), not
 * the first `node` on a PATH that under sshd or systemd is minimal and may hold an older one or none.
 * Another Node is named by its full path.
 */
export function commandToRun(command: string): string {
  return command === 'node' ? process.execPath : command;
}

/** A server's launch inputs, with the PATH its environment will carry (its own `env.PATH` first). */
export function launchInputs(config: ServerConfig, parentEnv: NodeJS.ProcessEnv): LaunchInputs {
  return {
    command: commandToRun(config.command),
    args: config.args,
    cwd: config.cwd ?? process.cwd(),
    path: config.env.PATH ?? parentEnv.PATH,
  };
}

/** The executable `command` names: a path (against `cwd`) or the first match on PATH; undefined when none. */
export function resolveCommand(inputs: LaunchInputs): string | undefined {
  const { command, cwd } = inputs;
  if (command.includes('/')) {
    const path = isAbsolute(command) ? command : resolve(cwd, command);
    return executable(path) ? path : undefined;
  }
  for (const dir of (inputs.path ?? DEFAULT_PATH).split(delimiter)) {
    // An empty PATH entry means the current directory, which for the child is its cwd.
    const path = resolve(cwd, dir, command);
    if (executable(path)) return path;
  }
  return undefined;
}

/**
 * The script file the args name, resolved against the cwd: the first argument with a script extension
 * (`node server.js`, `uv run server.py`, `npx tsx src/index.ts`), unless inline code comes first (`-e`, `-c`, `-m`).
 */
export function scriptPath(inputs: LaunchInputs): string | undefined {
  for (const arg of inputs.args) {
    if (INLINE_CODE.has(arg)) return undefined;
    if (!arg.startsWith('-') && SCRIPT.test(arg)) return resolve(inputs.cwd, arg);
  }
  return undefined;
}

/** What is wrong with a launch before it is tried: each a message an admin can act on. */
export function launchProblems(inputs: LaunchInputs): LaunchProblem[] {
  const problems: LaunchProblem[] = [];
  if (!isDirectory(inputs.cwd)) {
    problems.push({ level: 'error', message: `cwd ${inputs.cwd} is not a directory` });
    return problems;
  }
  if (resolveCommand(inputs) === undefined) {
    const words = inputs.command.trim().split(/\s+/);
    const [program, ...rest] = words;
    if (rest.length > 0 && program !== undefined) {
      problems.push({
        level: 'error',
        message: `command "${inputs.command}" has its arguments in it; a command is run without a shell, so write command: ${program} and args: ${JSON.stringify(rest)}`,
      });
    } else {
      problems.push({
        level: 'error',
        message: inputs.command.includes('/')
          ? `command ${inputs.command} does not exist or is not executable`
          : `command "${inputs.command}" is not found on the backend's PATH (${inputs.path ?? DEFAULT_PATH}); give its full path, or set env.PATH`,
      });
    }
  }
  const script = scriptPath(inputs);
  if (script !== undefined && !isFile(script)) {
    problems.push({
      level: 'error',
      message: `script ${script} (from args, relative to cwd) does not exist`,
    });
  }
  return problems;
}

/**
 * A string that changes when the files the launch depends on appear, disappear or are replaced: the
 * command, the script, the cwd. Cheap (a few stat calls), so it may be read at each refused request.
 */
export function launchFingerprint(inputs: LaunchInputs): string {
  const command = resolveCommand(inputs);
  const script = scriptPath(inputs);
  return [
    `cwd:${isDirectory(inputs.cwd)}`,
    `command:${command ?? 'missing'}:${fileVersion(command)}`,
    `script:${fileVersion(script)}`,
  ].join('|');
}

function fileVersion(path: string | undefined): string {
  if (path === undefined) return '-';
  try {
    const stat = statSync(path);
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
