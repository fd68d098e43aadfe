// `mcp-relay demo` (what `npm start` runs): the gateway with the bundled 3D scene server, an API key for
// user "demo" kept across runs, and everything the user needs next printed: URL, key, Claude Desktop entry.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand } from 'citty';
import { createKey, isExpired, revokeKey } from '../../auth/key-admin.ts';
import { readKeysFile } from '../../auth/key-file.ts';
import { hashApiKey } from '../../auth/key-material.ts';
import { claudeEntryForUrl, mcpServersSnippet } from '../../claude/entry.ts';
import { thisMachineLauncher } from '../../claude/launcher.ts';
import { buildConfig, loadConfigFile, parseConfigText } from '../../config/load.ts';
import { RelayError } from '../../errors.ts';
import { createGateway } from '../../gateway/create-gateway.ts';
import { createLogger } from '../../log.ts';
import { writeFileAtomic } from '../../util/atomic-write.ts';
import { ioFrom } from '../io.ts';
import { untilSignal } from '../signals.ts';

const DEMO_USER = 'demo';
const DEMO_SERVER = '3d';
const DEFAULT_PORT = 8787;
/** The demo's own key in plaintext, owner-only, in its folder: printed again at each run (the keys file has its hash). */
const KEY_FILE = 'demo-key';
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
      description: 'folder for the demo config, keys and its own key',
      default: '.relay',
      valueHint: 'DIR',
    },
    port: {
      type: 'string',
      description: 'port to listen on (a taken one is reported before anything changes)',
      default: String(DEFAULT_PORT),
      valueHint: 'N',
    },
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
    const port = parsePort(args.port);
    const configPath = join(dir, 'relay.yaml');
    const written = existsSync(configPath);
    const loaded = written ? loadConfigFile(configPath).config : parseConfigText(demoYaml(), configPath);
    const config = buildConfig({ ...loaded, listen: { ...loaded.listen, port } });
    const host = config.listen === false ? '127.0.0.1' : config.listen.host;
    const keysFile = config.auth.apiKeys?.file;
    if (!keysFile)
      throw new Error(`${configPath} has no auth.apiKeys.file; delete it to regenerate the demo config`);
    // The port first: when it is taken (most likely by a demo still running) nothing has changed yet,
    // neither the config nor that demo's key.
    await assertPortFree(host, port);
    if (!written) writeDemoConfig(dir, configPath);
    const { key, kept } = await demoKey(dir, keysFile);

    const log = createLogger(config.logLevel);
    const gateway = createGateway({ config, log });
    try {
      await gateway.listen();
    } catch (error) {
      await gateway.close();
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw portTaken(host, port);
      throw error;
    }
    const url = `${gateway.url.replace('127.0.0.1', 'localhost')}/mcp/${DEMO_SERVER}`;
    const entry = claudeEntryForUrl({ url, token: key, launcher: thisMachineLauncher() });
    const keyNote = kept ? 'the same as last run' : 'new';
    io.stdout.write(
      [
        '',
        'mcp-relay is running with the 3D scene demo.',
        '',
        `  MCP endpoint   ${url}`,
        `  API key        ${key}   (user "${DEMO_USER}", ${keyNote}; kept for the next run in ${join(dir, KEY_FILE)}, mode 0600; the keys file holds only its hash)`,
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

/**
 * The demo's key: the one kept from the last run while the keys file still accepts it, else a new one
 * (earlier demo keys revoked), kept in the folder, owner-only, so Claude Desktop's entry stays valid.
 */
async function demoKey(dir: string, keysFile: string): Promise<{ key: string; kept: boolean }> {
  const path = join(dir, KEY_FILE);
  const stored = readKept(path);
  const records = await readKeysFile(keysFile);
  if (stored !== undefined) {
    const hash = hashApiKey(stored);
    const valid = records.some(
      (record) => record.user === DEMO_USER && record.sha256 === hash && !isExpired(record, Date.now()),
    );
    if (valid) return { key: stored, kept: true };
  }
  for (const old of records) if (old.user === DEMO_USER) await revokeKey(keysFile, old.id);
  const { key } = await createKey(keysFile, { user: DEMO_USER });
  await writeFileAtomic(path, `${key}\n`, 0o600);
  return { key, kept: false };
}

function readKept(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** Binds the port for a moment: a taken one is reported before the demo changes anything. */
function assertPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? portTaken(host, port) : error),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function portTaken(host: string, port: number): RelayError {
  return new RelayError(
    'LISTEN_REFUSED',
    `port ${port} on ${host} is already taken, perhaps by a demo still running (stop it with Ctrl-C); or pick another port: --port N (scripts/start.sh --port N)`,
  );
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RelayError('USAGE', `--port must be a number from 0 to 65535, not "${text}"`);
  }
  return port;
}

function demoYaml(): string {
  return [
    '# Written by `mcp-relay demo`: the bundled 3D scene server behind the gateway. Edit freely;',
    '# delete this file to get the default back.',
    `listen: { host: 127.0.0.1, port: ${DEFAULT_PORT} }`,
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
}

function writeDemoConfig(dir: string, configPath: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(configPath, demoYaml(), { mode: 0o600 });
}
