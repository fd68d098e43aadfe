// The peer hop's WebSocket tunnel on loopback, without Redis: an upgrade sent on to an "owner" arrives
// signed (verifyHop holds, and marks it as come over the hop), frames cross both ways unchanged and the
// owner's close code reaches the client; a hop signed with another secret is not taken; an owner that refuses
// the connection gets the client a 503 with Retry-After, and the caller hears of it. A forwarded POST
// whose owner takes it and then dies is answered 502 "may have run", which a `connect` bridge does not
// send again; a GET is answered 503 (a stream runs nothing). A slow owner is waited for (no headers or
// body timer on the hop), and a forwarded stream whose client stopped reading and left is finished. A
// caller of the landing replica's SSH socket travels signed and is mapped by the owner as its own
// socket's; a TCP request carries none, and a caller changed, added or taken off after signing is refused. An owner that
// answers the upgrade with 503 itself (it does not own the backend) has its answer passed on unchanged,
// and the caller hears of it.

import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Duplex, PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Agent } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import {
  CERTIFICATE_HEADER,
  cameOverHop,
  forwardOverHop,
  SOCKET_CALLER_HEADER,
  tunnelOverHop,
  verifyHop,
} from '../src/cluster/peer-hop.ts';
import type { RelayConfig } from '../src/config/schema.ts';
import { createBridge } from '../src/connect/bridge.ts';
import { statusError } from '../src/connect/errors.ts';
import { refuseSocket } from '../src/http/refusal.ts';
import { openSshSocket, socketCallerHeaders } from '../src/http/ssh-socket.ts';
import { silentLogger } from '../src/log.ts';
import { ErrorCode } from '../src/protocol/jsonrpc.ts';
import { INITIALIZE, rawPost } from './helpers/gateway.ts';
import { freePort } from './helpers/ports.ts';
import { eventually } from './helpers/wait.ts';
import { refusedUpgrade } from './helpers/ws-client.ts';

const SECRET = 'a-cluster-secret-of-at-least-32-chars!';

/** An HTTP server on 127.0.0.1 whose upgrades go to `upgrade`; its base URL. */
async function upgradeServer(
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', upgrade);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A list of servers the enclosing suite closes (connections and all) when it ends. */
function closedAfter(): Server[] {
  const servers: Server[] = [];
  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
  return servers;
}

describe('tunnelOverHop', () => {
  const servers = closedAfter();

  it('sends the upgrade on signed, pipes frames both ways, and passes the owner’s close code', async () => {
    const seen: Array<{ signed: boolean; overHop: boolean; authorization: string | undefined }> = [];
    const echo = new WebSocketServer({ noServer: true });
    const owner = await upgradeServer((req, socket, head) => {
      const signed = verifyHop(req, SECRET);
      seen.push({ signed, overHop: cameOverHop(req), authorization: req.headers.authorization });
      echo.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data) => {
          if (String(data) === 'bye') ws.close(4000, 'owner says bye');
          else ws.send(`owner: ${String(data)}`);
        });
      });
    });
    const landing = await upgradeServer((req, socket, head) =>
      tunnelOverHop(req, socket, head, { peerUrl: owner.url, origin: 'r2', secret: SECRET }),
    );
    servers.push(owner.server, landing.server);
    const client = new WebSocket(`${landing.url.replace('http', 'ws')}/ws/mine`, 'mcp', {
      headers: { authorization: 'Bearer the-users-key' },
    });
    await new Promise((resolve, reject) => {
      client.once('open', resolve);
      client.once('error', reject);
    });
    assert.equal(client.protocol, 'mcp');
    const reply = new Promise((resolve) => client.once('message', (data) => resolve(String(data))));
    client.send('hello');
    assert.equal(await reply, 'owner: hello');
    const closed = new Promise<[number, string]>((resolve) =>
      client.once('close', (code, reason) => resolve([code, String(reason)])),
    );
    client.send('bye');
    assert.deepEqual(await closed, [4000, 'owner says bye']);
    // The credential travelled with the upgrade, for the owner to authenticate again.
    assert.deepEqual(seen, [{ signed: true, overHop: true, authorization: 'Bearer the-users-key' }]);
  });

  it('is not taken by an owner for a hop signed with another secret', async () => {
    let signed: boolean | undefined;
    const owner = await upgradeServer((req, socket) => {
      signed = verifyHop(req, SECRET);
      socket.destroy();
    });
    const landing = await upgradeServer((req, socket, head) =>
      tunnelOverHop(req, socket, head, {
        peerUrl: owner.url,
        origin: 'r2',
        secret: 'not-this-clusters-secret-but-32-chars',
      }),
    );
    servers.push(owner.server, landing.server);
    await refusedUpgrade(`${landing.url.replace('http', 'ws')}/ws/mine`).catch(() => undefined);
    assert.equal(signed, false);
  });

  it('answers 503 with Retry-After when the owner refuses the connection', async () => {
    const deadPort = await freePort();
    let failed = 0;
    const landing = await upgradeServer((req, socket, head) =>
      tunnelOverHop(req, socket, head, {
        peerUrl: `http://127.0.0.1:${deadPort}`,
        origin: 'r2',
        secret: SECRET,
        onfailed: () => failed++,
      }),
    );
    servers.push(landing.server);
    const refused = await refusedUpgrade(`${landing.url.replace('http', 'ws')}/ws/mine`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '3');
    assert.match(refused.body, /placed again within seconds/);
    assert.equal(failed, 1);
  });

  it('passes an owner’s 503 on and tells the caller, so a stale placement is forgotten', async () => {
    const owner = await upgradeServer((req, socket) => {
      verifyHop(req, SECRET);
      refuseSocket(socket, {
        status: 503,
        code: ErrorCode.BackendUnavailable,
        message: 'this server has just moved to another replica; try again',
        headers: { 'retry-after': '1' },
      });
    });
    let failed = 0;
    const landing = await upgradeServer((req, socket, head) =>
      tunnelOverHop(req, socket, head, {
        peerUrl: owner.url,
        origin: 'r2',
        secret: SECRET,
        onfailed: () => failed++,
      }),
    );
    servers.push(owner.server, landing.server);
    const refused = await refusedUpgrade(`${landing.url.replace('http', 'ws')}/ws/mine`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.match(refused.body, /moved to another replica/);
    assert.equal(failed, 1);
  });
});

