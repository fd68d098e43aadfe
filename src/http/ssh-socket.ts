// The gateway's door for SSH attached mode: when `ssh.mode` is attached, the same request handler
// also listens on the `ssh.socket` Unix socket. Requests that arrive there are marked, and only
// marked requests may name their user in a header (the socket's permissions are the authentication),
// and requests another replica forwarded for such a caller over the signed hop.

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
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

/**
 * Requests another replica of the cluster forwarded for a caller of its own socket (cluster/peer-hop.ts,
 * only after the hop's signature, which covers that caller, held): the header values that named it there.
 */
const vouchedCallers = new WeakMap<IncomingMessage, IncomingHttpHeaders>();

/** Whether `req` came in on the socket: only then may its headers name the user (auth/identify.ts). */
export function isSocketRequest(req: IncomingMessage): boolean {
  return socketRequests.has(req);
}

/** Records the socket caller a signed hop carried for `req`, as the socket's own headers would name it. */
export function vouchSocketCaller(req: IncomingMessage, headers: IncomingHttpHeaders): void {
  vouchedCallers.set(req, headers);
}

/**
 * The headers that name the socket caller of `req` (`Caller.headers` with `viaSocket`): its own when it
 * came in on this gateway's socket, those a signed hop vouched for when it came in on another replica's;
 * undefined for any other request.
 */
export function socketCallerHeaders(req: IncomingMessage): IncomingHttpHeaders | undefined {
  return socketRequests.has(req) ? req.headers : vouchedCallers.get(req);
}
