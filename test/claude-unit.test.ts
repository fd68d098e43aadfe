// Claude Desktop: the printed entries (node, npx, ssh) and install merging into an existing config with
// a backup, refusing a broken file, with the CLI driven in-process (claude.test.ts runs the real one).

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claudeDesktopConfigPath } from '../src/claude/desktop-config.ts';
import { type ClaudeServerEntry, claudeEntryForSsh, claudeEntryForUrl } from '../src/claude/entry.ts';
import { TOKEN_PLACEHOLDER } from '../src/connect/token-env.ts';
import { runCliInProcess } from './helpers/cli.ts';

const URL_3D = 'https://mcp.example.com/mcp/3d';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-claude-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

type Snippet = { mcpServers: Record<string, ClaudeServerEntry> };

describe('claude entries (pure)', () => {
  it('runs the given node and bin script, or npx, with connect <url> and the token', () => {
    const launcher = {
      kind: 'node',
      nodePath: '/opt/node/bin/node',
      binPath: '/opt/relay/bin/mcp-relay.js',
    } as const;
    assert.deepEqual(claudeEntryForUrl({ url: URL_3D, token: 'mcpr_k', launcher }), {
      command: '/opt/node/bin/node',
      args: ['/opt/relay/bin/mcp-relay.js', 'connect', URL_3D],
      env: { MCP_RELAY_TOKEN: 'mcpr_k' },
    });
    assert.deepEqual(claudeEntryForUrl({ url: URL_3D, launcher: { kind: 'npx' } }), {
      command: 'npx',
      args: ['-y', 'mcp-relay', 'connect', URL_3D],
      env: { MCP_RELAY_TOKEN: TOKEN_PLACEHOLDER },
    });
    assert.throws(() => claudeEntryForUrl({ url: 'ftp://x/mcp', launcher }), { code: 'USAGE' });
    assert.throws(() => claudeEntryForUrl({ url: 'https://u:p@x/mcp', launcher }), { code: 'USAGE' });
  });

  it('runs mcp-relay from PATH for another machine, and carries no token variable when a certificate authenticates', () => {
    assert.deepEqual(claudeEntryForUrl({ url: URL_3D, token: 'mcpr_k', launcher: { kind: 'path' } }), {
      command: 'mcp-relay',
      args: ['connect', URL_3D],
      env: { MCP_RELAY_TOKEN: 'mcpr_k' },
    });
    const certificate = { url: URL_3D, clientCertificate: true, launcher: { kind: 'path' } } as const;
    assert.deepEqual(claudeEntryForUrl(certificate), { command: 'mcp-relay', args: ['connect', URL_3D] });
    assert.deepEqual(claudeEntryForUrl({ ...certificate, token: 'mcpr_k' }).env, {
      MCP_RELAY_TOKEN: 'mcpr_k',
    });
  });

  it('builds the SSH variant with batch mode and keep-alives, refusing option-like targets', () => {
    assert.deepEqual(claudeEntryForSsh({ target: 'mcp@office', identity: '~/.ssh/key', server: '3d' }), {
      command: 'ssh',
      args: [
        '-i',
        '~/.ssh/key',
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'ServerAliveInterval=15',
        '-o',
        'ServerAliveCountMax=3',
        '-T',
        'mcp@office',
        '3d',
      ],
    });
    assert.throws(() => claudeEntryForSsh({ target: '-oProxyCommand=x', server: '3d' }), { code: 'USAGE' });
    assert.throws(() => claudeEntryForSsh({ target: 'mcp@office', server: '3d; rm -rf /' }), {
      code: 'USAGE',
    });
  });

  it('knows where Claude Desktop keeps its config on each platform', () => {
    assert.equal(
      claudeDesktopConfigPath('darwin', {}, '/Users/a'),
      '/Users/a/Library/Application Support/Claude/claude_desktop_config.json',
    );
    assert.equal(
      claudeDesktopConfigPath('win32', { APPDATA: 'C:\\Users\\a\\AppData\\Roaming' }, 'C:\\Users\\a'),
      'C:\\Users\\a\\AppData\\Roaming\\Claude\\claude_desktop_config.json',
    );
    assert.equal(
      claudeDesktopConfigPath('linux', {}, '/home/a'),
      '/home/a/.config/Claude/claude_desktop_config.json',
    );
  });
});

