// A TCP relay between a client (`mcp-relay connect`) and a server (the gateway) whose faults the test
// controls: cut every connection, black-hole them (sockets stay open, bytes go nowhere), lose only the
// answers, slow them down, or refuse new connections. Listens on 127.0.0.1 only.
//
// A black hole is what a dead Wi-Fi or a NAT that forgot its mappings does: every connection open
// during it stays dead for good (bytes and closes go nowhere, in both directions, even after the
// heal), and only connections made after `setMode('pass')` get through again.

import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export type RelayMode = 'pass' | 'blackhole' | 'drop-replies' | 'refuse';

export interface FaultRelay {
  readonly port: number;
  /** `http://127.0.0.1:<port><path>` */
  url(path?: string): string;
  /** How the relay treats bytes from now on (and, for `refuse`, new connections). */
  setMode(mode: RelayMode): void;
  /** Delay each chunk by this many ms in both directions (0: none). */
  setDelay(ms: number): void;
  /** Destroys every open connection (a reset, as after a network cut or a NAT timeout). */
  cut(): void;
  /** Connections accepted so far, and those still open. */
  readonly accepted: number;
  readonly open: number;
  /** Bytes forwarded client → server and server → client. */
  readonly bytes: { up: number; down: number };
  close(): Promise<void>;
}

export async function startFaultRelay(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultRelay> {
  let mode: RelayMode = 'pass';
  let delayMs = 0;
  let accepted = 0;
  const bytes = { up: 0, down: 0 };
  const pairs = new Set<[Socket, Socket]>();
  /** Connections caught in a black hole: dead for good, until cut() or close() destroys them. */
  const stranded = new WeakSet<[Socket, Socket]>();

  const forward = (pair: [Socket, Socket], from: Socket, to: Socket, direction: 'up' | 'down') => {
    from.on('data', (chunk: Buffer) => {
      if (stranded.has(pair) || (mode === 'drop-replies' && direction === 'down')) return;
      const send = () => {
        if (to.destroyed) return;
        bytes[direction] += chunk.length;
        to.write(chunk);
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  };

  const server: Server = createServer((client) => {
    accepted++;
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream = tcpConnect(targetPort, targetHost);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    if (mode === 'blackhole') stranded.add(pair);
    const end = (socket: Socket) => {
      // A stranded connection's close reaches nobody: the other side keeps waiting.
      if (stranded.has(pair)) {
        socket.destroy();
        if (client.destroyed && upstream.destroyed) pairs.delete(pair);
        return;
      }
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of pair) {
      socket.on('error', () => end(socket));
      socket.on('close', () => end(socket));
    }
    forward(pair, client, upstream, 'up');
    forward(pair, upstream, client, 'down');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  const cut = () => {
    for (const [client, upstream] of pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    pairs.clear();
  };

  return {
    port,
    url: (path = '') => `http://127.0.0.1:${port}${path}`,
    setMode(next) {
      mode = next;
      if (next === 'blackhole') for (const pair of pairs) stranded.add(pair);
    },
    setDelay(ms) {
      delayMs = ms;
    },
    cut,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    bytes,
    close() {
      cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
