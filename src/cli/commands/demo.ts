// `mcp-relay demo` (what `npm start` runs): the gateway with the bundled 3D scene server, a fresh API
// key for user "demo", and everything the user needs next printed: URL, key, Claude Desktop entry.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand } from 'citty';
import { createKey, listKeys, revokeKey } from '../../auth/key-admin.ts';
import { claudeEntryForUrl, mcpServersSnippet } from '../../claude/entry.ts';
import { thisMachineLauncher } from '../../claude/launcher.ts';
import { buildConfig, loadConfigFile } from '../../config/load.ts';
import { RelayError } from '../../errors.ts';
import { createGateway } from '../../gateway/create-gateway.ts';
import { createLogger } from '../../log.ts';
import { ioFrom } from '../io.ts';
import { untilSignal } from '../signals.ts';

const DEMO_USER = 'demo';
const DEMO_SERVER = '3d';
// examples/ is a workspace of the repository (three.js and its own packages), not part of the npm package.
const SCENE_SERVER = fileURLToPath(new URL('../../../examples/3d-scene/server.js', import.meta.url));

export const demoCommand = defineCommand({
  meta: {
    name: 'demo',
    description: 'Start the gateway with the bundled 3D scene demo and print how to connect.',
  },
  args: {
    dir: {
      type: 'string',
      description: 'folder for the demo config and keys',
      default: '.relay',
      valueHint: 'DIR',
    },
    port: { type: 'string', description: 'port to listen on', default: '8787', valueHint: 'N' },
  },
  async run({ args, data }) {
    const io = ioFrom(data);
    if (!existsSync(SCENE_SERVER)) {
      throw new RelayError(
        'USAGE',
        'the 3D demo is not part of an npm install of mcp-relay (it needs three.js and packages of its own); run it from a clone of the repository: bash scripts/start.sh (or npm ci && npm start)',
      );
    }
    const dir = resolve(args.dir);
    const configPath = join(dir, 'relay.yaml');
    if (!existsSync(configPath)) writeDemoConfig(dir, configPath);
    const loaded = loadConfigFile(configPath).config;
    const config = buildConfig({ ...loaded, listen: { ...loaded.listen, port: Number(args.port) } });
    const keysFile = config.auth.apiKeys?.file;
    if (!keysFile)
      throw new Error(`${configPath} has no auth.apiKeys.file; delete it to regenerate the demo config`);
    // One live demo key at a time: the previous run's key is revoked, a fresh one printed.
    for (const old of await listKeys(keysFile)) if (old.user === DEMO_USER) await revokeKey(keysFile, old.id);
    const { key } = await createKey(keysFile, { user: DEMO_USER });

    const log = createLogger(config.logLevel);
    const gateway = createGateway({ config, log });
    await gateway.listen();
    const url = `${gateway.url.replace('127.0.0.1', 'localhost')}/mcp/${DEMO_SERVER}`;
    const entry = claudeEntryForUrl({ url, token: key, launcher: thisMachineLauncher() });
    io.stdout.write(
      [
        '',
        'mcp-relay is running with the 3D scene demo.',
        '',
        `  MCP endpoint   ${url}`,
        `  API key        ${key}   (user "${DEMO_USER}"; shown once, stored only as a hash)`,
        `  Health         ${gateway.url}/healthz`,
        '',
        'Claude Desktop: merge this into claude_desktop_config.json (or run the install command below):',
        '',
        JSON.stringify(mcpServersSnippet('3d-scene', entry), null, 2),
        '',
        `  node bin/mcp-relay.js claude install --url ${url} --name 3d-scene --token ${key}`,
        '',
        'Then ask Claude: "add a red cube and a blue sphere to the scene, and give me the viewer URL".',
        `Config ${configPath} · keys ${keysFile} · stop with Ctrl-C`,
        '',
      ].join('\n'),
    );
    await untilSignal();
    await gateway.close();
    return 0;
  },
});

function writeDemoConfig(dir: string, configPath: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const yaml = [
    '# Written by `mcp-relay demo`: the bundled 3D scene server behind the gateway. Edit freely;',
    '# delete this file to get the default back.',
    'listen: { host: 127.0.0.1, port: 8787 }',
    'servers:',
    `  ${DEMO_SERVER}:`,
    `    command: ${JSON.stringify(process.execPath)}`,
    `    args: [${JSON.stringify(SCENE_SERVER)}]`,
    '    env: { SCENE_TITLE: "Office demo" }',
    '    app: { portEnv: APP_PORT }',
    'auth:',
    '  apiKeys: { file: keys.yaml }',
    '',
  ].join('\n');
  writeFileSync(configPath, yaml, { mode: 0o600 });
}
