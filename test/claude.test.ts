// Claude Desktop, through the real CLI in a child process: the printed entry runs this node and this
// install, and that entry really starts this installation (claude-unit.test.ts covers the rest in-process).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ClaudeServerEntry } from '../src/claude/entry.ts';
import { VERSION } from '../src/version.ts';
import { runCli, runProcess } from './helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const URL_3D = 'https://mcp.example.com/mcp/3d';

type Snippet = { mcpServers: Record<string, ClaudeServerEntry> };

describe('mcp-relay claude config', () => {
  it('prints a ready-to-paste entry that runs this node and this install', async () => {
    const result = await runCli([
      'claude',
      'config',
      '--url',
      URL_3D,
      '--name',
      'office-3d',
      '--token',
      'mcpr_t',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const snippet = JSON.parse(result.stdout) as Snippet;
    assert.deepEqual(Object.keys(snippet.mcpServers), ['office-3d']);
    const entry = snippet.mcpServers['office-3d'];
    assert.ok(entry);
    assert.equal(entry.command, process.execPath);
    assert.ok(isAbsolute(entry.args[0] ?? ''), 'the bin script is an absolute path');
    assert.equal(entry.args[0], join(ROOT, 'bin', 'mcp-relay.js'));
    assert.deepEqual(entry.args.slice(1), ['connect', URL_3D]);
    assert.deepEqual(entry.env, { MCP_RELAY_TOKEN: 'mcpr_t' });
  });
});

describe('the printed default entry', () => {
  before(async () => {
    // bin/mcp-relay.js runs dist/; build once if this checkout has not been built.
    if (existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) return;
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT }).catch(
      () => {
        // Type errors elsewhere still emit JavaScript; the check below decides.
      },
    );
    assert.ok(existsSync(join(ROOT, 'dist', 'cli', 'main.js')), 'npm run build failed to produce dist/');
  });

  it('starts this installation exactly as Claude Desktop would', async () => {
    const printed = await runCli(['claude', 'config', '--url', URL_3D, '--name', '3d']);
    const entry = (JSON.parse(printed.stdout) as Snippet).mcpServers['3d'];
    assert.ok(entry);
    const connectAt = entry.args.indexOf('connect');
    assert.ok(connectAt > 0);
    const args = [...entry.args.slice(0, connectAt), '--version'];
    const started = await runProcess(entry.command, args, { cwd: tmpdir() });
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stdout.trim(), VERSION);
  });
});
