// Helpers for tests of browser-facing apps: launching a real Chromium, and a path-prefix proxy like the gateway's.
import { existsSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Launches headless Chromium with software WebGL (SwiftShader), which works without a GPU. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: install it (apt-get install chromium) or set CHROMIUM_PATH.`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
    ],
  });
}

export interface PrefixProxy {
  /** Where the app appears, e.g. http://127.0.0.1:PORT/apps/3d/ */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `target` under `prefix` (e.g. "/apps/3d/"), HTTP and WebSocket upgrades alike, stripping the prefix
 * on the way in, so a test can prove an app's page uses only relative URLs.
 */
export async function startPrefixProxy(prefix: string, target: URL): Promise<PrefixProxy> {
  const tunnels = new Set<Duplex>();
  const upstreamPath = (url = '/'): string | undefined =>
    url.startsWith(prefix) ? `/${url.slice(prefix.length)}` : undefined;

  const server = createServer((req, res) => {
    const path = upstreamPath(req.url);
    if (path === undefined) {
      res.writeHead(404).end();
      return;
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });

  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    const path = upstreamPath(req.url);
    if (path === undefined) {
      socket.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${path} HTTP/1.1`];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    for (const end of [socket, upstream]) {
      tunnels.add(end);
      end.on('error', () => undefined);
      end.on('close', () => {
        tunnels.delete(end);
        socket.destroy();
        upstream.destroy();
      });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const end of tunnels) end.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
