// main(argv, io) in-process: version and usage, unknown commands and subcommands with their exit codes,
// and a subcommand reached through its group writing to the io it was given, not to this process.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../src/version.ts';
import { runCliInProcess } from './helpers/cli.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('main(argv, io)', () => {
  it('prints the version, and usage with exit 2 when given nothing', async () => {
    assert.deepEqual(await runCliInProcess(['--version']), { code: 0, stdout: `${VERSION}\n`, stderr: '' });
    const bare = await runCliInProcess([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stdout, /USAGE/);
    assert.match(bare.stdout, /serve/);
  });

  it('refuses an unknown command with 2, and an unknown or missing subcommand with 1', async () => {
    const unknown = await runCliInProcess(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, 'mcp-relay: unknown command "frobnicate"; see mcp-relay --help\n');
    const sub = await runCliInProcess(['keys', 'frobnicate']);
    assert.equal(sub.code, 1);
    assert.match(sub.stderr, /^mcp-relay: Unknown command .*frobnicate/);
    const missing = await runCliInProcess(['ssh']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No command specified/);
  });

  it('prints a subcommand help page instead of running it', async () => {
    const help = await runCliInProcess(['keys', 'create', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /keys create \[OPTIONS\] <USER>/);
  });

  it('runs a subcommand with the io it was given: its output, its environment, its working folder', async () => {
    const listed = await runCliInProcess(['keys', 'list', '--json', '--keys-file', 'keys.yaml'], {
      cwd: dir,
    });
    assert.deepEqual(listed, { code: 0, stdout: '[]\n', stderr: '' });
    // relay.yaml is looked up in io's working folder, and its ${VAR} read from io's environment.
    const config = join(dir, 'relay.yaml');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal ${VAR} syntax of relay.yaml.
    writeFileSync(config, 'servers:\n  x: { command: node }\nauth: { apiKeys: { file: "${KEYS}" } }\n');
    const fromEnv = await runCliInProcess(['keys', 'list', '--json'], {
      cwd: dir,
      env: { KEYS: 'other.yaml' },
    });
    assert.deepEqual(fromEnv, { code: 0, stdout: '[]\n', stderr: '' });
    const unset = await runCliInProcess(['keys', 'list'], { cwd: dir, env: {} });
    assert.equal(unset.code, 2);
    assert.match(unset.stderr, /KEYS is not set/);
  });
});
