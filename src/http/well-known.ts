// RFC 9728 protected resource metadata at `/.well-known/oauth-protected-resource` (the gateway) and
// `/.well-known/oauth-protected-resource/mcp/<name>` (one server): public, unauthenticated, readable
// from any web origin (browser-based MCP clients discover the authorization server through it).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProtectedResource } from '../auth/protected-resource.ts';
import { sendJson } from './replies.ts';

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, OPTIONS',
  'access-control-allow-headers': 'mcp-protocol-version',
};

/** The handler of the metadata row (every path under PRM_PATH): the document, 404 when there is none here. */
export function resourceMetadata(resource: ProtectedResource | undefined) {
  return function serveResourceMetadata(req: IncomingMessage, res: ServerResponse, path: string): void {
    const metadata = resource?.metadataFor(path);
    if (!metadata) {
      sendJson(res, 404, {
        error: resource ? 'no protected resource here' : 'this gateway does not use OAuth',
      });
      return;
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...CORS, 'access-control-max-age': '86400' }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET, OPTIONS' });
      return;
    }
    sendJson(res, 200, metadata, { ...CORS, 'cache-control': 'public, max-age=300' });
  };
}
