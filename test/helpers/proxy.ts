// A real forward proxy (the `proxy` package) on 127.0.0.1 for tests of the bridge and doctor behind a
// corporate proxy.

import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProxy, type ProxyServer } from 'proxy';

/** A real forward proxy on 127.0.0.1 that records the CONNECT targets it tunnels. */
export async function startProxy(options: { refuse?: boolean } = {}): Promise<{
  url: string;
  tunnels: string[];
  close(): Promise<void>;
}> {
  const proxy: ProxyServer = createProxy(createServer());
  if (options.refuse) proxy.authenticate = () => false; // answers 407
  const tunnels: string[] = [];
  proxy.on('connect', (req: IncomingMessage) => tunnels.push(req.url ?? ''));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels,
    close: () =>
      new Promise((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  };
}
