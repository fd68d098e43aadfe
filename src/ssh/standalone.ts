// Standalone SSH mode: the classic model, one server process per connection, its stdio joined to
// the SSH channel byte for byte. The process is started with the gateway's launch spec (allow-listed
// env, cwd, app port) over an environment the SSH client cannot set, and stopped the polite way when
// the client leaves: stdin end → SIGTERM → SIGKILL.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { BackendSpec } from '../backends/process.ts';

export interface RunOutcome {
  exitCode: number;
  /** Why the connection ended, for the connection log. */
  reason: string;
}

export interface StandaloneOptions {
  spec: BackendSpec;
  /** The SSH channel: what the client sends, where the server's answers go, and its stderr. */
  input: Readable;
  output: Writable;
  errors: Writable;
  /** Aborted when ssh-entry is asked to stop (SIGTERM, SIGHUP). */
  signal: AbortSignal;
  /** How long the server gets after stdin ends, and again after SIGTERM. Default 2 s. */
  graceMs?: number;
}

/**
 * Variables sshd sets itself for the forced command, after (so over) any the client sent: the only
 * ones in ssh-entry's environment the SSH client cannot choose. Everything else may have come from
 * the client: LANG and LC_* (sshd's usual `AcceptEnv LANG LC_*`), TZ, COLORTERM, TERM, or whatever
 * else an admin lets sshd accept.
 */
const SET_BY_SSHD = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL'] as const;

/**
 * A fixed UTF-8 locale, as MCP's stdio is UTF-8: the client's LANG is not the server's to take, and
 * without one some runtimes read stdin as ASCII. A server's `env` may set another.
 */
const STANDALONE_LANG = 'C.UTF-8';

/**
 * The environment a standalone server's allow-list and `envPassthrough` pick from: only what sshd
 * sets itself, and the fixed locale. sshd's environment is partly the SSH client's, so taking the
 * allow-list from it would let the client set the server's locale, time zone or more; what a server
 * needs beyond this its config's `env` must name.
 */
export function standaloneParentEnv(sshdEnv: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { LANG: STANDALONE_LANG };
  for (const name of SET_BY_SSHD) if (sshdEnv[name] !== undefined) env[name] = sshdEnv[name];
  return env;
}

export function runStandalone(options: StandaloneOptions): Promise<RunOutcome> {
  const { spec, input, output, errors, signal } = options;
  const graceMs = options.graceMs ?? 2_000;
  const child = spawn(spec.command, [...spec.args], {
    cwd: spec.cwd,
    env: spec.env,
    uid: spec.uid,
    gid: spec.gid,
    shell: false,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new Promise((resolve) => {
    let reason: string | undefined;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (outcome: RunOutcome) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      input.unpipe(child.stdin);
      resolve(outcome);
    };
    const stop = (why: string) => {
      if (reason !== undefined) return;
      reason = why;
      child.stdin.end();
      timers.push(
        setTimeout(() => {
          child.kill('SIGTERM');
          timers.push(setTimeout(() => child.kill('SIGKILL'), graceMs));
        }, graceMs),
      );
    };
    const onAbort = () => stop('ssh-entry was asked to stop');
    signal.addEventListener('abort', onAbort, { once: true });

    // A server that exits mid-write must not crash ssh-entry with EPIPE; its exit is reported below.
    child.stdin.on('error', () => undefined);
    input.pipe(child.stdin);
    input.once('end', () => stop('client closed the connection'));
    child.stdout.pipe(output, { end: false });
    child.stderr.pipe(errors, { end: false });
    output.once('error', () => stop('client went away'));

    child.once('error', (error: NodeJS.ErrnoException) => {
      errors.write(`mcp-relay: server ${spec.server} could not be started: ${error.code ?? error.message}\n`);
      finish({ exitCode: 127, reason: `server could not be started (${error.code ?? error.message})` });
    });
    // 'close', not 'exit': every byte the server wrote has then been passed on.
    child.once('close', (code, killedBy) => {
      const exitCode = code ?? 128 + (killedBy ? (constants.signals[killedBy] ?? 0) : 0);
      const how = code === null ? `signal ${killedBy}` : `code ${code}`;
      finish({ exitCode, reason: reason ?? `server exited (${how})` });
    });
    if (signal.aborted) onAbort();
  });
}
