// Chooses how a new session reaches a backend, by the server's isolation mode.

import type { BackendPool } from '../backends/pool.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { UpstreamFactory } from '../sessions/manager.ts';
import { DirectLink } from './direct.ts';

export function createUpstreamFactory(config: RelayConfig, pool: BackendPool): UpstreamFactory {
  return async (server, session, downstream) => {
    const serverConfig = config.servers[server];
    if (!serverConfig) throw new Error(`unknown server ${server}`);
    const backend = await pool.spawn({ server, user: session.identity.user, session: session.id });
    const link = new DirectLink(backend, downstream, (pooled) => pool.release(pooled));
    backend.process.start();
    return link;
  };
}
