// `admin.metrics.listen`: a second listener, loopback only (the schema refuses anything else), that
// serves GET /metrics without authentication for a Prometheus on the same machine, and nothing else.
// Its Host guard keeps web pages out through DNS rebinding, as on the main listener.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendJson } from '../http/replies.ts';
import { hostAllowed } from '../http/request-guards.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../observe/metrics.ts';
import { sendMetrics } from './admin-routes.ts';

export class MetricsListener {
  readonly #server: Server;
  readonly #address: { host: string; port: number };
  readonly #log: Logger;

  constructor(address: { host: string; port: number }, metrics: Metrics, log: Logger) {
    this.#address = address;
    this.#log = log;
    this.#server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (!hostAllowed(req.headers.host, true)) {
        sendJson(res, 421, { error: 'this listener answers only to loopback host names' });
      } else if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        sendJson(res, 404, { error: 'not found' });
      } else {
        sendMetrics(res, metrics).catch((error: unknown) => {
          this.#log.error({ err: (error as Error).message }, 'metrics not collected');
          if (!res.headersSent) sendJson(res, 500, { error: 'metrics not collected' });
          else res.end();
        });
      }
    });
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.#address;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    this.#log.info(
      { host: address.address, port: address.port },
      'metrics listening (no authentication, loopback)',
    );
    return address;
  }

  get address(): AddressInfo | undefined {
    return (this.#server.address() as AddressInfo | null) ?? undefined;
  }

  /** Stops listening and drops its connections. Idempotent. */
  close(): void {
    if (!this.#server.listening) return;
    this.#server.close();
    this.#server.closeAllConnections();
  }
}