/** An HTTP server on 127.0.0.1 answering with `handle`; its base URL. */
async function httpServer(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * A landing replica that forwards every request to `peerUrl` over the hop (its body read first, as the
 * fronts do); `open` counts the forwards whose handler has not finished.
 */
async function landingFor(peerUrl: string) {
  let open = 0;
  const landing = await httpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = req.method === 'POST' ? Buffer.concat(chunks) : undefined;
      open++;
      void forwardOverHop(req, res, {
        peerUrl,
        origin: 'r2',
        secret: SECRET,
        ...(body === undefined ? {} : { body }),
      }).finally(() => open--);
    });
  });
  return { ...landing, open: () => open };
}

describe('forwardOverHop', () => {
  const servers = closedAfter();

  it('answers a POST whose owner died after taking it "may have run" (502), which connect does not send again', async () => {
    let received = 0;
    // The owner takes the request, then dies before answering: its connection is reset.
    const owner = await httpServer((req) => {
      received++;
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
    const landing = await landingFor(owner.url);
    servers.push(owner.server, landing.server);
    const call = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'pay' } });
    const reply = await fetch(`${landing.url}/mcp/fx`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: call,
    });
    const answer = (await reply.json()) as { id: unknown; error: { code: number; message: string } };
    assert.equal(reply.status, 502);
    assert.equal(reply.headers.get('retry-after'), null);
    assert.equal(answer.id, 7);
    assert.equal(answer.error.code, ErrorCode.BackendUnavailable);
    assert.match(answer.error.message, /outcome is unknown and it may have run/);
    assert.equal(received, 1);
    // How connect reads that answer: the gateway may have acted on it, so it is never sent again.
    const read = statusError(reply.status, { peer: 'gateway', displayUrl: landing.url });
    assert.equal(read.unsent, false);
  });

  it('gets a connect bridge’s tool call answered "outcome unknown", not sent again, when the owner dies after taking it', async () => {
    let calls = 0;
    const owner = await httpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.method !== 'POST') {
          res.writeHead(req.method === 'DELETE' ? 200 : 405).end();
          return;
        }
        const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: number; method: string };
        if (message.method === 'tools/call') {
          calls++;
          req.socket.destroy(); // took the call, then died
        } else if (message.id === undefined) res.writeHead(202).end();
        else {
          const result = {
            protocolVersion: '2025-11-25',
            capabilities: { tools: {} },
            serverInfo: { name: 'o', version: '1' },
          };
          res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'r1.s' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
        }
      });
    });
    const landing = await landingFor(owner.url);
    servers.push(owner.server, landing.server);
    const input = new PassThrough();
    const output = new PassThrough();
    const bridge = createBridge({ url: `${landing.url}/mcp/fx`, input, output, retryDelaysMs: [20, 20, 20] });
    const answers = new Map<unknown, { error?: { message: string } }>();
    createInterface({ input: output }).on('line', (line) => {
      const answer = JSON.parse(line) as { id: unknown; error?: { message: string } };
      answers.set(answer.id, answer);
    });
    input.write(`${INITIALIZE}\n`);
    input.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    input.write(
      `${JSON.stringify({ jsonrpc: '2.0', id: 'pay', method: 'tools/call', params: { name: 'pay' } })}\n`,
    );
    await eventually(() => answers.has('pay'), 'the call answered');
    await new Promise((resolve) => setTimeout(resolve, 300)); // room for a re-send, were there one
    await bridge.close();
    assert.match(answers.get('pay')?.error?.message ?? '', /outcome is unknown and the tool may have run/);
    assert.equal(calls, 1);
  });

  it('waits for a slow owner’s answer with no bound of its own once the request was sent', async () => {
    // The hop's request as undici makes it: its timers are what would cut a call longer than them.
    const hops: Array<{ headersTimeout: unknown; bodyTimeout: unknown }> = [];
    let ownerOrigin = '';
    const seen = (message: unknown) => {
      const request = (
        message as { request: { origin?: unknown; headersTimeout: unknown; bodyTimeout: unknown } }
      ).request;
      if (String(request.origin) === ownerOrigin)
        hops.push({ headersTimeout: request.headersTimeout, bodyTimeout: request.bodyTimeout });
    };
    diagnostics.subscribe('undici:request:create', seen);
    // A 2026-07-28 call without progress sends no headers until its answer, here 1.5 s later.
    const owner = await httpServer((req, res) => {
      req.resume();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: 3, result: { content: [] } }));
      }, 1_500);
    });
    ownerOrigin = owner.url;
    const landing = await landingFor(owner.url);
    servers.push(owner.server, landing.server);
    try {
      const reply = await fetch(`${landing.url}/mcp/fx`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'slow' } }),
      });
      assert.equal(reply.status, 200);
      assert.deepEqual(await reply.json(), { jsonrpc: '2.0', id: 3, result: { content: [] } });
    } finally {
      diagnostics.unsubscribe('undici:request:create', seen);
    }
    // No headers or body timer: a call that runs longer than any such bound (30 s before) is waited for.
    assert.deepEqual(hops, [{ headersTimeout: 0, bodyTimeout: 0 }]);
  });

  it('finishes a forwarded stream, and lets go of the owner’s, when a client that stopped reading goes away', async () => {
    let ownerClosed = false;
    // The owner streams without end, far more than any socket buffer holds.
    const owner = await httpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = `data: ${'x'.repeat(64 * 1024)}\n\n`;
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      req.on('close', () => {
        ownerClosed = true;
      });
      pump();
    });
    const landing = await landingFor(owner.url);
    servers.push(owner.server, landing.server);
    const port = Number(new URL(landing.url).port);
    const client = connectTcp(port, '127.0.0.1');
    await once(client, 'connect');
    client.write('GET /mcp/fx HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n');
    // Reads the headers and a little, then stops: the landing replica's writes back up.
    await once(client, 'data');
    client.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(landing.open(), 1);
    client.destroy();
    await eventually(() => landing.open() === 0, 'the forward finished');
    await eventually(() => ownerClosed, 'the owner’s stream let go of');
  });

  it('answers a GET whose owner died mid-request 503 with Retry-After: a stream runs nothing, so it may go again', async () => {
    const owner = await httpServer((req) => req.socket.destroy());
    const landing = await landingFor(owner.url);
    servers.push(owner.server, landing.server);
    const reply = await fetch(`${landing.url}/mcp/fx`, { headers: { accept: 'text/event-stream' } });
    assert.equal(reply.status, 503);
    assert.equal(reply.headers.get('retry-after'), '1');
    assert.equal(statusError(reply.status, { peer: 'gateway', displayUrl: landing.url }).unsent, true);
  });

  it('answers a POST to an owner that refuses the connection 404: it never ran', async () => {
    const landing = await landingFor(`http://127.0.0.1:${await freePort()}`);
    servers.push(landing.server);
    const reply = await fetch(`${landing.url}/mcp/fx`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call' }),
    });
    assert.equal(reply.status, 404);
    await reply.body?.cancel();
  });
});

