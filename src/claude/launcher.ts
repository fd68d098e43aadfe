// How this very installation is started: the running node and this package's bin script, by
// absolute path, so a printed Claude Desktop entry works on this machine without a global install.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RelayLauncher } from './entry.ts';

// Both src/claude/ and dist/claude/ sit two levels below the package root.
const PACKAGE_ROOT = new URL('../../', import.meta.url);

export function thisMachineLauncher(): Extract<RelayLauncher, { kind: 'node' }> {
  return {
    kind: 'node',
    nodePath: process.execPath,
    binPath: fileURLToPath(new URL('bin/mcp-relay.js', PACKAGE_ROOT)),
  };
}

/** bin/mcp-relay.js runs the compiled dist/; from a source checkout that needs `npm run build` first. */
export function isBuilt(): boolean {
  return existsSync(new URL('dist/cli/main.js', PACKAGE_ROOT));
}
