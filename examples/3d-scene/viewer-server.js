// Browser viewer server: serves the page, viewer.js and three.js over HTTP, and pushes the scene over a WebSocket.
// Everything lives under /<key>/ and answers only to the viewer's own Host and Origin (viewer-access.js).
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { createViewerAccess } from './viewer-access.js';

const PUBLIC_DIR = new URL('./public/', import.meta.url);
const HEARTBEAT_MS = 30_000;
const JS = 'text/javascript; charset=utf-8';

// Every path the server answers below its key, mapped to a file. A fixed list: nothing under node_modules
// is browsable. Page-relative paths only, so the page also works when a gateway serves it under a prefix
// like /apps/3d/, and the key in the page's own path comes along on every request, the WebSocket's too.
const STATIC_FILES = {
  '/viewer.js': { file: fileURLToPath(new URL('viewer.js', PUBLIC_DIR)), type: JS },
  '/vendor/three/three.module.js': { file: fileURLToPath(import.meta.resolve('three')), type: JS },
  '/vendor/three/three.core.js': {
    file: fileURLToPath(new URL('three.core.js', import.meta.resolve('three'))),
    type: JS,
  },
  '/vendor/three/OrbitControls.js': {
    file: fileURLToPath(import.meta.resolve('three/addons/controls/OrbitControls.js')),
    type: JS,
  },
};

/**
 * Starts the viewer on host:port (port 0 picks a free one). Rejects if the port cannot be bound.
 * `url` is the page's address with its key: under `publicUrl` when given (APP_PUBLIC_URL, where a
 * gateway serves the viewer), else on host:port. `address` is host:port without the key, for logs.
 * @param {import('./scene.js').Scene} scene
 * `key` replaces the key made per run (see viewer-access.js).
 * @param {{ host: string, port: number, publicUrl?: URL, key?: string, title: string, user?: string,
 *   log: (line: string) => void }} options
 * @returns {Promise<{ url: string, address: string, close: () => Promise<void> }>}
 */
export async function startViewer(scene, { host, port, publicUrl, key, title, user, log }) {
  const page = renderPage(await readFile(new URL('index.html', PUBLIC_DIR), 'utf8'), { title, user });
  // Handlers are added once the port, and so the address requests must name, is known.
  const http = createServer();
  // The page sends nothing; a small limit keeps a misbehaving client from making the server buffer much.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 });

  /** @param {ReturnType<typeof createViewerAccess>} access */
  const upgrade = (access, req, socket, head) => {
    if (!access.hostAllowed(req.headers.host)) return refuseUpgrade(socket, 421, 'Misdirected Request');
    if (!access.originAllowed(req.headers.origin)) return refuseUpgrade(socket, 403, 'Forbidden');
    if (access.pathUnderKey(pathOf(req.url)) !== '/ws') return refuseUpgrade(socket, 404, 'Not Found');
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.isAlive = true;
      ws.on('pong', () => {
        ws.isAlive = true;
      });
      ws.on('error', (error) => log(`viewer websocket error: ${error.message}`));
      ws.send(sceneMessage(scene.toJSON()));
    });
  };

  const onChange = (state) => {
    const message = sceneMessage(state);
    for (const ws of wss.clients) if (ws.readyState === WebSocket.OPEN) ws.send(message);
  };
  scene.on('change', onChange);

  // Pings keep idle proxies from cutting the socket and find browsers that vanished without closing.
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!ws.isAlive) ws.terminate();
      ws.isAlive = false;
      ws.ping();
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();

  try {
    await new Promise((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve(undefined);
      });
    });
  } catch (error) {
    scene.off('change', onChange);
    clearInterval(heartbeat);
    throw error;
  }
  http.on('error', (error) => log(`viewer server error: ${error.message}`));

  const address = /** @type {import('node:net').AddressInfo} */ (http.address());
  const access = createViewerAccess({ host, port: address.port, publicUrl, key });
  http.on('request', (req, res) => serve(req, res, page, access));
  http.on('upgrade', (req, socket, head) => upgrade(access, req, socket, head));

  let closing;
  const close = () => {
    closing ??= new Promise((resolve) => {
      scene.off('change', onChange);
      clearInterval(heartbeat);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      http.close(() => resolve(undefined));
      http.closeAllConnections();
    });
    return closing;
  };
  return { url: access.pageUrl(publicUrl), address: access.address, close };
}

function serve(req, res, page, access) {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-cache');
  // The page's address holds the key: it must not travel on in a Referer.
  res.setHeader('Referrer-Policy', 'no-referrer');
  if (!access.hostAllowed(req.headers.host)) {
    // Another name for this address (DNS rebinding): the page is not that site's to read.
    res.writeHead(421, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
    res.end('This viewer answers only to its own address.\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  const path = access.pathUnderKey(pathOf(req.url));
  if (path === undefined) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end("Not found. The viewer's address includes a key: ask for get_viewer_url.\n");
    return;
  }
  if (path === '') {
    // The key without its slash: relative URLs in the page need the folder form.
    const key = pathOf(req.url).slice(1);
    res.writeHead(301, { Location: `${key}/` }).end();
    return;
  }
  if (path === '/' || path === '/index.html') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(req.method === 'HEAD' ? '' : page);
    return;
  }
  const entry = STATIC_FILES[path];
  if (!entry) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not found\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': entry.type });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  createReadStream(entry.file)
    .on('error', () => res.destroy())
    .pipe(res);
}

/** Answers a refused WebSocket upgrade with a bare status line and closes the connection. */
function refuseUpgrade(socket, status, text) {
  socket.on('error', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function pathOf(url = '/') {
  return new URL(url, 'http://viewer.invalid').pathname;
}

function sceneMessage(state) {
  return JSON.stringify({ type: 'scene', scene: state });
}

/** Fills the page's {{title}} and {{user}} slots, HTML-escaped. */
function renderPage(template, { title, user }) {
  const slots = {
    title: escapeHtml(title),
    user: user ? escapeHtml(`user: ${user}`) : '',
  };
  return template.replace(/\{\{(title|user)\}\}/g, (_, key) => slots[key]);
}

function escapeHtml(text) {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}
