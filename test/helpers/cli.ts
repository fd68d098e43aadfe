// Runs `mcp-relay <args>` from source in a child process, or in this process through main(argv, io),
// and captures stdout, stderr and exit code; starts the `connect` bridge with the SDK client on its stdio.

import { spawn } from 'node:child_process';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { main } from '../../src/cli/main.ts';

const RUN_CLI = fileURLToPath(new URL('../fixtures/run-cli.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return runProcess(process.execPath, [RUN_CLI, ...args], options);
}

/**
 * `runCli` without the child process: main() in this process, its output in buffers. stdin is empty
 * and already ended, as a spawned run's is; `env` replaces the environment the command sees.
 */
export async function runCliInProcess(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  const stdout = new TextSink();
  const stderr = new TextSink();
  const stdin = new PassThrough();
  stdin.end();
  const code = await main(args, {
    stdout,
    stderr,
    stdin,
    env: options.env ?? { ...process.env },
    cwd: options.cwd ?? process.cwd(),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** A stream that keeps what is written to it as text. */
class TextSink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    done();
  }
}

export function runProcess(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Only what the bridge needs: the parent's token and proxy variables must not leak into it. */
export const BRIDGE_BASE_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };

export interface Bridged {
  client: Client;
  /** What the bridge wrote on stderr so far. */
  stderr(): string;
  close(): Promise<void>;
}

/**
 * Starts `mcp-relay connect <url> …args` as Claude Desktop would (its stdio, a minimal environment plus
 * `env`) and connects the official SDK client through it. A failed connect carries the bridge's stderr.
 */
export function connectThroughBridge(
  url: string,
  options: { args?: readonly string[]; env?: Record<string, string> } = {},
): Promise<Bridged> {
  return connectOverStdio({
    command: process.execPath,
    args: [RUN_CLI, 'connect', url, ...(options.args ?? [])],
    env: { ...BRIDGE_BASE_ENV, ...options.env },
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
  });
}

/**
 * Starts any command line as Claude Desktop starts an MCP server (its stdio, exactly `env`) and connects
 * the official SDK client through it: an installed `mcp-relay`, an unpacked extension bundle.
 */
export async function connectOverStdio(launch: {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd: string;
}): Promise<Bridged> {
  const transport = new StdioClientTransport({
    command: launch.command,
    args: [...launch.args],
    env: launch.env,
    cwd: launch.cwd,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const client = new Client({ name: 'test-client', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (error) {
    await transport.close();
    throw Object.assign(new Error(`${(error as Error).message}\n${stderr}`), { stderr });
  }
  return { client, stderr: () => stderr, close: () => client.close() };
}
