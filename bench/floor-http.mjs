// The floor for one loopback HTTP round trip: a bare node:http server (keep-alive) that answers the
// few Streamable HTTP messages the drivers send — initialize, notifications, tools/call echo — itself,
// with no backend and no framework. Plain .mjs so that its RSS is node's and nothing else's.
//   node bench/floor-http.mjs <port>

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);

function reply(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function answer(message) {
  switch (message.method) {
    case 'initialize':
      return {
        protocolVersion: message.params?.protocolVersion ?? '2025-06-18',
        capabilities: { tools: {} },
        serverInfo: { name: 'floor-http', version: '1.0.0' },
      };
    case 'tools/list':
      return { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] };
    case 'tools/call':
      return { content: [{ type: 'text', text: String(message.params?.arguments?.text ?? '') }] };
    case 'ping':
      return {};
    default:
      return undefined;
  }
}

const server = createServer((req, res) => {
  if (req.method === 'DELETE') {
    res.writeHead(204).end();
    return;
  }
  if (req.method !== 'POST') {
    // No server→client stream: clients treat 405 as "this server has none".
    res.writeHead(405, { allow: 'POST, DELETE' }).end();
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let message;
    try {
      message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      reply(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
      return;
    }
    if (message.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    const result = answer(message);
    const body =
      result === undefined
        ? { jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'method not found' } }
        : { jsonrpc: '2.0', id: message.id, result };
    reply(res, 200, body, message.method === 'initialize' ? { 'mcp-session-id': randomUUID() } : {});
  });
});

server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stderr.write(`floor-http listening on ${server.address().port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
