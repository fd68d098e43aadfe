// A Claude Desktop extension (.mcpb) as Claude Desktop handles it: unpacked and validated with the
// official `mcpb` tools, then its server started from the manifest (node, `${__dirname}`, the user's
// settings) with the SDK client on its stdio.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Bridged, connectOverStdio } from './cli.ts';

const MCPB = fileURLToPath(new URL('../../node_modules/.bin/mcpb', import.meta.url));
const run = promisify(execFile);

// The manifest's placeholders, literally (Claude Desktop fills them in, not JavaScript).
// biome-ignore lint/suspicious/noTemplateCurlyInString: see above.
export const DIRNAME = '${__dirname}';

export interface Manifest {
  server: {
    type: string;
    entry_point: string;
    mcp_config: { command: string; args: string[]; env: Record<string, string> };
  };
  user_config: Record<string, { type: string; default?: string; sensitive?: boolean; required?: boolean }>;
}

/** `mcpb unpack` into `into`, then `mcpb validate` on its manifest, which must pass. */
export async function unpackBundle(file: string, into: string): Promise<Manifest> {
  await run(MCPB, ['unpack', file, into]);
  const validated = await run(MCPB, ['validate', join(into, 'manifest.json')]);
  assert.match(validated.stdout, /validation passes/i);
  return JSON.parse(readFileSync(join(into, 'manifest.json'), 'utf8')) as Manifest;
}

/**
 * What Claude Desktop does with the manifest: its own node, `${__dirname}` and the user's settings
 * (else their defaults) filled in. Started in the unpacked folder, where no other node_modules may be
 * in reach, so the bundle must carry what it loads.
 */
export function launchAsClaudeDesktop(
  unpacked: string,
  manifest: Manifest,
  settings: Record<string, string>,
): Promise<Bridged> {
  const fill = (text: string) =>
    text.replaceAll(DIRNAME, unpacked).replace(/\$\{user_config\.([a-z_]+)\}/g, (_, key: string) => {
      const value = settings[key] ?? manifest.user_config[key]?.default;
      assert.ok(value !== undefined, `user_config.${key} has a value`);
      return value;
    });
  for (let up = dirname(unpacked); up !== dirname(up); up = dirname(up))
    assert.ok(!existsSync(join(up, 'node_modules')), `no ${up}/node_modules in reach of the bundle`);
  const { command, args, env } = manifest.server.mcp_config;
  assert.equal(command, 'node');
  return connectOverStdio({
    command: process.execPath,
    args: args.map(fill),
    env: {
      PATH: process.env.PATH ?? '',
      ...Object.fromEntries(Object.entries(env).map(([name, value]) => [name, fill(value)])),
    },
    cwd: unpacked,
  });
}
