// Test helpers for SSH mode: a real OpenSSH sshd on 127.0.0.1 with its own config, host key and
// authorized_keys in a temporary folder, ed25519 client keys, and the real ssh client.

import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { ClaudeServerEntry } from '../../src/claude/entry.ts';
import { type CliResult, runCli, runProcess } from './cli.ts';
import { freePort } from './ports.ts';

export const SSHD = '/usr/sbin/sshd';

export interface TestSshd {
  port: number;
  /** The account ssh logs in as: whoever runs the tests. */
  login: string;
  authorizedKeys: string;
  knownHosts: string;
  /** Everything sshd wrote on stderr so far (its -e log). */
  log(): string;
  close(): Promise<void>;
}

/** Why sshd cannot run here, or undefined when it can. */
export function sshdUnavailable(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} is missing (Debian package openssh-server)`;
  try {
    execFileSync('ssh', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'the ssh client is missing (Debian package openssh-client)';
  }
  if (process.getuid?.() !== 0)
    return 'sshd needs root here (its privilege separation); run the tests as root';
  return undefined;
}

/**
 * Starts sshd in `dir` (one per test file: it is the slow part). `extraConfig` lines go at the end
 * of its sshd_config, e.g. `AcceptEnv LANG LC_*` as distributions ship it.
 */
export async function startSshd(dir: string, extraConfig: readonly string[] = []): Promise<TestSshd> {
  // sshd insists on its privilege-separation folder when it runs as root.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test host', '-f', hostKey]);
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, '', { mode: 0o600 });
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      // Allowed by the server on purpose: the tests show that `restrict` on each key is what refuses it.
      'AllowTcpForwarding yes',
      'PermitTTY yes',
      'MaxStartups 50',
      'LogLevel VERBOSE',
      ...extraConfig,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config, '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const deadline = Date.now() + 15_000;
  while (!stderr.includes('Server listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`sshd did not start: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const knownHosts = join(dir, 'known_hosts');
  const hostPublic = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPublic}\n`);
  return {
    port,
    login: userInfo().username,
    authorizedKeys,
    knownHosts,
    log: () => stderr,
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A fresh ed25519 key pair; resolves with the private key's path (the public one is `<path>.pub`). */
export function makeClientKey(dir: string, name: string): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@laptop`, '-f', path]);
  return path;
}

/** ssh options every direct ssh call in the tests uses: strict host checking against our known_hosts. */
export function sshArgs(sshd: TestSshd, key: string): string[] {
  return [
    '-i',
    key,
    '-p',
    String(sshd.port),
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${sshd.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'IdentitiesOnly=yes',
  ];
}

/** Runs ssh to completion with stdin closed. */
export function runSsh(sshd: TestSshd, key: string, extra: readonly string[]): Promise<CliResult> {
  return runProcess('ssh', [...sshArgs(sshd, key), ...extra]);
}

/** Claude Desktop's entry for `server`, printed by `mcp-relay claude config --ssh …` for `key`. */
export async function printedSshEntry(
  sshd: TestSshd,
  key: string,
  server: string,
): Promise<ClaudeServerEntry> {
  const printed = await runCli([
    'claude',
    'config',
    '--ssh',
    `${sshd.login}@127.0.0.1`,
    '--identity',
    key,
    '--port',
    String(sshd.port),
    '--ssh-option',
    `UserKnownHostsFile=${sshd.knownHosts}`,
    '--server',
    server,
    '--name',
    'office',
  ]);
  assert.equal(printed.code, 0, printed.stderr);
  const entry = (JSON.parse(printed.stdout) as { mcpServers: Record<string, ClaudeServerEntry> }).mcpServers
    .office;
  assert.ok(entry);
  return entry;
}

export interface EntryClient {
  client: Client;
  /** What the entry's process wrote on stderr so far. */
  stderr(): string;
}

/**
 * Starts an entry as Claude Desktop does (command, args, env over a minimal env) and connects the SDK
 * client to its stdio. A failed connect rejects with an error that carries the stderr getter.
 */
export async function connectThroughEntry(entry: ClaudeServerEntry): Promise<EntryClient> {
  const transport = new StdioClientTransport({
    command: entry.command,
    args: [...entry.args],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...entry.env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name: 'claude-desktop-stand-in', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (error) {
    await client.close().catch(() => undefined);
    // stderr is a getter: it may still be arriving on its own pipe after stdout closed.
    throw Object.assign(new Error((error as Error).message), { stderr: () => stderr });
  }
  return { client, stderr: () => stderr };
}
