// The listener other replicas forward to (cluster.peer.listen): a request or upgrade without a valid
// hop signature is refused (403) before anything else; a signed one goes through the gateway's own
// routes or upgrade listener (guards, authentication — of the client certificate the hop carries, if
// any — policy) and is served here, never forwarded again.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClusterConfig, RelayConfig } from '../config/schema.ts';
import { hostPort } from '../config/schema.ts';
import type { UpgradeListener } from '../http/listener.ts';
import { type Refusal, refuseSocket, sendRefusal } from '../http/refusal.ts';
import type { Logger } from '../log.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { Cluster } from './cluster.ts';
import { verifyHop } from './peer-hop.ts';

const UNSIGNED: Refusal = {
  status: 403,
  code: ErrorCode.Refused,
  message: 'not a signed request from a replica of this cluster',
};

export class PeerListener {
  readonly #config: ClusterConfig;
  readonly #server: Server;
  readonly #log: Logger;

  constructor(
    config: ClusterConfig,
    handle: RequestListener,
    upgrade: UpgradeListener,
    cluster: Cluster,
    log: Logger,
  ) {
    this.#config = config;
    this.#log = log;
    const signed = (req: IncomingMessage): boolean => {
      if (verifyHop(req, config.secret)) {
        cluster.forwardsReceived++;
        return true;
      }
      this.#log.warn(
        { address: req.socket.remoteAddress, path: req.url?.slice(0, 200) },
        'peer request without a valid signature; refused',
      );
      return false;
    };
    this.#server = createServer((req, res) => {
      if (signed(req)) handle(req, res);
      else sendRefusal(res, UNSIGNED);
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      if (signed(req)) upgrade(req, socket, head);
      else refuseSocket(socket, UNSIGNED);
    });
    // Forwarded SSE streams live as long as the client's.
    this.#server.requestTimeout = 0;
    this.#server.keepAliveTimeout = 65_000;
  }

  get address(): AddressInfo | undefined {
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address : undefined;
  }

  async listen(): Promise<void> {
    const address = hostPort(this.#config.peer.listen);
    if (!address) throw new Error(`cluster.peer.listen: not host:port: ${this.#config.peer.listen}`);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(address.port, address.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** A digest of the config that matters across replicas (servers and their policy), to show drift between them. */
export function configHash(config: RelayConfig): string {
  const shared = { servers: config.servers, limits: config.limits, auth: Object.keys(config.auth) };
  return createHash('sha256').update(JSON.stringify(shared)).digest('hex').slice(0, 12);
}
