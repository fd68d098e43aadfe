// The built package as a user imports it (`import … from 'mcp-relay'`, resolved through its own
// `exports`): the same names as the source entry, and a gateway it creates answers /healthz.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as source from '../src/index.ts';

describe('the built package', () => {
  it('resolves by its name to the built entry, with the source entry names', async () => {
    // A name in a variable: the type check runs before the build, when there is nothing to resolve yet.
    const name = 'mcp-relay';
    const built = (await import(name)) as typeof source;
    assert.deepEqual(Object.keys(built).sort(), Object.keys(source).sort());
    const config = built.buildConfig({
      listen: { host: '127.0.0.1', port: 0 },
      servers: { idle: { command: process.execPath, args: ['-e', ''] } },
    });
    const gateway = built.createGateway({ config, log: built.createLogger('silent') });
    await gateway.listen();
    try {
      const health = (await (await fetch(`${gateway.url}/healthz`)).json()) as {
        status: string;
        version: string;
      };
      assert.equal(health.status, 'ok');
      assert.equal(health.version, built.VERSION);
    } finally {
      await gateway.close();
    }
  });
});