describe('the hop carries a caller of the SSH socket', () => {
  let dir: string;
  let socket: Awaited<ReturnType<typeof openSshSocket>>;
  let owner: { server: Server; url: string };
  /** What the owner saw of each hop: its headers, whether it verified, and the socket caller it vouched for. */
  const seen: Array<{
    headers: IncomingMessage['headers'];
    signed: boolean;
    caller: IncomingMessage['headers'] | undefined;
  }> = [];
  let tcpLanding: { server: Server; url: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-relay-hop-'));
    owner = await httpServer((req, res) => {
      const signed = verifyHop(req, SECRET);
      seen.push({ headers: { ...req.headers }, signed, caller: socketCallerHeaders(req) });
      req.resume();
      res.writeHead(signed ? 200 : 403, { 'content-type': 'application/json' }).end('{}');
    });
    const forward = (req: IncomingMessage, res: ServerResponse) => {
      void forwardOverHop(req, res, { peerUrl: owner.url, origin: 'r1', secret: SECRET, body: req });
    };
    const config = {
      ssh: { mode: 'attached', socket: join(dir, 'gw.sock'), socketMode: 0o600 },
      limits: { headersTimeout: 10_000, receiveTimeout: 10_000 },
    } as unknown as RelayConfig;
    socket = await openSshSocket(config, forward, silentLogger);
    tcpLanding = await httpServer(forward);
  });

  after(async () => {
    await socket?.close();
    for (const server of [owner.server, tcpLanding.server]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const socketAgent = () => new Agent({ connect: { socketPath: join(dir, 'gw.sock') } });
  const CALLER = { 'mcp-relay-user': 'dave', 'mcp-relay-groups': 'ops,dev' };

  it('signs the socket’s user and groups into the hop; the owner maps them as its own socket’s', async () => {
    seen.length = 0;
    const agent = socketAgent();
    const reply = await rawPost('http://localhost/mcp/fx', INITIALIZE, CALLER, agent);
    await agent.close();
    assert.equal(reply.status, 200);
    assert.equal(seen[0]?.signed, true);
    assert.equal(seen[0]?.headers[SOCKET_CALLER_HEADER], 'dave ops,dev');
    // The socket's own headers do not travel: only the caller this replica's socket named.
    assert.equal(seen[0]?.headers['mcp-relay-user'], undefined);
    assert.deepEqual(seen[0]?.caller, CALLER);
  });

  it('carries no caller for a TCP request, whatever its headers say', async () => {
    seen.length = 0;
    const reply = await rawPost(`${tcpLanding.url}/mcp/fx`, INITIALIZE, {
      ...CALLER,
      [SOCKET_CALLER_HEADER]: 'dave ops',
    });
    assert.equal(reply.status, 200);
    assert.equal(seen[0]?.signed, true);
    assert.equal(seen[0]?.headers[SOCKET_CALLER_HEADER], undefined);
    assert.equal(seen[0]?.caller, undefined);
  });

  it('refuses a hop whose caller was changed, added or taken off after signing', async () => {
    seen.length = 0;
    const agent = socketAgent();
    await rawPost('http://localhost/mcp/fx', INITIALIZE, CALLER, agent);
    await agent.close();
    await rawPost(`${tcpLanding.url}/mcp/fx`, INITIALIZE);
    const [fromSocket, fromTcp] = seen.map((hop) => hop.headers);
    assert.ok(fromSocket && fromTcp);
    const verify = (headers: IncomingMessage['headers']) => {
      const req = { method: 'POST', url: '/mcp/fx', headers } as IncomingMessage;
      return { signed: verifyHop(req, SECRET), caller: socketCallerHeaders(req) };
    };
    assert.deepEqual(verify(fromSocket), { signed: true, caller: CALLER });
    assert.deepEqual(verify({ ...fromSocket, [SOCKET_CALLER_HEADER]: 'root admins' }), {
      signed: false,
      caller: undefined,
    });
    const { [SOCKET_CALLER_HEADER]: _taken, ...without } = fromSocket;
    assert.equal(verify(without).signed, false);
    assert.deepEqual(verify({ ...fromTcp, [SOCKET_CALLER_HEADER]: 'dave' }), {
      signed: false,
      caller: undefined,
    });
    // Nor can the caller's signed part pose as a certificate.
    assert.equal(
      verify({ ...without, [CERTIFICATE_HEADER]: `socket-caller ${fromSocket[SOCKET_CALLER_HEADER]}` })
        .signed,
      false,
    );
  });
});
