// The record of SSH connections: one JSON line (pino, like the gateway's log) when a connection
// starts, ends or is refused, with user, server, mode, client address and duration. It goes to
// ssh.logFile when set, else stderr; stdout of ssh-entry carries nothing but protocol.

import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Logger, pino } from 'pino';
import { escapeUnicodeLineBreaks } from '../util/json-lines.ts';

export interface ConnectionFields {
  connection: string;
  user: string;
  groups: readonly string[];
  mode: 'standalone' | 'attached';
  /** `address:port` of the SSH client, from SSH_CONNECTION. */
  client: string | undefined;
  server?: string | undefined;
}

export interface ConnectionLog {
  readonly toFile: boolean;
  start(fields: ConnectionFields): void;
  end(fields: ConnectionFields & { durationMs: number; reason: string; exitCode: number }): void;
  refused(fields: ConnectionFields & { reason: string }): void;
  close(): void;
}

export function openConnectionLog(logFile: string | undefined): ConnectionLog {
  let fd = 2;
  if (logFile !== undefined) {
    mkdirSync(dirname(logFile), { recursive: true, mode: 0o750 });
    // Appends are atomic per line; 0640 lets an admin group read the record, nobody else.
    fd = openSync(logFile, 'a', 0o640);
  }
  // Synchronous: the process may end right after the last line, and that line is the important one.
  const destination = pino.destination({ fd, sync: true });
  const log: Logger = pino(
    // The reason of a refusal quotes what the client asked for: one record must stay one line.
    { name: 'mcp-relay-ssh', base: { pid: process.pid }, hooks: { streamWrite: escapeUnicodeLineBreaks } },
    destination,
  );
  return {
    toFile: logFile !== undefined,
    start: (fields) => log.info({ event: 'start', ...fields }, 'ssh connection started'),
    end: (fields) => log.info({ event: 'end', ...fields }, 'ssh connection ended'),
    refused: (fields) => log.warn({ event: 'refused', ...fields }, 'ssh connection refused'),
    close: () => {
      destination.flushSync();
      if (fd !== 2) closeSync(fd);
    },
  };
}

/** `SSH_CONNECTION` is "client_ip client_port server_ip server_port". */
export function clientAddress(sshConnection: string | undefined): string | undefined {
  const [address, port] = (sshConnection ?? '').trim().split(/\s+/);
  if (!address) return undefined;
  const host = address.includes(':') ? `[${address}]` : address;
  return port ? `${host}:${port}` : host;
}
