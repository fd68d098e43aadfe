#!/usr/bin/env node
// The installed entry point. It checks the Node version first, in syntax any Node since 12 parses (no
// top-level await, no `??`), so an old Node says what to install instead of a stack trace; then it
// imports run.js, the one place that turns main()'s result into an exit code.
// 22.19: the oldest Node its HTTP client (undici 8) runs on; package.json's engines says the same.
const parts = process.versions.node.split('.').map(Number);
if (parts[0] < 22 || (parts[0] === 22 && parts[1] < 19)) {
  process.stderr.write(
    `mcp-relay needs Node.js 22.19 or newer; this is Node ${process.version} (${process.execPath}).\n` +
      'Install Node 22 from https://nodejs.org or with `nvm install 22`, or run scripts/start.sh, which puts Node 22 in ~/.node22.\n',
  );
  process.exit(1);
}
import('./run.js');
