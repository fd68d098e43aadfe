// The gateway's door for SSH attached mode: when `ssh.mode` is attached, the same request handler
// also listens on the `ssh.socket` Unix socket. Requests that arrive there are marked, and only
// marked requests may name their user in a header (the socket's permissions are the authentication).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { PRINCIPAL_NAME_RULE } from '../auth/principal-name.ts';
import { SOCKET_USER_HEADER, socketIdentity } from '../auth/socket-identity.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Identity } from '../sessions/types.ts';
import { slowClientTimeouts } from './server-options.ts';
import { listenOnUnixSocket, type UnixListener } from './unix-listener.ts';

/** Requests that came in on the socket; a TCP request can never get in here, whatever its headers. */
const socketRequests = new WeakSet<IncomingMessage>();

/** Listens on `ssh.socket` when the config runs SSH in attached mode; else undefined. */
export async function openSshSocket(
  config: RelayConfig,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  log: Logger,
): Promise<UnixListener | undefined> {
  const ssh = config.ssh;
  if (ssh?.mode !== 'attached' || ssh.socket === undefined) return undefined;
  const listener = await listenOnUnixSocket({
    path: ssh.socket,
    mode: ssh.socketMode,
    serverOptions: slowClientTimeouts(config),
    handler: (req, res) => {
      socketRequests.add(req);
      handler(req, res);
    },
  });
  log.info(
    { socket: ssh.socket, mode: `0${ssh.socketMode.toString(8)}` },
    'listening for ssh-entry (attached mode)',
  );
  return listener;
}

export type SocketCaller = { ok: true; identity: Identity } | { ok: false; message: string };

/** The caller of a socket request (or why it is refused); undefined for every request over TCP. */
export function socketCaller(req: IncomingMessage): SocketCaller | undefined {
  if (!socketRequests.has(req)) return undefined;
  const identity = socketIdentity(req.headers);
  return identity
    ? { ok: true, identity }
    : {
        ok: false,
        message: `the gateway socket needs a valid ${SOCKET_USER_HEADER} header (${PRINCIPAL_NAME_RULE})`,
      };
}
