// Who may reach the viewer. A request must name the viewer's own address (Host), a WebSocket must
// come from the viewer's own page or from no browser at all (Origin), and every path carries a key
// made for this run. Otherwise any web page open in the user's browser (or one behind a DNS name
// rebound to 127.0.0.1) could read the scene, and so could any other account on the machine.
import { randomBytes, timingSafeEqual } from 'node:crypto';

const DEFAULT_PORTS = { 'http:': '80', 'https:': '443' };

/** A key given from outside (MCP_RELAY_APP_KEY): URL-safe and long enough to be unguessable. */
const GIVEN_KEY = /^[A-Za-z0-9_-]{22,128}$/;

/**
 * @param {{ host: string, port: number, publicUrl?: URL, key?: string }} where the viewer listens,
 *   where users reach it when something (a gateway) serves it under another address (APP_PUBLIC_URL),
 *   and the key to use instead of a new one (MCP_RELAY_APP_KEY: mcp-relay keeps it across restarts of
 *   one instance, so an open page and its link keep working when the server restarts)
 */
export function createViewerAccess({ host, port, publicUrl, key: given }) {
  if (given !== undefined && !GIVEN_KEY.test(given)) {
    throw new Error('MCP_RELAY_APP_KEY must be 22 to 128 URL-safe characters (A-Z a-z 0-9 _ -)');
  }
  const key = given ?? randomBytes(18).toString('base64url');
  const keyBytes = Buffer.from(key);
  // The viewer listens on loopback only, where "localhost" names the same place.
  const local = [host, 'localhost'].map((name) => new URL(`http://${name}:${port}/`));
  const places = publicUrl ? [...local, publicUrl] : local;
  const hosts = new Set(places.flatMap(hostForms));
  const origins = new Set(places.map((url) => url.origin));

  return {
    /** The Host header names this viewer (its loopback address, or the public URL's host). */
    hostAllowed: (value) => typeof value === 'string' && hosts.has(value.toLowerCase()),
    /** No Origin (not a browser), or the origin of a page this viewer serves. */
    originAllowed: (value) => value === undefined || origins.has(value.toLowerCase()),
    /**
     * The path below the key ("/", "/viewer.js", "/ws"), "" for the key alone (no trailing slash),
     * or undefined when the path does not start with this run's key.
     */
    pathUnderKey(path) {
      const end = path.indexOf('/', 1);
      const first = Buffer.from(end === -1 ? path.slice(1) : path.slice(1, end));
      if (first.length !== keyBytes.length || !timingSafeEqual(first, keyBytes)) return undefined;
      return end === -1 ? '' : path.slice(end);
    },
    /** The page's address under `base` (the loopback address or the public URL): base/<key>/. */
    pageUrl(base = local[0]) {
      const folder = new URL(base);
      folder.search = '';
      folder.hash = '';
      if (!folder.pathname.endsWith('/')) folder.pathname += '/';
      return new URL(`${key}/`, folder).href;
    },
    /** The loopback address without the key, for the log. */
    address: local[0].href,
  };
}

/** Host header values naming `url`'s host: with its port, and without it when that is the default. */
function hostForms(url) {
  const port = url.port || DEFAULT_PORTS[url.protocol];
  const forms = [`${url.hostname}:${port}`];
  if (port === DEFAULT_PORTS[url.protocol]) forms.push(url.hostname);
  return forms;
}

/**
 * APP_PUBLIC_URL as a URL, or undefined when unset. Anything but an http(s) URL is an error, so a typo
 * does not quietly lock users out.
 * @param {string | undefined} value
 */
export function parsePublicUrl(value) {
  if (!value) return undefined;
  let url;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new Error(`APP_PUBLIC_URL must be an http(s) URL, not ${JSON.stringify(value)}`);
  }
  return url;
}
