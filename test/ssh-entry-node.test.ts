// `command: node` under sshd: sshd gives the forced command a minimal PATH (/usr/bin:/bin), where
// `node` may be an older Node or none. A bare `node` runs the Node that runs mcp-relay instead.

import assert from 'node:assert/strict';
import { mkdtempSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { FIXTURE_SERVER, textOf } from './helpers/gateway.ts';

const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));

describe('ssh-entry and a bare `node` command', () => {
  it("runs mcp-relay's own Node, not the node on sshd's minimal PATH", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-bare-node-'));
    try {
      const file = join(dir, 'relay.yaml');
      writeFileSync(file, `servers:\n  echo: { command: node, args: [${JSON.stringify(FIXTURE_SERVER)}] }\n`);
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [RUN_CLI, 'ssh-entry', '--config', file, '--user', 'alice'],
        // What sshd sets for a forced command: no ~/.node22, no nvm.
        env: { PATH: '/usr/bin:/bin', HOME: dir, SSH_ORIGINAL_COMMAND: 'echo' },
        stderr: 'pipe',
      });
      const client = new Client({ name: 'test-client', version: '1.0.0' });
      await client.connect(transport);
      try {
        const pid = textOf(await client.callTool({ name: 'pid', arguments: {} }));
        assert.equal(readlinkSync(`/proc/${pid}/exe`), realpathSync(process.execPath));
      } finally {
        await client.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
