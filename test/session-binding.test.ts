// A session answers only to the credential it was opened with: another key of the same user gets 404,
// and revoking (or editing) the key ends its sessions at once, so no revoked key's groups live on.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKey, revokeKey } from '../src/auth/key-admin.ts';
import { fixtureServer, INITIALIZE, rawPost, startGateway, type TestGateway } from './helpers/gateway.ts';

const call = (id: number) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'whoami', arguments: {} } });

describe('sessions bound to their credential', () => {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway(
      {
        servers: {
          demo: fixtureServer('well', {
            isolation: 'shared',
            tools: { groups: { ops: { allow: ['*'] } }, allow: ['echo'] },
          }),
        },
      },
      { users: [] },
    );
    url = `${gw.url}/mcp/demo`;
  });
  after(() => gw.close());

  async function open(key: string) {
    const init = await rawPost(url, INITIALIZE, { authorization: `Bearer ${key}` });
    assert.equal(init.status, 200, init.text);
    return init.headers.get('mcp-session-id') as string;
  }
  async function sessions(): Promise<number> {
    return ((await (await fetch(`${gw.url}/healthz`)).json()) as { sessions: number }).sessions;
  }

  it('refuses the session to another key of the same user, and ends it when its key is revoked', async () => {
    const opsKey = await createKey(gw.keysFile, { user: 'alice', groups: ['ops'] });
    const plainKey = await createKey(gw.keysFile, { user: 'alice', groups: [] });
    await sleep(1_200); // the gateway polls the keys file
    const session = await open(opsKey.key);
    const asOps = await rawPost(url, call(2), {
      authorization: `Bearer ${opsKey.key}`,
      'mcp-session-id': session,
    });
    assert.equal(asOps.status, 200, asOps.text);
    // Alice's other key, without the ops group, cannot borrow the session (and its groups).
    const borrowed = await rawPost(url, call(3), {
      authorization: `Bearer ${plainKey.key}`,
      'mcp-session-id': session,
    });
    assert.equal(borrowed.status, 404, borrowed.text);

    assert.equal(await sessions(), 1);
    await revokeKey(gw.keysFile, opsKey.record.id);
    const deadline = Date.now() + 3_000;
    while ((await sessions()) > 0 && Date.now() < deadline) await sleep(50);
    assert.equal(await sessions(), 0, 'the revoked key’s session ended without waiting for its next request');
    const afterRevoke = await rawPost(url, call(4), {
      authorization: `Bearer ${plainKey.key}`,
      'mcp-session-id': session,
    });
    assert.equal(afterRevoke.status, 404);
  });
});
