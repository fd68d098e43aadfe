// API keys through a gateway and the real CLI: a key for a user name made only of dots still loads
// but gets 401, and `mcp-relay keys` in a child process finds the keys file through relay.yaml.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createKey, listKeys, revokeKey } from '../src/auth/key-admin.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { runCli } from './helpers/cli.ts';
import { fixtureServer, INITIALIZE, rawPost, startGateway } from './helpers/gateway.ts';

let dir: string;
let counter = 0;
const freshFile = () => join(dir, `keys-${++counter}.yaml`);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-keys-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('a key for a user name made only of dots', () => {
  it('an older file with one still loads, but that key gets 401 with the reason', async () => {
    const file = freshFile();
    const alice = await createKey(file, { user: 'alice' });
    // What `mcp-relay keys create ..` wrote before such names were refused.
    const dots = await createKey(file, { user: 'placeholder', groups: ['design'] });
    writeFileSync(file, readFileSync(file, 'utf8').replace('user: placeholder', 'user: ..'));
    const logs = capturingLogger();
    const gw = await startGateway(
      { servers: { echo: fixtureServer() }, auth: { apiKeys: { file } } },
      { auth: false, log: logs.log },
    );
    try {
      const url = `${gw.url}/mcp/echo`;
      const ok = await rawPost(url, INITIALIZE, { authorization: `Bearer ${alice.key}` });
      assert.equal(ok.status, 200, 'the file loaded: the other keys work');
      const refused = await rawPost(url, INITIALIZE, { authorization: `Bearer ${dots.key}` });
      assert.equal(refused.status, 401);
      assert.match(
        (refused.json as { error: { message: string } }).error.message,
        /user name that is no longer accepted \(1-64 letters, digits or \._@-, not only dots\); revoke it/,
      );
      assert.match(logs.lines(), new RegExp(`"id":"${dots.record.id}".*not accepted \\(only dots\\)`));
    } finally {
      await gw.close();
    }
    // The CLI still reads the file, so the key can be found and revoked.
    assert.deepEqual(
      (await listKeys(file)).map((key) => key.user),
      ['alice', '..'],
    );
    await revokeKey(file, dots.record.id);
    assert.deepEqual(
      (await listKeys(file)).map((key) => key.user),
      ['alice'],
    );
  });
});

describe('mcp-relay keys (CLI, a child process)', () => {
  it('finds the keys file through relay.yaml (relative to the config)', async () => {
    const configDir = mkdtempSync(join(dir, 'cfg-'));
    const config = join(configDir, 'relay.yaml');
    writeFileSync(
      config,
      'servers:\n  echo: { command: node }\nauth:\n  apiKeys: { file: secrets/keys.yaml }\n',
    );
    const created = await runCli(['keys', 'create', 'dora', '--config', config]);
    assert.equal(created.code, 0, created.stderr);
    const records = await listKeys(join(configDir, 'secrets', 'keys.yaml'));
    assert.deepEqual(
      records.map((record) => record.user),
      ['dora'],
    );

    writeFileSync(config, 'servers:\n  echo: { command: node }\n');
    const noKeys = await runCli(['keys', 'list', '--config', config]);
    assert.equal(noKeys.code, 2);
    assert.match(noKeys.stderr, /no auth\.apiKeys\.file/);
  });
});
