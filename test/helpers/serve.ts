// A real `mcp-relay serve` child process (from source, like the CLI tests), started with a config file
// and an environment, for tests that look at the gateway from outside: its /proc entries, its ports.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const RUN_CLI = fileURLToPath(new URL('../fixtures/run-cli.ts', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  pid: number;
  /** The TCP base URL from the startup line; undefined when the gateway has no TCP port. */
  url: string | undefined;
  /** Everything the gateway wrote on stderr so far (its startup line, then JSON log lines). */
  stderr(): string;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
}

/** Why a gateway that should have started did not: its exit code and what it said. */
export class ServeExit extends Error {
  readonly code: number | null;
  readonly stderr: string;

  constructor(code: number | null, stderr: string) {
    super(`the gateway exited (${code}):\n${stderr}`);
    this.code = code;
    this.stderr = stderr;
  }
}

/**
 * Runs `mcp-relay serve --config <file>` expecting it to refuse to start: resolves with its exit code
 * and stderr. A gateway that starts anyway is stopped, and the test fails rather than hang.
 */
export async function serveRefusal(file: string): Promise<{ code: number | null; stderr: string }> {
  try {
    const serve = await startServe(file);
    await serve.stop();
  } catch (error) {
    if (error instanceof ServeExit) return { code: error.code, stderr: error.stderr };
    throw error;
  }
  throw new Error('the gateway started instead of refusing');
}

/**
 * Starts `mcp-relay serve --config <file>` and resolves once it says where it listens; `cli` is how
 * mcp-relay is run (default: from source; an installed bin script for package tests).
 */
export async function startServe(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  cli: readonly [string, ...string[]] = [process.execPath, RUN_CLI],
): Promise<ServeProcess> {
  const [command, ...prefix] = cli;
  const child = spawn(command, [...prefix, 'serve', '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  let stderr = '';
  // 'close', not 'exit': by then all of stderr has been read.
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const started = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not start:\n${stderr}`));
    }, 20_000);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const line = /^mcp-relay gateway .*$/m.exec(stderr)?.[0];
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    void exited.then(([code]) => {
      clearTimeout(timer);
      reject(new ServeExit(code, stderr));
    });
  });
  return {
    child,
    pid: child.pid as number,
    url: /gateway at (http\S+)/.exec(started)?.[1],
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return (await exited)[0];
    },
  };
}
