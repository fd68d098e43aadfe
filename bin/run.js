// Run by bin/mcp-relay.js once the Node version is known to be new enough: the one place that turns
// main()'s result into an exit code, and that ends the process: once main has returned, whatever still
// holds the event loop (a backend that ignored SIGTERM, a stray socket) must not keep a stopped service
// alive, so after a second it exits anyway.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
setTimeout(() => process.exit(), 1_000).unref();
