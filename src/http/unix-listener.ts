// A second front door of the gateway: HTTP on a local Unix socket for SSH attached mode. The socket
// is created with its final mode (0600/0660, never briefly wider), a stale socket left by a crashed
// gateway is replaced, a live one (another gateway) is refused, and close() removes only our own.

import { chmod, lstat, stat, unlink } from 'node:fs/promises';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { connect } from 'node:net';
import { RelayError } from '../errors.ts';

export interface UnixListenerOptions {
  path: string;
  /** 0o600 or 0o660. */
  mode: number;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Slow-client limits, as on the TCP listener. */
  serverOptions?: ServerOptions;
}

export interface UnixListener {
  readonly path: string;
  /** Stops accepting, drops connections, removes the socket file if it is still ours. Idempotent. */
  close(): Promise<void>;
}

/** sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

export async function listenOnUnixSocket(options: UnixListenerOptions): Promise<UnixListener> {
  const { path, mode } = options;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw refused(`the socket path ${path} is too long (at most ${MAX_SOCKET_PATH_BYTES} bytes)`);
  }
  await clearStaleSocket(path);
  const server: Server = createServer(options.serverOptions ?? {}, options.handler);
  const failed = (error: NodeJS.ErrnoException) =>
    refused(`cannot listen on ${path}: ${error.code ?? error.message}`);
  let onError: (error: NodeJS.ErrnoException) => void = () => {};
  await new Promise<void>((resolve, reject) => {
    onError = (error) => reject(failed(error));
    server.once('error', onError);
    // bind() runs synchronously inside listen(), so the umask set around it gives the socket its
    // mode from the first instant; the chmod below only makes it exact.
    const previous = process.umask(0o777 & ~mode);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(previous);
    }
  });
  server.off('error', onError);
  await chmod(path, mode);
  const created = await stat(path);
  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await stopped;
        // libuv already unlinks the path it bound; this covers the rest, and never removes a socket
        // another gateway has created there since.
        const now = await stat(path).catch(() => undefined);
        if (now && now.ino === created.ino && now.dev === created.dev)
          await unlink(path).catch(() => undefined);
      })();
      return closing;
    },
  };
}

/** Removes a socket nobody listens on; refuses when one does, or when the path is not a socket. */
async function clearStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw refused(`cannot use ${path} for the gateway socket: ${error.code ?? error.message}`);
  });
  if (!info) return;
  if (!info.isSocket())
    throw refused(`${path} exists and is not a socket; remove it or choose another ssh.socket`);
  const probe = await probeSocket(path);
  if (probe === 'live') {
    throw refused(
      `another gateway is already listening on ${path}; stop it first or choose another ssh.socket`,
    );
  }
  if (probe !== 'dead') throw refused(`cannot check the existing socket ${path}: ${probe}`);
  await unlink(path);
}

/** 'live' when something accepts, 'dead' when nothing listens (ECONNREFUSED), else the error code. */
function probeSocket(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED' ? 'dead' : (error.code ?? 'error'));
    });
  });
}

function refused(message: string): RelayError {
  return new RelayError('LISTEN_REFUSED', message);
}
