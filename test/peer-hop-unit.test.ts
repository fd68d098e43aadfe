// The peer hop's WebSocket tunnel on loopback, without Redis: an upgrade sent on to an "owner" arrives
// signed (verifyHop holds, and marks it as come over the hop), frames cross both ways unchanged and the
// owner's close code reaches the client; a hop signed with another secret is not taken; an owner that refuses
// the connection gets the client a 503 with Retry-After, and the caller hears of it.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { cameOverHop, tunnelOverHop, verifyHop } from '../src/cluster/peer-hop.ts';
import { freePort } from './helpers/ports.ts';
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

describe('tunnelOverHop', () => {
  const servers: Server[] = [];
  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

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
});
