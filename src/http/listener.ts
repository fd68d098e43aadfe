// The gateway's listeners: TCP (HTTP, or HTTPS with certificate reloading and client certificates)
// and the SSH attached-mode socket, one request handler behind both; listening, the URL, and the
// steps of closing that the gateway's shutdown order calls between its own.

import {
  createServer as createHttpServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { serverOptions, superviseTls } from './server-options.ts';
import { openSshSocket } from './ssh-socket.ts';

export interface Listener {
  /** The base URL (scheme, host, port) once listening on TCP; throws before, or with `listen: false`. */
  readonly url: string;
  /** Opens the SSH socket (when configured), then TCP; the bound TCP address, undefined without TCP. */
  listen(): Promise<AddressInfo | undefined>;
  /** Stops accepting: TCP closes its idle connections, the SSH socket closes at once. Resolves when both are closed. */
  stopAccepting(): Promise<void>;
  /** Ends the TCP connections still open (once the sessions they carried are over). */
  dropConnections(): void;
  /** Stops watching the TLS files. */
  close(): void;
}

/** What answers upgrade requests (WebSocket) on TCP; without one, node answers them as plain requests. */
export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export function createListener(
  config: RelayConfig,
  handler: RequestListener,
  log: Logger,
  onUpgrade?: UpgradeListener,
): Listener {
  // listen: false: no TCP listener, the SSH attached-mode socket is the only way in (the schema insists on it).
  const tcp = config.listen === false ? undefined : config.listen;
  const tls = tcp?.tls;
  const scheme = tls ? 'https' : 'http';
  // Slow (slowloris) clients are cut off by limits.headersTimeout/receiveTimeout; SSE responses are not.
  const httpsServer = tls ? createHttpsServer(serverOptions(config), handler) : undefined;
  const server: Server | undefined = tcp
    ? (httpsServer ?? createHttpServer(serverOptions(config), handler))
    : undefined;
  if (server && onUpgrade) server.on('upgrade', onUpgrade);
  const tlsFiles = httpsServer ? superviseTls(httpsServer, config, log) : undefined;
  let address: AddressInfo | undefined;
  let sshSocket: Awaited<ReturnType<typeof openSshSocket>>;

  function url(): string {
    if (!tcp) throw new Error('the gateway has no TCP listener (listen: false)');
    if (!address) throw new Error('gateway is not listening');
    const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${scheme}://${hostPart}:${address.port}`;
  }

  return {
    get url() {
      return url();
    },
    async listen() {
      sshSocket = await openSshSocket(config, handler, log);
      if (!server || !tcp) return undefined;
      const { host, port } = tcp;
      return new Promise((resolve, reject) => {
        // The SSH socket opened above must not keep a gateway that failed to start alive.
        const failed = (error: Error) =>
          void (sshSocket?.close() ?? Promise.resolve()).then(() => reject(error));
        server.once('error', failed);
        server.listen(port, host, () => {
          server.off('error', failed);
          address = server.address() as AddressInfo;
          resolve(address);
        });
      });
    },
    async stopAccepting() {
      const stopped = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      server?.closeIdleConnections();
      // At once: an ssh-entry bridge would otherwise re-initialize here while sessions are closing.
      const socketClosed = sshSocket?.close();
      await stopped;
      await socketClosed;
    },
    dropConnections() {
      server?.closeAllConnections();
    },
    close() {
      tlsFiles?.close();
    },
  };
}
