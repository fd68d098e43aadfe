// The npm package as a colleague installs it: `npm pack` of the built tree, then `npm install -g` of the
// tarball into a prefix of the test's own, so its `mcp-relay` is what that colleague's PATH would find.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/** npm's own settings from an outer `npm test` (npm_config_prefix, …) must not redirect the install. */
export const npmEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)),
);

export interface Packed {
  filename: string;
  size: number;
  files: { path: string }[];
}

/** Packs the built tree into `dir` and installs the tarball globally under `dir/prefix`. */
export async function packAndInstall(
  dir: string,
): Promise<{ packed: Packed; bin: string; installMs: number }> {
  assert.ok(
    existsSync(join(ROOT, 'dist', 'cli', 'main.js')),
    'npm run build first: the tarball carries dist/',
  );
  // --ignore-scripts: `prepare` would build again; dist/ is what the build already made.
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    env: npmEnv,
  });
  const packed = (JSON.parse(pack.stdout) as Packed[])[0] as Packed;
  const started = Date.now();
  await run(
    'npm',
    [
      'install',
      '-g',
      join(dir, packed.filename),
      '--prefix',
      join(dir, 'prefix'),
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
    ],
    { cwd: dir, env: npmEnv },
  );
  return { packed, bin: join(dir, 'prefix', 'bin', 'mcp-relay'), installMs: Date.now() - started };
}
