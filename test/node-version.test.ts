// bin/mcp-relay.js under a Node older than 22 (the machine's system Node, when it has one): a short
// message on what to install and exit 1, not a stack trace; under this Node it runs the CLI.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runProcess } from './helpers/cli.ts';

const BIN = fileURLToPath(new URL('../bin/mcp-relay.js', import.meta.url));
/** An older Node installed beside the one running the tests (Debian's, here Node 20). */
const SYSTEM_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find((path) => existsSync(path));

function majorOf(node: string): Promise<number> {
  return runProcess(node, ['-p', 'process.versions.node.split(".")[0]']).then((result) =>
    Number(result.stdout.trim()),
  );
}

describe('bin/mcp-relay.js and the Node version', () => {
  it('under Node < 22 prints how to get Node 22 and exits 1, without a stack trace', async (t) => {
    if (SYSTEM_NODE === undefined || (await majorOf(SYSTEM_NODE)) >= 22) {
      t.skip('no Node older than 22 on this machine');
      return;
    }
    const result = await runProcess(SYSTEM_NODE, [BIN, 'serve', '--check']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      /^mcp-relay needs Node\.js 22\.19 or newer; this is Node v\d+\.\d+\.\d+ \(.+\)\.\n/,
    );
    assert.match(result.stderr, /nvm install 22/);
    assert.equal(result.stderr.trim().split('\n').length, 2, 'two lines, no stack');
    assert.doesNotMatch(result.stderr, /\bat \S+:\d+:\d+/);
  });

  it('keeps the check in syntax old Node parses: nothing newer than ES2019 before the import', () => {
    const text = readFileSync(BIN, 'utf8');
    const check = text
      .slice(0, text.indexOf("import('./run.js')"))
      .split('\n')
      .filter((line) => !line.startsWith('//') && !line.startsWith('#!'))
      .join('\n');
    assert.ok(check.includes('process.exit(1)'));
    for (const newer of ['??', '?.', 'await ']) {
      assert.ok(!check.includes(newer), `no ${JSON.stringify(newer)} before the version check ran`);
    }
    assert.doesNotMatch(text, /^import\s/m, 'no static import: it would load the CLI before the check');
  });

  it('under this Node runs the CLI', async () => {
    const result = await runProcess(process.execPath, [BIN, '--version']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
