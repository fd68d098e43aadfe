// Browser viewer server: serves the page, viewer.js and three.js over HTTP, and pushes the scene over a WebSocket.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';

const PUBLIC_DIR = new URL('./public/', import.meta.url);
const HEARTBEAT_MS = 30_000;
const JS = 'text/javascript; charset=utf-8';

// Every path the server answers, mapped to a file. A fixed list: nothing under node_modules is browsable.
// Page-relative paths only, so the page also works when a gateway serves it under a prefix like /apps/3d/.
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
 * @param {import('./scene.js').Scene} scene
 * @param {{ host: string, port: number, title: string, user?: string, log: (line: string) => void }} options
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function startViewer(scene, { host, port, title, user, log }) {
  const page = renderPage(await readFile(new URL('index.html', PUBLIC_DIR), 'utf8'), { title, user });
  const http = createServer((req, res) => serve(req, res, page));
  // The page sends nothing; a small limit keeps a misbehaving client from making the server buffer much.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 });

  http.on('upgrade', (req, socket, head) => {
    if (pathOf(req.url) !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.isAlive = true;
      ws.on('pong', () => {
        ws.isAlive = true;
      });
      ws.on('error', (error) => log(`viewer websocket error: ${error.message}`));
      ws.send(sceneMessage(scene.toJSON()));
    });
  });

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
  return { url: `http://${host}:${address.port}/`, close };
}

function serve(req, res, page) {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-cache');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  const path = pathOf(req.url);
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