describe('mcp-relay claude config', () => {
  it('prints the npx form, with a placeholder token and a note on stderr', async () => {
    const result = await runCliInProcess([
      'claude',
      'config',
      '--url',
      URL_3D,
      '--name',
      '3d',
      '--command',
      'npx',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const entry = (JSON.parse(result.stdout) as Snippet).mcpServers['3d'];
    assert.deepEqual(entry, {
      command: 'npx',
      args: ['-y', 'mcp-relay', 'connect', URL_3D],
      env: { MCP_RELAY_TOKEN: TOKEN_PLACEHOLDER },
    });
    assert.match(result.stderr, /placeholder/);
  });

  it('prints an OAuth entry without a token variable, and refuses --oauth with --token', async () => {
    const result = await runCliInProcess(['claude', 'config', '--url', URL_3D, '--name', '3d', '--oauth']);
    assert.equal(result.code, 0, result.stderr);
    const entry = (JSON.parse(result.stdout) as Snippet).mcpServers['3d'];
    assert.deepEqual(entry?.args.slice(1), ['connect', URL_3D]);
    assert.equal(entry?.env, undefined);
    assert.doesNotMatch(result.stderr, /placeholder/);
    const both = await runCliInProcess(['claude', 'config', '--url', URL_3D, '--oauth', '--token', 'mcpr_x']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --token or --oauth/);
  });

  it('carries connect flags for mTLS, a private CA and a proxy, with absolute file paths', async () => {
    const result = await runCliInProcess(
      [
        'claude',
        'config',
        '--url',
        URL_3D,
        '--name',
        '3d',
        '--ca',
        'certs/ca.pem',
        '--cert',
        'certs/me.pem',
        '--key',
        'certs/me.key',
        '--proxy',
        'http://proxy.corp:3128',
      ],
      { cwd: '/tmp' },
    );
    assert.equal(result.code, 0, result.stderr);
    const entry = (JSON.parse(result.stdout) as Snippet).mcpServers['3d'];
    assert.deepEqual(entry?.args.slice(1), [
      'connect',
      URL_3D,
      '--ca',
      '/tmp/certs/ca.pem',
      '--cert',
      '/tmp/certs/me.pem',
      '--key',
      '/tmp/certs/me.key',
      '--proxy',
      'http://proxy.corp:3128',
    ]);
    // The certificate authenticates: no token variable, so no placeholder that connect would refuse.
    assert.equal(entry?.env, undefined);
    assert.doesNotMatch(result.stderr, /placeholder/);
    const half = await runCliInProcess(['claude', 'config', '--url', URL_3D, '--cert', 'me.pem']);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--cert and --key go together/);
  });

  it('keeps the token next to a client certificate when one is given (a certificate per device, a key per person)', async () => {
    const result = await runCliInProcess(
      ['claude', 'config', '--url', URL_3D, '--cert', 'me.pem', '--key', 'me.key', '--token', 'mcpr_k'],
      { cwd: '/tmp' },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((JSON.parse(result.stdout) as Snippet).mcpServers['3d']?.env, {
      MCP_RELAY_TOKEN: 'mcpr_k',
    });
  });

  it('--for-colleague runs mcp-relay from PATH and names no path of this machine', async () => {
    const result = await runCliInProcess(
      [
        'claude',
        'config',
        '--for-colleague',
        '--url',
        URL_3D,
        '--name',
        '3d-scene',
        '--ca',
        'C:\\Users\\ada\\office-ca.pem',
        '--token',
        'mcpr_c',
      ],
      { cwd: '/tmp' },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      mcpServers: {
        '3d-scene': {
          command: 'mcp-relay',
          args: ['connect', URL_3D, '--ca', 'C:\\Users\\ada\\office-ca.pem'],
          env: { MCP_RELAY_TOKEN: 'mcpr_c' },
        },
      },
    });
    assert.ok(!result.stdout.includes(process.execPath), 'no node path of this machine');
    assert.ok(!result.stdout.includes(join(import.meta.dirname, '..')), 'no path of this installation');
    assert.match(result.stderr, /npm install -g/);

    const relative = await runCliInProcess(
      ['claude', 'config', '--for-colleague', '--url', URL_3D, '--ca', 'office-ca.pem'],
      { cwd: '/tmp' },
    );
    assert.equal(relative.code, 2);
    assert.match(relative.stderr, /colleague's machine: give its absolute path/);
    assert.doesNotMatch(relative.stderr, /\/tmp/);

    const npx = await runCliInProcess([
      'claude',
      'config',
      '--for-colleague',
      '--command',
      'npx',
      '--url',
      URL_3D,
    ]);
    assert.equal(npx.code, 2);
    assert.match(npx.stderr, /either --for-colleague or --command/);

    const install = await runCliInProcess([
      'claude',
      'install',
      '--for-colleague',
      '--url',
      URL_3D,
      '--config-path',
      join(dir, 'colleague.json'),
    ]);
    assert.equal(install.code, 2);
    assert.match(install.stderr, /claude config --for-colleague/);
    assert.ok(!readdirSync(dir).includes('colleague.json'), 'nothing written');
  });

  it('connect refuses a token variable that still holds the placeholder, naming the fix', async () => {
    const result = await runCliInProcess(['connect', URL_3D], {
      env: { MCP_RELAY_TOKEN: TOKEN_PLACEHOLDER },
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /still holds the placeholder/);
  });

  it('prints the SSH form and refuses mixed or missing targets', async () => {
    const ssh = await runCliInProcess([
      'claude',
      'config',
      '--ssh',
      'mcp@office',
      '--server',
      '3d',
      '--identity',
      '/k',
    ]);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal((JSON.parse(ssh.stdout) as Snippet).mcpServers['3d']?.command, 'ssh');
    const both = await runCliInProcess([
      'claude',
      'config',
      '--ssh',
      'mcp@office',
      '--server',
      '3d',
      '--url',
      URL_3D,
    ]);
    assert.equal(both.code, 2);
    const none = await runCliInProcess(['claude', 'config', '--name', 'x']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--url is required/);
  });
});

describe('mcp-relay claude install', () => {
  it('merges into an existing config, keeping every other key and entry, after a backup', async () => {
    const home = mkdtempSync(join(dir, 'install-'));
    const path = join(home, 'claude_desktop_config.json');
    const before = {
      globalShortcut: 'Ctrl+Space',
      mcpServers: {
        filesystem: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'] },
      },
      preferences: { theme: 'dark' },
    };
    const beforeText = JSON.stringify(before, null, 4);
    writeFileSync(path, beforeText);

    const result = await runCliInProcess([
      'claude',
      'install',
      '--url',
      URL_3D,
      '--name',
      '3d',
      '--token',
      'mcpr_t',
      '--config-path',
      path,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /added "3d"/);
    assert.match(result.stdout, /Restart Claude Desktop/);

    const after = JSON.parse(readFileSync(path, 'utf8')) as typeof before & Snippet;
    assert.equal(after.globalShortcut, before.globalShortcut);
    assert.deepEqual(after.preferences, before.preferences);
    assert.deepEqual(after.mcpServers.filesystem, before.mcpServers.filesystem);
    assert.deepEqual(after.mcpServers['3d']?.args.slice(-2), ['connect', URL_3D]);
    assert.deepEqual(after.mcpServers['3d']?.env, { MCP_RELAY_TOKEN: 'mcpr_t' });

    const backups = readdirSync(home).filter((name) => name.startsWith('claude_desktop_config.json.bak-'));
    assert.equal(backups.length, 1);
    assert.equal(
      readFileSync(join(home, backups[0] ?? ''), 'utf8'),
      beforeText,
      'the backup is the previous file',
    );

    const again = await runCliInProcess([
      'claude',
      'install',
      '--url',
      URL_3D,
      '--name',
      '3d',
      '--token',
      'mcpr_u',
      '--config-path',
      path,
    ]);
    assert.match(again.stdout, /replaced "3d"/);
    const replaced = JSON.parse(readFileSync(path, 'utf8')) as Snippet;
    assert.deepEqual(Object.keys(replaced.mcpServers), ['filesystem', '3d']);
    assert.deepEqual(replaced.mcpServers['3d']?.env, { MCP_RELAY_TOKEN: 'mcpr_u' });
  });

  it('creates the file (and its folder) when missing', async () => {
    const path = join(dir, 'fresh', 'Claude', 'claude_desktop_config.json');
    const result = await runCliInProcess([
      'claude',
      'install',
      '--url',
      URL_3D,
      '--token',
      'mcpr_t',
      '--config-path',
      path,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(Object.keys((JSON.parse(readFileSync(path, 'utf8')) as Snippet).mcpServers), ['3d']);
  });

  it('refuses to touch a file it cannot parse', async () => {
    const home = mkdtempSync(join(dir, 'broken-'));
    const path = join(home, 'claude_desktop_config.json');
    const broken = '{ "mcpServers": { "a": { "command": "x", } ';
    writeFileSync(path, broken);
    const result = await runCliInProcess([
      'claude',
      'install',
      '--url',
      URL_3D,
      '--name',
      '3d',
      '--config-path',
      path,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is not valid JSON.*left untouched/);
    assert.equal(readFileSync(path, 'utf8'), broken);
    assert.deepEqual(readdirSync(home), ['claude_desktop_config.json'], 'no backup, no temp file left');
  });
});
