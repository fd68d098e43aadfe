// Attached SSH mode: the connection becomes an ordinary session of the running gateway. The connect
// bridge speaks Streamable HTTP over the gateway's Unix socket, naming the user in a header that only
// the socket listener honours; isolation, limits, policy and audit are the gateway's, unchanged.

import { once } from 'node:events';
import { connect } from 'node:net';
import { type Readable, Transform, type Writable } from 'node:stream';
import { SOCKET_GROUPS_HEADER, SOCKET_USER_HEADER } from '../auth/socket-identity.ts';
import { createBridge } from '../connect/bridge.ts';
import type { BridgeLog } from '../connect/diagnostics.ts';
import { RelayError } from '../errors.ts';
import { isRequestId } from '../protocol/mcp.ts';
import type { RunOutcome } from './standalone.ts';

export interface AttachedOptions {
  socketPath: string;
  server: string;
  user: string;
  groups: readonly string[];
  input: Readable;
  output: Writable;
  log: BridgeLog;
  /** Aborted when ssh-entry is asked to stop (SIGTERM, SIGHUP). */
  signal: AbortSignal;
}

/** Refuses at once, with the reason, when the socket is missing, dead or not ours to use. */
export async function checkGatewaySocket(socketPath: string): Promise<void> {
  const socket = connect(socketPath);
  try {
    await once(socket, 'connect');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EACCES'
        ? `no permission to use the gateway socket ${socketPath} (see ssh.socketMode and its group)`
        : code === 'ENOENT' || code === 'ECONNREFUSED'
          ? `the gateway is not running (nothing listens on ${socketPath}); start "mcp-relay serve" or use ssh.mode standalone`
          : `cannot reach the gateway socket ${socketPath}: ${code ?? 'error'}`;
    throw new RelayError('SSH_REFUSED', why);
  } finally {
    socket.destroy();
  }
}

export async function runAttached(options: AttachedOptions): Promise<RunOutcome> {
  const watch = watchInitialize();
  options.input.pipe(watch.input);
  watch.output.pipe(options.output);
  // The bridge learns of a closed stdout through its output stream's error, as it would on stdout itself.
  options.output.on('error', (error) => watch.output.destroy(error));
  const bridge = createBridge({
    url: `http://localhost/mcp/${encodeURIComponent(options.server)}`,
    socketPath: options.socketPath,
    headers: {
      [SOCKET_USER_HEADER]: options.user,
      ...(options.groups.length > 0 ? { [SOCKET_GROUPS_HEADER]: options.groups.join(',') } : {}),
    },
    input: watch.input,
    output: watch.output,
    log: options.log,
  });
  let reason = 'client closed the connection';
  let exitCode = 0;
  const stop = () => void bridge.close();
  options.signal.addEventListener('abort', () => {
    reason = 'ssh-entry was asked to stop';
    stop();
  });
  watch.refused.then((message) => {
    // The client already has the error as the answer to its initialize; the connection is over.
    reason = `refused by the gateway: ${message}`;
    exitCode = 1;
    stop();
  });
  await bridge.closed;
  options.input.unpipe(watch.input);
  watch.output.end();
  await Promise.race([
    // Flushes the last answers (a refusal) to stdout; a broken stdout has nothing left to flush.
    once(watch.output, 'end').catch(() => undefined),
    new Promise((resolve) => setTimeout(resolve, 1_000).unref()),
  ]);
  return { exitCode, reason };
}

interface InitializeWatch {
  input: Transform;
  output: Transform;
  /** Resolves with the error message when the gateway answers the client's initialize with an error. */
  refused: Promise<string>;
}

/**
 * Looks at lines only until the first initialize is answered, then passes bytes through untouched:
 * enough to tell a refused session (over the limit, not allowed) from a normal one.
 */
function watchInitialize(): InitializeWatch {
  let initializeId: string | number | undefined;
  let watching = true;
  let resolveRefused: (message: string) => void = () => {};
  const refused = new Promise<string>((resolve) => {
    resolveRefused = resolve;
  });
  const input = lineTap((message) => {
    if (message.method === 'initialize' && isRequestId(message.id)) {
      initializeId = message.id;
      return false;
    }
    return watching;
  });
  const output = lineTap((message) => {
    if (initializeId === undefined || message.id !== initializeId) return true;
    watching = false;
    const error = message.error as { message?: unknown } | undefined;
    if (error !== undefined) resolveRefused(typeof error.message === 'string' ? error.message : 'refused');
    return false;
  });
  return { input, output, refused };
}

/** A pass-through stream that shows each JSON line to `look` until it returns false. */
function lineTap(look: (message: Record<string, unknown>) => boolean): Transform {
  let watching = true;
  let partial = '';
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (watching) {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (!watching) break;
          watching = look(parseObject(line));
        }
        if (!watching || partial.length > 1_048_576) partial = '';
      }
      callback(null, chunk);
    },
  });
}

function parseObject(line: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}
