// Test helper: ports for servers a test starts later (nginx, HAProxy, sshd, Redis, a gateway it
// restarts), picked below the kernel's ephemeral range. A port the kernel handed out for `listen(0)`
// goes back to that range when closed, and the next `listen(0)` of any test running beside this one
// may take it before the intended server binds: nginx then failed to bind while a stranger answered on
// its port. Ports below the range are never handed out by the kernel, so only an explicit choice
// collides, and each choice is checked by binding it first.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The kernel's ephemeral range's first port (32768 where /proc does not say). */
function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    return Number(low) || 32_768;
  } catch {
    return 32_768;
  }
}

const LOWEST = 10_000;

/** Whether 127.0.0.1:`port` can be bound right now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A port on 127.0.0.1 that nobody listens on now and that the kernel will not hand to another
 * `listen(0)` or outgoing connection: a random one between 10000 and the ephemeral range's start.
 */
export async function freePort(): Promise<number> {
  const highest = ephemeralStart() - 1;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${LOWEST} and ${highest} after 100 tries`);
}
